"""``envdesign:sb3``: an SB3 on-policy agent trained on levels chosen by a level sampler.

Config (fixed args and hyperparameters in one dict; every key has a default):

- ``algo`` (any SB3 algorithm, "ppo" by default; PLR needs "ppo" or "a2c": its scores come from the
  rollout buffer's advantages), ``family`` ("CartPole"),
  ``n_envs`` (4), ``train_ranges`` (``{key: [low, high]}`` inside the declared ranges; default declared).
- ``level_sampler``: "default" (default context only), "dr", "plr" or "curriculum".
- ``dr_width`` (1.0): scales the training ranges about the default; the outer loop tunes it.
- PLR: ``plr_score``, ``plr_prioritization``, ``plr_temperature``, ``plr_staleness``, ``plr_replay_prob``,
  ``plr_buffer_size`` (defaults: :class:`~autorl.envs.levels.PLRConfig`).
- curriculum: ``curriculum_teacher`` "alp_gmm" (default; ``alp_random_prob``, ``alp_fit_every``,
  ``alp_max_components``: :class:`~autorl.envs.levels.ALPGMMConfig`) or "widening"
  (``curriculum_threshold``, default 0.8 x the env's reward threshold or 0; ``curriculum_start_width``,
  ``curriculum_step``).
- evaluation: ``n_test_levels`` (20 in range + half as many outside it, drawn with ``test_seed``
  (1234) so every run of a sweep sees the same set), ``n_train_eval_levels`` (5), ``n_val_levels``
  (0; validation levels drawn the same way from ``val_seed``, default ``test_seed + 1``).
- SB3 hyperparameters and ``net_arch``/``activation_fn``/... as for ``sb3:ppo``.

Metrics: ``heldout_return`` (mean over all held-out levels), ``heldout_in_range``,
``heldout_out_of_range``, ``train_return`` (on levels from the training distribution), ``gen_gap``
(train minus held-out), ``budget`` (env steps) and, with ``n_val_levels``, ``val_return``: the score an
outer loop should tune on, so the held-out test levels stay unseen by the tuning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import torch

from autorl.envs.checks import LEVEL_KEYS, check_levels
from autorl.envs.families import Context, Family, get_family
from autorl.envs.levels import (
    DefaultSampler,
    LevelSampler,
    PrioritizedLevelReplay,
    Ranges,
    SelfPacedCurriculum,
    scale_ranges,
)
from autorl.envs.samplers import LEVEL_SAMPLERS, check_choice, needs_scores
from autorl.envs.wrapper import ContextualEnv
from autorl.errors import ConfigError
from autorl.targets.base import TrialContext
from autorl.targets.sb3 import ALGOS, POLICY_KEYS, SB3Target, _algo_class, quiet
from autorl.targets.sb3 import _algo_kwargs as _sb3_kwargs
from autorl.targets.sb3 import granularity as sb3_granularity

ARG_KEYS = LEVEL_KEYS | {"algo", "n_envs", "policy"}  # plus the SB3 learner's own
ON_POLICY = ("ppo", "a2c")


def make_sampler(family: Family, ranges: Ranges, config: dict[str, Any], seed: int) -> LevelSampler:
    """The level sampler named by ``config["level_sampler"]`` (registered in
    :data:`~autorl.envs.samplers.LEVEL_SAMPLERS`) over ``ranges`` scaled by ``dr_width``."""
    name = config.get("level_sampler", "default")
    check_choice(LEVEL_SAMPLERS, "level_sampler", name)
    ranges = scale_ranges(family, ranges, float(config.get("dr_width", 1.0)))
    return LEVEL_SAMPLERS.get(name)(family, ranges, config, seed)


def segment_scores(
    advantages: np.ndarray,
    returns: np.ndarray,
    values: np.ndarray,
    level_ids: np.ndarray,
    dones: np.ndarray,
    score: str,
    max_return: dict[int, float],
) -> list[tuple[int, float]]:
    """PLR scores of each (env, episode) segment of one rollout, arrays shaped (n_steps, n_envs).

    positive_value_loss: mean of max(GAE, 0); l1_value_loss: mean |GAE|; max_mc: mean of
    (highest return seen on the level - V(s_t)) (Jiang et al. 2021, section 3 and appendix).
    """
    out: list[tuple[int, float]] = []
    n_steps, n_envs = advantages.shape
    for e in range(n_envs):
        start = 0
        for t in range(n_steps):
            if t == n_steps - 1 or dones[t, e] or level_ids[t + 1, e] != level_ids[t, e]:
                sl = slice(start, t + 1)
                lvl = int(level_ids[t, e])
                adv = advantages[sl, e]
                if score == "positive_value_loss":
                    s = float(np.mean(np.maximum(adv, 0.0)))
                elif score == "l1_value_loss":
                    s = float(np.mean(np.abs(adv)))
                else:
                    best = max(max_return.get(lvl, -np.inf), float(np.max(returns[sl, e])))
                    s = float(np.mean(best - values[sl, e]))
                out.append((lvl, s))
                start = t + 1
    return out


def _callback(target: EnvDesignTarget) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class LevelCallback(BaseCallback):
        """Maps each transition to its level, scores levels at rollout end, and logs the sampler."""

        def _on_rollout_start(self) -> None:
            self.ids: list[np.ndarray] = []
            self.dones: list[np.ndarray] = []

        def _on_step(self) -> bool:  # episode returns reach the sampler through the env wrapper
            self.ids.append(np.array([i.get("level_id", -1) for i in self.locals["infos"]]))
            self.dones.append(np.asarray(self.locals["dones"], dtype=bool))
            return True

        def _on_rollout_end(self) -> None:
            sampler = target.sampler
            if isinstance(sampler, PrioritizedLevelReplay) and self.ids:
                buf = self.model.rollout_buffer  # type: ignore[attr-defined]  # on-policy only (checked)
                n = len(self.ids)
                for lvl, s in segment_scores(
                    buf.advantages[:n],
                    buf.returns[:n],
                    buf.values[:n],
                    np.stack(self.ids),
                    np.stack(self.dones),
                    sampler.cfg.score,
                    sampler.max_return,
                ):
                    sampler.update(lvl, s)
            target.levels_log.append({"step": int(self.model.num_timesteps), **sampler.snapshot()})

    return LevelCallback()


def sample_test_levels(family: Family, ranges: Ranges, n_in: int, n_out: int, seed: int) -> list[Context]:
    """``n_in`` levels uniform in ``ranges`` and ``n_out`` inside the declared ranges but outside
    ``ranges`` (at least one key out; none when ``ranges`` covers the declared box). Keys held fixed in
    training (``low == high``) stay fixed out of range too, so the test varies what training varied."""
    rng = np.random.default_rng(seed)
    declared = family.bounds()
    levels = [{k: float(rng.uniform(lo, hi)) for k, (lo, hi) in ranges.items()} for _ in range(n_in)]
    if all(ranges[k] == declared[k] or ranges[k][0] == ranges[k][1] for k in ranges):
        return levels
    out: list[Context] = []
    while len(out) < n_out:  # rejection sampling in the declared box; the outside has positive volume
        ctx = {k: float(rng.uniform(*declared[k])) if lo < hi else lo for k, (lo, hi) in ranges.items()}
        if any(not ranges[k][0] <= v <= ranges[k][1] for k, v in ctx.items()):
            out.append(ctx)
    return levels + out


def evaluate_levels(target: Any, levels: list[Context], episodes: int = 1) -> pd.DataFrame:
    """Deterministic return of ``target.act`` on each level: one row per level, context columns,
    ``return`` and ``in_range`` (inside the training ranges)."""
    env = ContextualEnv(gym.make(target.family.env_id), target.family)
    rows = []
    for j, ctx in enumerate(levels):
        total = 0.0
        for ep in range(episodes):
            obs, _ = env.reset(seed=target.ctx.seed + 10_000 + 100 * j + ep, options={"context": ctx})
            done = False
            while not done:
                obs, r, term, trunc, _ = env.step(target.act(obs))
                total += float(r)
                done = term or trunc
        inside = all(target.ranges[k][0] <= v <= target.ranges[k][1] for k, v in ctx.items())
        rows.append({**ctx, "return": total / episodes, "in_range": inside})
    env.close()
    return pd.DataFrame(rows)


def setup_levels(target: Any, config: dict[str, Any], seed: int) -> None:
    """Give an env-design target its family, training ranges, level sampler and test/validation levels
    (shared by the SB3 and the actor-critic learner)."""
    target.family = get_family(config.get("family", "CartPole"))
    target.ranges = target.family.check_ranges(config.get("train_ranges") or {})
    target.sampler = make_sampler(target.family, target.ranges, config, seed)
    target.levels_log = []
    target.last_eval = None
    n_test = int(config.get("n_test_levels", 20))
    test_seed = int(config.get("test_seed", 1234))
    target.test_levels = sample_test_levels(
        target.family, target.ranges, n_test, max(n_test // 2, 1), test_seed
    )
    # validation levels (same in/out mix, another seed): what an outer loop should tune on
    n_val = int(config.get("n_val_levels", 0))
    val_seed = int(config.get("val_seed", test_seed + 1))
    target.val_levels = (
        sample_test_levels(target.family, target.ranges, n_val, max(n_val // 2, 1), val_seed) if n_val else []
    )


def heldout_metrics(target: Any, steps: float) -> dict[str, float]:
    """Held-out, in/out-of-range, training-distribution and validation returns of ``target.act``."""
    df = evaluate_levels(target, target.test_levels)
    target.last_eval = df
    train_ret = float(evaluate_levels(target, train_levels(target))["return"].mean())
    held = float(df["return"].mean())
    metrics = {
        "heldout_return": held,
        "heldout_in_range": float(df.loc[df["in_range"], "return"].mean()),
        "train_return": train_ret,
        "gen_gap": train_ret - held,
        "budget": float(steps),
    }
    if (~df["in_range"]).any():
        metrics["heldout_out_of_range"] = float(df.loc[~df["in_range"], "return"].mean())
    if target.val_levels:
        metrics["val_return"] = float(evaluate_levels(target, target.val_levels)["return"].mean())
    if target.ctx.checkpoint_dir is not None:  # in a sweep: the per-level table and plots per trial
        write_level_outputs(target, Path(target.ctx.checkpoint_dir))
    return metrics


def write_level_outputs(target: Any, out: Path) -> None:
    """``heldout_levels.csv`` (one row per test level), ``level_history.png`` and a heatmap over the
    first two varied context keys (those named in ``train_ranges`` first), next to the trial's
    checkpoints."""
    from autorl.envs.plots import heatmap, plot_level_history

    out.mkdir(parents=True, exist_ok=True)
    target.last_eval.to_csv(out / "heldout_levels.csv", index=False)
    if target.levels_log:
        plot_level_history(target.levels_log, out / "level_history.png")
    named = list(target.config.get("train_ranges") or {})  # the keys the user chose come first
    varied = [k for k in named + list(target.ranges) if target.ranges[k][1] > target.ranges[k][0]]
    varied = list(dict.fromkeys(varied))
    if len(varied) >= 2:
        heatmap(target.last_eval, varied[0], varied[1], out / "heldout_heatmap.png", bins=4)


def train_levels(target: Any) -> list[Context]:
    """``n_train_eval_levels`` levels from the current training distribution (seeded per run)."""
    s = target.sampler
    if isinstance(s, DefaultSampler):
        return [target.family.default()]
    curric = isinstance(s, SelfPacedCurriculum)
    ranges = scale_ranges(target.family, s.ranges, s.width) if curric else s.ranges
    rng = np.random.default_rng(target.ctx.seed + 777)
    n = int(target.config.get("n_train_eval_levels", 5))
    return [{k: float(rng.uniform(lo, hi)) for k, (lo, hi) in ranges.items()} for _ in range(n)]


class EnvDesignTarget(SB3Target):
    """An SB3 agent on a contextual family whose training levels come from a level sampler."""

    # set by setup_levels, shared with the actor-critic learner
    family: Family
    ranges: Ranges
    sampler: LevelSampler
    levels_log: list[dict[str, Any]]

    def __init__(self, config: dict[str, Any], ctx: TrialContext) -> None:
        import torch
        from stable_baselines3.common.env_util import make_vec_env

        torch.set_num_threads(1)
        self.config = dict(config)
        self.ctx = ctx
        self.algo = str(config.get("algo", "ppo"))
        _check_algo(self.algo, config.get("level_sampler", "default"))
        setup_levels(self, config, ctx.seed)
        fam, sampler = self.family, self.sampler
        self.env = make_vec_env(
            lambda: ContextualEnv(gym.make(fam.env_id), fam, sampler.sample, sampler.episode_end),
            n_envs=int(config.get("n_envs", 4)),
            seed=ctx.seed,
        )
        self.model = self._build_model(config, ctx.seed)
        self._keep_streams()

    def act(self, obs: np.ndarray) -> Any:
        return self.model.predict(obs, deterministic=True)[0]

    def train(self, budget: int) -> dict[str, float]:
        self._learn(budget, callback=_callback(self))
        return self.evaluate()

    def evaluate(self, seed: int | None = None) -> dict[str, float]:
        """Held-out metrics; their episodes come from the held-out levels' own streams, so this target
        declares no ``evaluates`` and takes no ``seed``."""
        if seed is not None:
            raise TypeError("envdesign:sb3 evaluates on its held-out levels' own streams, not on a seed")
        return heldout_metrics(self, self.model.num_timesteps)

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save(path / "model.zip")
        torch.save({"sampler": self.sampler.state_dict(), "log": self.levels_log}, path / "levels.pt")

    def load(self, path: Path) -> None:
        path = Path(path)
        state = torch.load(path / "levels.pt", weights_only=True)
        # the vec env's reset callbacks hold this sampler: its state is loaded into it in place
        self.sampler.load_state_dict(state["sampler"])
        self.levels_log = state["log"]
        self.model = quiet(_algo_class(self.algo).load(path / "model.zip", env=self.env, device="cpu"))


def check_envdesign(args: dict[str, Any], params: list[str]) -> None:
    """Refuse an unknown family, sampler or algorithm before any trial starts."""
    check_levels(args)
    algo = args.get("algo", "ppo")
    _check_algo(algo, args.get("level_sampler", "default"))
    refuse_unknown("envdesign:sb3", set(args) | set(params), ARG_KEYS | POLICY_KEYS | _sb3_kwargs(algo))


def granularity(config: dict[str, Any]) -> int:
    """The SB3 learner's smallest piece of training (:func:`autorl.targets.sb3.granularity`)."""
    return sb3_granularity(config, str(config.get("algo", "ppo")))


def _check_algo(algo: str, sampler: str) -> None:
    """Any SB3 algorithm; PLR only on-policy (its scores come from the rollout buffer's GAE)."""
    if algo not in ALGOS:
        raise ConfigError(f"algo must be one of {', '.join(ALGOS)}, got {algo!r}", "algo")
    if sampler in LEVEL_SAMPLERS and needs_scores(sampler) and algo not in ON_POLICY:
        raise ConfigError(
            f"{sampler} scores levels by value losses from an on-policy rollout buffer: use algo "
            f"{' or '.join(ON_POLICY)}, or dr/curriculum with {algo}",
            "algo",
        )


def refuse_unknown(target: str, keys: set[str], known: set[str]) -> None:
    """A ConfigError listing the keys ``target`` does not understand, and the valid ones."""
    unknown = sorted(keys - known)
    if unknown:
        raise ConfigError(
            f"{', '.join(unknown)} not understood by {target}; valid: {', '.join(sorted(known))}"
        )
