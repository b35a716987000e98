"""stable-baselines3 agents (PPO, A2C, DQN, SAC, TD3) on any gymnasium environment, as Trainables.

Fixed arguments (``args`` in a sweep config):

- ``env`` (required): a gymnasium id; ``env_kwargs``: its keyword arguments.
- ``n_envs`` (1): parallel training environments (a DummyVecEnv in the trial's process).
- ``eval_episodes`` (10): episodes of each deterministic evaluation, on a separate environment
  seeded with ``seed + 10_000``; their mean return is ``eval_return``.
- ``policy`` ("MlpPolicy"), ``normalize`` (False: wrap in VecNormalize, observations and rewards, the
  reward's return discounted by the config's ``gamma`` as rl-zoo3 does; statistics saved with
  checkpoints), ``save_replay_buffer`` (False: off-policy checkpoints keep only the weights; True also
  writes the buffer, about ``buffer_size * obs bytes * 2`` on disk, which population methods may need).

Hyperparameters are SB3's constructor arguments (``learning_rate``, ``n_steps``, ``gamma``, ...) plus
``net_arch`` (rl-zoo3's names, see ``NET_ARCH``, or a list of widths), ``activation_fn`` (tanh, relu, elu,
leaky_relu), ``ortho_init``, ``log_std_init``, ``use_expln`` (policy keyword arguments) and ``noise_std``
(Gaussian action noise for SAC and TD3). ``learning_rate``, ``clip_range`` and ``clip_range_vf`` may be
written as rl-zoo3 writes a linear schedule, ``lin_<x>``: from x to 0 over the trial's budget.

Every schedule (those, and DQN's exploration rate) runs over the trial's whole budget as in one SB3 run
of that many steps, although the target calls ``learn()`` once per report: SB3's progress is made the
fraction of ``ctx.budget`` left while the model learns (:func:`budget_progress`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from autorl.errors import ConfigError
from autorl.registry import closest
from autorl.targets.base import TrialContext

ARG_KEYS = {"env", "env_kwargs", "n_envs", "eval_episodes", "policy", "normalize", "save_replay_buffer"}
POLICY_KEYS = {"net_arch", "activation_fn", "ortho_init", "log_std_init", "use_expln"}
EXTRA_KEYS = {"noise_std"}
# What may be a linear schedule, written ``lin_<initial value>`` (rl_zoo3 2.9.2, exp_manager.py:
# _preprocess_schedules; it also takes delta_std, an ARS key, which SB3 has no algorithm for).
SCHEDULE_KEYS = ("learning_rate", "clip_range", "clip_range_vf")
_LINEAR = re.compile(r"lin_(.*)")
# rl-zoo3's names (rl_zoo3 2.9.2, hyperparams_opt.py: convert_onpolicy_params and
# convert_offpolicy_params, which agree where they share a name). An on-policy list is SB3's
# {pi: widths, vf: widths}, what rl-zoo3 passes; off-policy, actor and critic share it, as there.
NET_ARCH = {
    "tiny": [64],
    "small": [64, 64],
    "medium": [256, 256],
    "big": [400, 300],
    "large": [256, 256, 256],
    "verybig": [512, 512, 512],
}
ALGOS = {"ppo": "PPO", "a2c": "A2C", "dqn": "DQN", "sac": "SAC", "td3": "TD3"}
DISCRETE_ONLY, CONTINUOUS_ONLY = {"dqn"}, {"sac", "td3"}

# Constructor arguments the target sets itself, not a config.
TARGET_SUPPLIED = frozenset(
    {"self", "policy", "env", "policy_kwargs", "seed", "device", "verbose", "_init_setup_model"}
)
_COMMON = {"learning_rate", "gamma", "n_steps", "stats_window_size", "tensorboard_log"}
_ON_POLICY = _COMMON | {
    "ent_coef",
    "gae_lambda",
    "max_grad_norm",
    "normalize_advantage",
    "rollout_buffer_class",
    "rollout_buffer_kwargs",
    "sde_sample_freq",
    "use_sde",
    "vf_coef",
}
_OFF_POLICY = _COMMON | {
    "batch_size",
    "buffer_size",
    "gradient_steps",
    "learning_starts",
    "optimize_memory_usage",
    "replay_buffer_class",
    "replay_buffer_kwargs",
    "tau",
    "train_freq",
}
# The constructor arguments of each algorithm in stable-baselines3 2.9.2 (its __init__ signatures less
# TARGET_SUPPLIED), kept as data so that validating a config does not import SB3;
# tests/targets/test_sb3_spaces.py checks them against the installed SB3.
ALGO_KEYS: dict[str, frozenset[str]] = {
    "ppo": frozenset(_ON_POLICY | {"batch_size", "clip_range", "clip_range_vf", "n_epochs", "target_kl"}),
    "a2c": frozenset(_ON_POLICY | {"rms_prop_eps", "use_rms_prop"}),
    "dqn": frozenset(
        _OFF_POLICY
        | {
            "exploration_final_eps",
            "exploration_fraction",
            "exploration_initial_eps",
            "max_grad_norm",
            "target_update_interval",
        }
    ),
    "sac": frozenset(
        _OFF_POLICY
        | {
            "action_noise",
            "ent_coef",
            "sde_sample_freq",
            "target_entropy",
            "target_update_interval",
            "use_sde",
            "use_sde_at_warmup",
        }
    ),
    "td3": frozenset(
        _OFF_POLICY | {"action_noise", "policy_delay", "target_noise_clip", "target_policy_noise"}
    ),
}


def _algo_class(algo: str) -> Any:
    import stable_baselines3

    return getattr(stable_baselines3, ALGOS[algo])


def _algo_kwargs(algo: str) -> frozenset[str]:
    """``ALGO_KEYS[algo]``, under the name the target and autorl.envs.target use."""
    return ALGO_KEYS[algo]


def linear_start(key: str, value: Any) -> float | None:
    """The initial value x of a ``lin_<x>`` schedule, or None where ``value`` is no schedule.

    Raises:
        ConfigError: at ``key`` for a malformed schedule, or one for a key that cannot take it.
    """
    if not isinstance(value, str):
        return None
    m = _LINEAR.fullmatch(value)
    if key not in SCHEDULE_KEYS:
        if m is None:
            return None
        raise ConfigError(
            f"a linear schedule ({value!r}) is only for {', '.join(SCHEDULE_KEYS)}; give a number", key
        )
    try:
        start = float(m.group(1)) if m else math.nan
    except ValueError:
        start = math.nan
    if not (math.isfinite(start) and start > 0):
        raise ConfigError(
            f"a schedule is written lin_<x> with x a positive number (linear from x to 0 over the trial's "
            f"budget, as rl-zoo3 writes it), got {value!r}",
            key,
        )
    return start


def _schedule(key: str, value: Any) -> Any:
    """SB3's schedule for ``value`` of ``key``: linear to 0 for ``lin_<x>``, else constant."""
    from stable_baselines3.common.utils import ConstantSchedule, LinearSchedule

    start = linear_start(key, value)
    # progress_remaining goes 1 -> 0 over the budget (budget_progress): x * progress_remaining
    return ConstantSchedule(float(value)) if start is None else LinearSchedule(start, 0.0, 1.0)


@contextlib.contextmanager
def budget_progress(model: Any, budget: int) -> Iterator[None]:
    """While ``model`` learns, SB3's ``progress_remaining`` is ``1 - num_timesteps / budget`` (not below 0).

    SB3 computes it from each ``learn()`` call's own total, so with ``learn(increment,
    reset_num_timesteps=False)`` every schedule would restart its meaning at each call. The override is
    an instance attribute only while learning: ``model.save`` never pickles it.
    """

    def update(num_timesteps: int, total_timesteps: int) -> None:
        model._current_progress_remaining = max(0.0, 1.0 - num_timesteps / max(1, budget))

    model._update_current_progress_remaining = update
    try:
        yield
    finally:
        del model._update_current_progress_remaining


def _chunks(model: Any, budget: int) -> list[tuple[int, int | None]]:
    """``budget`` as (steps, train_freq) calls of ``learn``, so that an off-policy agent stops at its budget.

    SB3's off-policy loop collects ``train_freq`` steps at a time and only then checks the total, so a
    DQN with ``train_freq: 7`` asked for 10,000 steps would take 10,003, and a sweep charging whole
    trials would fit fewer of them. The whole chunks run as asked; the rest runs as one shorter chunk
    (``None``: the model's own train_freq). With ``gradient_steps: -1`` the update-to-data ratio is kept.
    A train_freq counted in episodes, and on-policy agents (whole rollouts), are left as they are.
    """
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
    from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit

    freq = getattr(model, "train_freq", None)  # a TrainFreq once the model is built
    if not (isinstance(model, OffPolicyAlgorithm) and isinstance(freq, TrainFreq)) or (
        freq.unit != TrainFrequencyUnit.STEP
    ):
        return [(budget, None)]
    per_chunk = freq.frequency * model.n_envs
    whole, rest = divmod(budget, per_chunk)
    calls: list[tuple[int, int | None]] = [(whole * per_chunk, None)] if whole else []
    if rest:
        calls.append((rest, -(-rest // model.n_envs)))
    return calls


@contextlib.contextmanager
def _train_freq(model: Any, freq: int | None) -> Iterator[None]:
    """``model`` collects ``freq`` steps per chunk while the block runs (unchanged for ``None``)."""
    if freq is None:
        yield
        return
    from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit

    kept = model.train_freq
    model.train_freq = TrainFreq(freq, TrainFrequencyUnit.STEP)
    try:
        yield
    finally:
        model.train_freq = kept


def check_args(args: dict[str, Any], params: list[str], algo: str) -> None:
    """Refuse an unknown env, an action space the algorithm cannot handle, an unknown key (with the
    closest valid one), or a malformed ``lin_`` schedule. Needs gymnasium, not stable-baselines3."""
    env_id = args.get("env")
    if not isinstance(env_id, str):
        raise ConfigError(f"env must be a gymnasium id such as 'CartPole-v1', got {env_id!r}", "env")
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as exc:
        raise ConfigError(str(exc).splitlines()[0], "env") from None
    known = sorted(ARG_KEYS | POLICY_KEYS | EXTRA_KEYS | ALGO_KEYS[algo])
    unknown = sorted((set(args) | set(params)) - set(known))
    if unknown:
        close = {k: closest(k, known) for k in unknown}
        hints = [f"{c!r}" + (f" for {k}" if len(unknown) > 1 else "") for k, c in close.items() if c]
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        raise ConfigError(
            f"{', '.join(unknown)} not understood by sb3:{algo}{hint}; valid: {', '.join(known)}"
        )
    for key, value in args.items():
        linear_start(key, value)
    env = gym.make(spec.id, **args.get("env_kwargs", {}))
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    env.close()
    if algo in DISCRETE_ONLY and not discrete:
        raise ConfigError(f"sb3:{algo} needs a discrete action space, but {env_id} is continuous", "env")
    if algo in CONTINUOUS_ONLY and discrete:
        raise ConfigError(f"sb3:{algo} needs a continuous action space, but {env_id} is discrete", "env")


# SB3 2.9.2's default n_steps of its on-policy agents (tests/targets check them against the installed SB3)
ON_POLICY_N_STEPS = {"ppo": 2048, "a2c": 5}


def granularity(config: dict[str, Any], algo: str) -> int:
    """Env steps of the smallest piece SB3 trains: a rollout of ``n_steps * n_envs`` for PPO and A2C
    (they finish the rollout they are in), one step of every env for DQN, SAC and TD3 (they stop at
    their budget, :func:`_chunks`; a ``train_freq`` counted in episodes is not bounded by this)."""
    n_envs = int(config.get("n_envs", 1))
    if algo in ON_POLICY_N_STEPS:
        return n_envs * int(config.get("n_steps", ON_POLICY_N_STEPS[algo]))
    return n_envs


def quiet(model: Any) -> Any:
    """``model`` with a logger that writes nothing: SB3's default makes a folder in /tmp per learn()."""
    from stable_baselines3.common.logger import Logger

    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def _global_streams() -> tuple[Any, Any, Any]:
    import random

    import torch

    return torch.get_rng_state(), np.random.get_state(), random.getstate()


def _set_global_streams(streams: tuple[Any, Any, Any]) -> None:
    import random

    import torch

    torch.set_rng_state(streams[0])
    np.random.set_state(streams[1])
    random.setstate(streams[2])


def _make_env(args: dict[str, Any], n: int, seed: int) -> Any:
    from stable_baselines3.common.env_util import make_vec_env

    return make_vec_env(args["env"], n_envs=n, seed=seed, env_kwargs=args.get("env_kwargs"))


class SB3Target:
    """One SB3 agent trained in increments of env steps and evaluated deterministically."""

    algo: str = "ppo"  # a class attribute; env design sets it per instance
    # what population methods may never perturb (checked before a pbt/pb2 sweep starts)
    immutable: ClassVar[frozenset[str]] = frozenset()  # set below, once FIXED_DURING_TRAINING exists

    def __init__(self, config: dict[str, Any], ctx: TrialContext) -> None:
        import torch

        torch.set_num_threads(1)
        self.config = dict(config)
        self.ctx = ctx
        self.env = _make_env(config, int(config.get("n_envs", 1)), ctx.seed)
        self.eval_env = _make_env(config, 1, ctx.seed + 10_000)
        if config.get("normalize", False):
            from stable_baselines3.common.vec_env import VecNormalize

            # rl-zoo3 passes the algorithm's gamma (exp_manager.py: _preprocess_normalization)
            self.env = VecNormalize(self.env, gamma=float(config.get("gamma", 0.99)))
            self.eval_env = VecNormalize(self.eval_env, training=False, norm_reward=False)
        self.model = self._build_model(config, ctx.seed)
        self._keep_streams()

    def _keep_streams(self) -> None:
        """SB3 samples actions and minibatches from the process-wide generators, which building the model
        seeded: the agent keeps them as its own (see ``_own_streams``), so agents sharing a worker
        (population members) do not draw from each other's, and a member trains alike on one worker or
        on several."""
        self._streams = _global_streams()

    @contextlib.contextmanager
    def _own_streams(self) -> Iterator[None]:
        """The agent's own random streams in the process-wide generators while it trains."""
        outside = _global_streams()
        _set_global_streams(self._streams)
        try:
            yield
        finally:
            self._streams = _global_streams()
            _set_global_streams(outside)

    def _build_model(self, config: dict[str, Any], seed: int) -> Any:
        """The SB3 model of ``self.algo`` on ``self.env`` from the config's policy and algo keys."""
        return quiet(
            _algo_class(self.algo)(
                config.get("policy", "MlpPolicy"),
                self.env,
                seed=seed,
                device="cpu",
                verbose=0,
                policy_kwargs=self._policy_kwargs(config),
                **self._algo_kwargs(config),
            )
        )

    def _policy_kwargs(self, config: dict[str, Any]) -> dict[str, Any]:
        import torch.nn as nn

        kwargs: dict[str, Any] = {}
        if "net_arch" in config:
            arch = config["net_arch"]
            kwargs["net_arch"] = NET_ARCH[arch] if isinstance(arch, str) else list(arch)
        if "activation_fn" in config:
            acts = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}
            kwargs["activation_fn"] = acts[config["activation_fn"]]
        for key in ("ortho_init", "log_std_init", "use_expln"):
            if key in config:
                kwargs[key] = config[key]
        return kwargs

    def _algo_kwargs(self, config: dict[str, Any]) -> dict[str, Any]:
        kwargs = {k: v for k, v in config.items() if k in _algo_kwargs(self.algo)}
        for key in SCHEDULE_KEYS:
            if linear_start(key, kwargs.get(key)) is not None:
                kwargs[key] = _schedule(key, kwargs[key])
        if "noise_std" in config and self.algo in CONTINUOUS_ONLY:
            from stable_baselines3.common.noise import NormalActionNoise

            dim = self.env.action_space.shape[0]
            kwargs["action_noise"] = NormalActionNoise(
                np.zeros(dim), float(config["noise_std"]) * np.ones(dim)
            )
        return kwargs

    def train(self, budget: int) -> dict[str, float]:
        """Train ``budget`` more env steps, then evaluate. PPO and A2C finish the rollout they are in; an
        off-policy agent stops at ``budget`` (rounded up to whole steps of its n_envs)."""
        self._learn(budget)
        return self.evaluate()

    def _learn(self, budget: int, callback: Any = None) -> None:
        """``budget`` more env steps of SB3's ``learn``, on the agent's own streams, with schedules read
        against the whole trial's budget: every SB3-based target trains through here."""
        with self._own_streams(), budget_progress(self.model, self.ctx.budget):
            for steps, freq in _chunks(self.model, budget):
                with _train_freq(self.model, freq):
                    self.model.learn(
                        total_timesteps=steps,
                        reset_num_timesteps=False,
                        progress_bar=False,
                        callback=callback,
                    )

    def evaluate(self, seed: int | None = None) -> dict[str, float]:
        """Deterministic evaluation episodes, training nothing; with ``seed``, they start from it (a
        race's common seed) instead of where the last evaluation left the evaluation env."""
        from stable_baselines3.common.evaluation import evaluate_policy

        if self.config.get("normalize", False):
            self.eval_env.obs_rms = self.env.obs_rms
        if seed is not None:
            self.eval_env.seed(seed)
        mean, std = evaluate_policy(
            self.model,
            self.eval_env,
            n_eval_episodes=int(self.config.get("eval_episodes", 10)),
            deterministic=True,
        )
        return {
            "eval_return": float(mean),  # type: ignore[arg-type]  # a float unless per-episode returns asked
            "eval_return_std": float(std),  # type: ignore[arg-type]
            "budget": float(self.model.num_timesteps),
        }

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save(path / "model.zip")
        if self.config.get("normalize", False):
            self.env.save(str(path / "vecnormalize.pkl"))
        if self.config.get("save_replay_buffer", False) and hasattr(self.model, "replay_buffer"):
            self.model.save_replay_buffer(path / "replay_buffer.pkl")

    def load(self, path: Path) -> None:
        path = Path(path)
        if self.config.get("normalize", False):
            from stable_baselines3.common.vec_env import VecNormalize

            self.env = VecNormalize.load(str(path / "vecnormalize.pkl"), self.env.venv)
        self.model = quiet(_algo_class(self.algo).load(path / "model.zip", env=self.env, device="cpu"))
        if (path / "replay_buffer.pkl").is_file():
            self.model.load_replay_buffer(path / "replay_buffer.pkl")

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Change hyperparameters mid-run so that SB3 really uses them.

        SB3 re-reads the learning rate and clip range from schedules at every update, so those are
        replaced rather than the optimiser edited (a number by a constant, ``lin_<x>`` by the line from
        x at step 0 to 0 at the budget, taken up where the run is); a new ``n_steps`` rebuilds the
        rollout buffer.
        """
        from stable_baselines3.common.utils import LinearSchedule

        model = self.model
        for key, value in config.items():
            if self.config.get(key) == value or (
                key not in _algo_kwargs(self.algo) and key not in self.immutable
            ):
                continue
            if key in self.immutable or (key == "n_steps" and not hasattr(model, "rollout_buffer")):
                raise ValueError(
                    f"sb3:{self.algo} cannot change {key!r} during training (it sizes a buffer or the "
                    "networks); do not mark it mutable"
                )
            if key == "learning_rate":
                model.learning_rate = value
                model.lr_schedule = _schedule(key, value)
                # Set directly: SB3's _update_learning_rate also logs, and a loaded model has no logger.
                for opt in _optimizers(model):
                    for group in opt.param_groups:
                        group["lr"] = float(model.lr_schedule(model._current_progress_remaining))
            elif key in ("clip_range", "clip_range_vf"):
                setattr(model, key, _schedule(key, value))
            elif key == "n_steps":  # on-policy: the rollout buffer has n_steps rows
                model.n_steps = int(value)
                model.rollout_buffer = model.rollout_buffer_class(
                    model.n_steps,
                    model.observation_space,
                    model.action_space,
                    device=model.device,
                    gamma=model.gamma,
                    gae_lambda=model.gae_lambda,
                    n_envs=model.n_envs,
                    **model.rollout_buffer_kwargs,
                )
            elif key == "train_freq":
                model.train_freq = value
                model._convert_train_freq()
            elif key.startswith("exploration_"):  # DQN's epsilon schedule is built from these three
                setattr(model, key, float(value))
                model.exploration_schedule = LinearSchedule(
                    model.exploration_initial_eps, model.exploration_final_eps, model.exploration_fraction
                )
            elif key == "ent_coef" and self.algo == "sac":
                if getattr(model, "ent_coef_optimizer", None) is not None or isinstance(value, str):
                    raise ValueError("sb3:sac can change a fixed ent_coef mid-run, not an 'auto' one")
                model.ent_coef = float(value)
                import torch

                model.ent_coef_tensor = torch.tensor(float(value), device=model.device)
            elif hasattr(model, key):
                setattr(
                    model, key, type(getattr(model, key))(value) if getattr(model, key) is not None else value
                )
            else:
                raise ValueError(f"sb3:{self.algo} cannot change {key!r} during training")
            self.config[key] = value
        if hasattr(model, "rollout_buffer"):  # the buffer computes GAE with its own gamma and lambda
            model.rollout_buffer.gamma, model.rollout_buffer.gae_lambda = model.gamma, model.gae_lambda
        if self.config.get("normalize", False):  # VecNormalize discounts the reward's return by gamma
            self.env.gamma = model.gamma


# Sizes buffers or networks, or switches code paths, when the model is built: never mutable.
FIXED_DURING_TRAINING = frozenset(
    {
        "buffer_size",
        "replay_buffer_class",
        "replay_buffer_kwargs",
        "optimize_memory_usage",
        "use_sde",
        "n_envs",
    }
)


def _optimizers(model: Any) -> list[Any]:
    """Every optimiser SB3's lr schedule drives: the policy's (PPO/A2C/DQN) or actor, critic and
    entropy coefficient (SAC/TD3)."""
    p = model.policy
    found = [getattr(p, "optimizer", None), getattr(getattr(p, "actor", None), "optimizer", None)]
    found += [
        getattr(getattr(p, "critic", None), "optimizer", None),
        getattr(model, "ent_coef_optimizer", None),
    ]
    return [o for o in found if o is not None]


# what a population method may never change (declared with the sb3 targets in autorl.targets.builtin)
IMMUTABLE = FIXED_DURING_TRAINING | frozenset(POLICY_KEYS)
SB3Target.immutable = IMMUTABLE


class PPOTarget(SB3Target):
    algo = "ppo"


class A2CTarget(SB3Target):
    algo = "a2c"


class DQNTarget(SB3Target):
    algo = "dqn"


class SACTarget(SB3Target):
    algo = "sac"


class TD3Target(SB3Target):
    algo = "td3"


check_ppo = functools.partial(check_args, algo="ppo")
check_a2c = functools.partial(check_args, algo="a2c")
check_dqn = functools.partial(check_args, algo="dqn")
check_sac = functools.partial(check_args, algo="sac")
check_td3 = functools.partial(check_args, algo="td3")
granularity_ppo = functools.partial(granularity, algo="ppo")
granularity_a2c = functools.partial(granularity, algo="a2c")
granularity_dqn = functools.partial(granularity, algo="dqn")
granularity_sac = functools.partial(granularity, algo="sac")
granularity_td3 = functools.partial(granularity, algo="td3")
