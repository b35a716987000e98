"""Level samplers that choose the training levels inside one run: DR, PLR and a self-paced curriculum.

All share one interface: ``sample() -> (level_id, context)`` when an episode starts, and
``update(level_id, score, episode_return)`` when the agent has scored a level. ``snapshot()`` gives
what is logged over time (level scores and sampling probabilities).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autorl.envs.families import Context, Family

Ranges = dict[str, tuple[float, float]]


def scale_ranges(family: Family, ranges: Ranges, width: float) -> Ranges:
    """Scale each range about the default by ``width`` (1 keeps it; 0 is the default only)."""
    out: Ranges = {}
    for p in family.params:
        lo, hi = ranges[p.name]
        d = min(max(p.default, lo), hi)
        # clamped: at width 1, d - (d - lo) may round below lo (1.0 - 0.9 = 0.0999...), off the family
        out[p.name] = (max(lo, d - width * (d - lo)), min(hi, d + width * (hi - d)))
    return out


class LevelSampler:
    """Base: levels are contexts; ``levels[i]`` is level id ``i``."""

    name = "base"

    def __init__(self, family: Family, ranges: Ranges, seed: int = 0) -> None:
        self.family = family
        self.ranges = ranges
        self.rng = np.random.default_rng(seed)
        self.levels: list[Context] = []

    def _new_level(self, ranges: Ranges | None = None) -> int:
        r = ranges or self.ranges
        ctx = {k: float(self.rng.uniform(lo, hi)) for k, (lo, hi) in r.items()}
        self.levels.append(ctx)
        return len(self.levels) - 1

    def sample(self) -> tuple[int, Context]:
        raise NotImplementedError

    def update(self, level_id: int, score: float, episode_return: float | None = None) -> None:
        """Record the agent's score on a level (ignored by samplers that do not adapt)."""

    def episode_end(self, level_id: int, episode_return: float) -> None:
        """An episode on ``level_id`` ended with ``episode_return`` (the env wrapper calls this)."""
        self.update(level_id, episode_return, episode_return)

    def snapshot(self) -> dict[str, Any]:
        return {}

    # Rebuilt from the sampler's arguments, never saved (the family holds code: a derive function).
    _REBUILT = ("family", "ranges", "cfg", "keys")

    def state_dict(self) -> dict[str, Any]:
        """Everything the sampler learned, as tensors and plain data (``torch.load(weights_only=True)``
        reads it back: no pickled objects)."""
        return {k: _plain(v) for k, v in vars(self).items() if k not in self._REBUILT}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, _restored(v))


@dataclass
class _GaussianMixture:
    """What ALP-GMM reads of a fitted sklearn GaussianMixture (restored from a checkpoint)."""

    means_: np.ndarray
    covariances_: np.ndarray
    weights_: np.ndarray


def _plain(v: Any) -> Any:
    """``v`` as tensors and plain data: arrays become tensors, generators their state."""
    import torch

    if isinstance(v, np.random.Generator):
        return {"__generator__": v.bit_generator.state}
    if isinstance(v, np.ndarray):
        return {"__array__": torch.from_numpy(np.ascontiguousarray(v))}
    if hasattr(v, "means_") and hasattr(v, "covariances_"):  # a fitted GaussianMixture
        return {
            "__gmm__": {k: _plain(np.asarray(getattr(v, k))) for k in ("means_", "covariances_", "weights_")}
        }
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return type(v)(_plain(x) for x in v)
    if isinstance(v, np.generic):
        return v.item()
    return v


def _restored(v: Any) -> Any:
    if isinstance(v, dict) and "__generator__" in v:
        rng = np.random.default_rng()
        rng.bit_generator.state = v["__generator__"]
        return rng
    if isinstance(v, dict) and "__array__" in v:
        return v["__array__"].numpy()
    if isinstance(v, dict) and "__gmm__" in v:
        return _GaussianMixture(**{k: _restored(x) for k, x in v["__gmm__"].items()})
    if isinstance(v, dict):
        return {k: _restored(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return type(v)(_restored(x) for x in v)
    return v


class DefaultSampler(LevelSampler):
    """Always the family's default context (the baseline: no environment design)."""

    name = "default"

    def sample(self) -> tuple[int, Context]:
        if not self.levels:
            self.levels.append(self.family.default())
        return 0, self.levels[0]


class DomainRandomization(LevelSampler):
    """Uniform over the training ranges, a fresh level every episode (Tobin et al. 2017)."""

    name = "dr"

    def sample(self) -> tuple[int, Context]:
        i = self._new_level()
        return i, self.levels[i]


def rank_weights(scores: np.ndarray, temperature: float) -> np.ndarray:
    """PLR's rank prioritisation: ``h_i = 1 / rank(S_i)``, ``P_i ∝ h_i^(1/β)`` (ties by order)."""
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    w = (1.0 / ranks) ** (1.0 / temperature)
    return np.asarray(w / w.sum())


def power_weights(scores: np.ndarray, temperature: float) -> np.ndarray:
    """PLR's power prioritisation: ``P_i ∝ S_i^(1/β)``; uniform when all scores are zero."""
    w = np.maximum(scores, 0.0) ** (1.0 / temperature)
    return np.asarray(w / w.sum()) if w.sum() > 0 else np.full(len(scores), 1.0 / len(scores))


def staleness_weights(last_sampled: np.ndarray, now: int) -> np.ndarray:
    """``P_C,i ∝ c - C_i``: levels not replayed for longer are favoured; uniform when all are fresh."""
    w = now - last_sampled.astype(float)
    return np.asarray(w / w.sum()) if w.sum() > 0 else np.full(len(w), 1.0 / len(w))


@dataclass
class PLRConfig:
    """PLR defaults from Jiang, Grefenstette & Rocktäschel 2021 ("Prioritized Level Replay", ICML):
    rank prioritisation, beta = 0.1, rho = 0.1, score = positive value loss. ``replay_prob`` 0.5 and a
    bounded buffer follow Robust PLR (Jiang, Dennis et al. 2021, "Replay-Guided Adversarial
    Environment Design"), which handles an unbounded (continuous) level space."""

    score: str = "positive_value_loss"  # or l1_value_loss, max_mc
    prioritization: str = "rank"  # or power
    temperature: float = 0.1
    staleness_coef: float = 0.1
    replay_prob: float = 0.5
    buffer_size: int = 64
    scores: tuple[str, ...] = field(default=("positive_value_loss", "l1_value_loss", "max_mc"), repr=False)

    def __post_init__(self) -> None:
        if self.score not in self.scores:
            raise ValueError(f"plr_score must be one of {', '.join(self.scores)}, got {self.score!r}")
        if self.prioritization not in ("rank", "power"):
            raise ValueError(f"plr_prioritization must be rank or power, got {self.prioritization!r}")
        if self.temperature <= 0:
            raise ValueError(f"plr_temperature must be > 0, got {self.temperature}")
        if not 0 <= self.staleness_coef <= 1 or not 0 <= self.replay_prob <= 1:
            raise ValueError(
                f"plr_staleness and plr_replay_prob must be in [0, 1], got "
                f"({self.staleness_coef}, {self.replay_prob})"
            )


class PrioritizedLevelReplay(LevelSampler):
    """Robust-PLR over a continuous context space.

    With probability ``replay_prob`` (once the buffer holds levels) a buffered level is replayed from
    ``P = (1 - rho) P_S + rho P_C``; otherwise a new DR level is drawn. Scored new levels enter the buffer,
    replacing the lowest-scored one when full. Simplification: scores are updated per rollout segment
    (an episode cut by the rollout end counts as its own segment), not only on episode end.
    """

    name = "plr"

    def __init__(
        self, family: Family, ranges: Ranges, seed: int = 0, config: PLRConfig | None = None
    ) -> None:
        super().__init__(family, ranges, seed)
        self.cfg = config or PLRConfig()
        self.buffer: list[int] = []  # level ids
        self.scores: dict[int, float] = {}
        self.last_sampled: dict[int, int] = {}
        self.max_return: dict[int, float] = {}
        self.clock = 0

    def probabilities(self) -> np.ndarray:
        """Replay distribution over ``self.buffer``."""
        s = np.array([self.scores[i] for i in self.buffer])
        c = np.array([self.last_sampled[i] for i in self.buffer])
        weigh = rank_weights if self.cfg.prioritization == "rank" else power_weights
        rho = self.cfg.staleness_coef
        return np.asarray((1 - rho) * weigh(s, self.cfg.temperature) + rho * staleness_weights(c, self.clock))

    def sample(self) -> tuple[int, Context]:
        self.clock += 1
        if self.buffer and self.rng.random() < self.cfg.replay_prob:
            i = self.buffer[int(self.rng.choice(len(self.buffer), p=self.probabilities()))]
        else:
            i = self._new_level()
        self.last_sampled[i] = self.clock
        return i, self.levels[i]

    def episode_end(self, level_id: int, episode_return: float) -> None:
        """Returns only feed MaxMC's highest return; scores come from the agent's value losses."""
        self.max_return[level_id] = max(self.max_return.get(level_id, -np.inf), episode_return)

    def update(self, level_id: int, score: float, episode_return: float | None = None) -> None:
        if level_id < 0:
            return
        if episode_return is not None:
            self.max_return[level_id] = max(self.max_return.get(level_id, -np.inf), episode_return)
        if level_id in self.scores:
            self.scores[level_id] = float(score)
            return
        if len(self.buffer) >= self.cfg.buffer_size:
            worst = min(self.buffer, key=lambda j: self.scores[j])
            if self.scores[worst] >= score:
                return
            self.buffer.remove(worst)
        self.buffer.append(level_id)
        self.scores[level_id] = float(score)
        self.last_sampled.setdefault(level_id, self.clock)

    def snapshot(self) -> dict[str, Any]:
        if not self.buffer:
            return {"buffer_size": 0}
        p = self.probabilities()
        return {
            "buffer_size": len(self.buffer),
            "score_mean": float(np.mean([self.scores[i] for i in self.buffer])),
            "score_max": float(max(self.scores[i] for i in self.buffer)),
            "p_max": float(p.max()),
            "levels": [
                {**self.levels[i], "score": self.scores[i], "p": float(pi)}
                for i, pi in zip(self.buffer, p, strict=True)
            ],
        }


class SelfPacedCurriculum(LevelSampler):
    """A self-paced curriculum: DR over ranges that grow from the default as the agent masters them.

    Our simplification of self-paced RL (Klink et al. 2020) and SPaCE (Eimer et al. 2021, "Self-Paced
    Context Evaluation"): instead of a learned context distribution, the width of the range around the
    default starts at ``start_width`` and grows by ``step`` whenever the mean return of the last
    ``window`` scored episodes reaches ``threshold``. Harder levels (further from the default) thus
    enter only once the easier ones are solved.
    """

    name = "curriculum"

    def __init__(
        self,
        family: Family,
        ranges: Ranges,
        seed: int = 0,
        *,
        threshold: float = 0.0,
        start_width: float = 0.1,
        step: float = 0.15,
        window: int = 10,
    ) -> None:
        super().__init__(family, ranges, seed)
        self.threshold, self.width, self.step, self.window = threshold, start_width, step, window
        self.recent: list[float] = []

    def sample(self) -> tuple[int, Context]:
        i = self._new_level(scale_ranges(self.family, self.ranges, self.width))
        return i, self.levels[i]

    def update(self, level_id: int, score: float, episode_return: float | None = None) -> None:
        if episode_return is None:
            return
        self.recent.append(episode_return)
        if len(self.recent) >= self.window:
            if np.mean(self.recent[-self.window :]) >= self.threshold and self.width < 1.0:
                self.width = min(1.0, self.width + self.step)
            self.recent.clear()

    def snapshot(self) -> dict[str, Any]:
        return {"width": self.width}


@dataclass
class ALPGMMConfig:
    """ALP-GMM defaults from Portelas, Colas, Hofmann & Oudeyer 2019 ("Teacher algorithms for curriculum
    learning of Deep RL in continuously parameterized environments", CoRL): 20 % random levels, GMMs
    with 2..``max_components`` (10) Gaussians chosen by AIC. ``fit_every`` is 30 episodes here (the
    paper: 250, in runs of millions of steps that refit dozens of times; ours see a few hundred
    episodes, and 30 keeps about ten refits per run)."""

    random_prob: float = 0.2
    fit_every: int = 30
    max_components: int = 10

    def __post_init__(self) -> None:
        if not 0 <= self.random_prob <= 1:
            raise ValueError(f"alp_random_prob must be in [0, 1], got {self.random_prob}")
        if self.fit_every < 2 or self.max_components < 2:
            raise ValueError(
                "alp_fit_every and alp_max_components must be >= 2, got "
                f"({self.fit_every}, {self.max_components})"
            )


class ALPGMM(LevelSampler):
    """ALP-GMM: sample levels where the agent's return changes most (absolute learning progress).

    Each finished episode on context ``c`` gets ``ALP = |r - r_old|``, ``r_old`` the return on the
    nearest earlier context (contexts scaled to [0, 1] over the training ranges; returns scaled by the
    range seen so far). Every ``fit_every`` episodes a Gaussian mixture is fitted on the last
    ``fit_every`` (context, ALP) points; a level is then drawn from a component picked in proportion to
    its mean ALP, or uniformly with probability ``random_prob`` (and before the first fit). Levels that
    are mastered (no change) or hopeless (no change either) thus fade; learnable ones are replayed.
    """

    name = "alp_gmm"

    def __init__(
        self, family: Family, ranges: Ranges, seed: int = 0, config: ALPGMMConfig | None = None
    ) -> None:
        super().__init__(family, ranges, seed)
        self.cfg = config or ALPGMMConfig()
        self.keys = [k for k, (lo, hi) in ranges.items() if hi > lo]  # the varied dimensions
        self.history_x = np.empty((64, len(self.keys)))  # rows [:len(history_r)] are filled
        self.history_r: list[float] = []
        self.window: list[np.ndarray] = []  # (context..., alp) since the last fit
        self.gmm: Any = None
        self.r_lo, self.r_hi = np.inf, -np.inf
        self.fits = 0

    def _unit(self, ctx: Context) -> np.ndarray:
        return np.array(
            [(ctx[k] - self.ranges[k][0]) / (self.ranges[k][1] - self.ranges[k][0]) for k in self.keys]
        )

    def _context(self, u: np.ndarray) -> Context:
        """The context at unit coordinates ``u`` of the varied keys; fixed keys keep their value."""
        ctx = {k: float(lo) for k, (lo, hi) in self.ranges.items()}
        for k, x in zip(self.keys, u, strict=True):
            lo, hi = self.ranges[k]
            ctx[k] = float(lo + x * (hi - lo))
        return ctx

    def sample(self) -> tuple[int, Context]:
        if self.gmm is None or not self.keys or self.rng.random() < self.cfg.random_prob:
            i = self._new_level()
            return i, self.levels[i]
        d = len(self.keys)
        c = int(self.rng.choice(len(self.gmm.means_), p=self.component_probabilities()))
        x = self.rng.multivariate_normal(self.gmm.means_[c, :d], self.gmm.covariances_[c][:d, :d])
        ctx = self._context(np.clip(x, 0.0, 1.0))
        self.levels.append(ctx)
        return len(self.levels) - 1, ctx

    def update(self, level_id: int, score: float, episode_return: float | None = None) -> None:
        if episode_return is None or level_id < 0 or not self.keys:
            return
        x, r = self._unit(self.levels[level_id]), float(episode_return)
        self.r_lo, self.r_hi = min(self.r_lo, r), max(self.r_hi, r)
        n = len(self.history_r)
        if n:
            near = int(np.argmin(np.linalg.norm(self.history_x[:n] - x, axis=1)))
            span = self.r_hi - self.r_lo if self.r_hi > self.r_lo else 1.0
            alp = abs(r - self.history_r[near]) / span
            self.window.append(np.append(x, alp))
        if n == len(self.history_x):  # grow by doubling: appending stays O(1) amortised
            self.history_x = np.concatenate([self.history_x, np.empty_like(self.history_x)])
        self.history_x[n] = x
        self.history_r.append(r)
        if len(self.window) >= self.cfg.fit_every:
            self._fit(np.stack(self.window[-self.cfg.fit_every :]))
            self.window.clear()

    def _fit(self, data: np.ndarray) -> None:
        from sklearn.mixture import GaussianMixture

        best, best_aic = None, np.inf
        for k in range(2, min(self.cfg.max_components, len(data) // 2) + 1):
            gmm = GaussianMixture(k, covariance_type="full", random_state=int(self.rng.integers(2**31)))
            gmm.fit(data)
            aic = gmm.aic(data)
            if aic < best_aic:
                best, best_aic = gmm, aic
        self.gmm, self.fits = best, self.fits + 1

    def component_probabilities(self) -> np.ndarray:
        """Chance each fitted component is picked when the teacher does not sample at random."""
        alp = np.maximum(self.gmm.means_[:, -1], 0.0)
        return np.asarray(alp / alp.sum() if alp.sum() > 0 else np.full(len(alp), 1.0 / len(alp)))

    def snapshot(self) -> dict[str, Any]:
        """Episodes seen, fits so far and, once fitted, each component's mean context (in the
        context's units), mean ALP (``score``) and pick probability ``p``."""
        out: dict[str, Any] = {"episodes": len(self.history_r), "fits": self.fits}
        if self.gmm is None:
            return out
        d, p = len(self.keys), self.component_probabilities()
        out["alp_max"] = float(self.gmm.means_[:, -1].max())
        out["levels"] = [
            {
                **{k: self._context(mean[:d])[k] for k in self.keys},
                "score": float(mean[-1]),
                "p": float(pi),
            }
            for mean, pi in zip(self.gmm.means_, p, strict=True)
        ]
        return out
