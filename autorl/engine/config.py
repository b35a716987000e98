"""What every member of an engine shares (:class:`EngineConfig`), the rules of the hyperparameters each
member has as a tensor (:data:`HYPERPARAMS`, :func:`check_hparams`, :func:`hparams_of`), and the engine
targets' arguments (:data:`SHAPE_KEYS`, :data:`ARG_KEYS`, :data:`FIXED_KEYS`, :func:`check_args`,
:func:`engine_config`, :func:`granularity`).

Nothing here imports torch: the process that runs a sweep checks an engine config with it, and only
the workers that train import torch (:attr:`EngineConfig.torch_dtype` does, where it is read)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from autorl.engine.parts import ACTIVATIONS, BATCHED_ENVS, DTYPES, OBJECTIVES
from autorl.errors import ConfigError
from autorl.registry import closest, unknown_name

if TYPE_CHECKING:
    import torch

    from autorl.engine.envs import EnvSpec

DEFAULT_HPARAMS: Mapping[str, float] = MappingProxyType(
    {
        "learning_rate": 3e-4,
        "clip_range": 0.2,
        "ent_coef": 0.0,
        "vf_coef": 0.5,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "max_grad_norm": 0.5,
        "adam_eps": 1e-5,
    }
)
"""SB3 PPO's defaults (``adam_eps`` as SB3's ActorCriticPolicy sets it) of the per-member hyperparameters."""
HYPERPARAMS = tuple(DEFAULT_HPARAMS)

_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "learning_rate": (lambda v: v >= 0, ">= 0"),
    "clip_range": (lambda v: v > 0, "> 0"),
    "ent_coef": (lambda v: True, "finite"),
    "vf_coef": (lambda v: v >= 0, ">= 0"),
    "gamma": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "gae_lambda": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "max_grad_norm": (lambda v: v > 0, "> 0"),
    "adam_eps": (lambda v: v > 0, "> 0"),
}
_SCHEDULES = ("constant", "linear")
_DTYPE_ALIASES = {"float": "float32", "double": "float64"}  # torch's other names for them


@dataclass(frozen=True)
class EngineConfig:
    """What every member of one engine (a "group") shares: the shapes of its computation.

    Attributes:
        env: The gymnasium id of a batched env (:data:`autorl.engine.parts.BATCHED_ENVS`).
        n_envs: Envs per member.
        n_steps: Rollout length per env; a rollout is ``n_envs * n_steps`` env steps per member.
        n_epochs: Passes over each rollout.
        n_minibatches: Minibatches per epoch; must divide ``n_envs * n_steps``.
        objective: The policy objective's name in :data:`autorl.engine.parts.OBJECTIVES`
            (``"clip"``: PPO's clipped surrogate).
        hidden: Hidden layer widths of the actor and of the critic (separate networks).
        activation: ``"tanh"`` or ``"relu"``.
        normalize_obs: Normalise observations by running statistics per member (VecNormalize).
        normalize_reward: Scale rewards by the running std of the discounted return per member.
        lr_schedule: ``"constant"`` or ``"linear"`` (to 0 at ``total_steps``).
        clip_schedule: ``"constant"`` or ``"linear"`` (to 0 at ``total_steps``).
        total_steps: Env steps per member at which the linear schedules reach 0.
        log_std_init: Initial log std of continuous actions.
        ortho_init: Orthogonal init (gains sqrt 2, 0.01 for the policy head, 1 for the value head);
            else torch's default Linear init.
        eval_episodes: Episodes per member of :meth:`Population.evaluate`.
        device: Where every tensor lives.
        dtype: ``"float32"`` or ``"float64"`` (or the torch dtype), of networks, envs and statistics;
            :attr:`torch_dtype` is the torch dtype.
        compile: ``torch.compile`` the update's minibatch step (loss and gradient). On one CPU thread
            here training at P = 8 ran 1.1-1.2x faster after a cold compile of about 15 s, paid again in
            every new process and for every new population size: it pays after about 7-10 M env steps
            (benchmarks/engine_kernels.py). Needs a C++ compiler (inductor) on the CPU.
    """

    env: str
    n_envs: int = 32
    n_steps: int = 32
    n_epochs: int = 4
    n_minibatches: int = 4
    objective: str = "clip"
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    normalize_obs: bool = False
    normalize_reward: bool = False
    lr_schedule: str = "constant"
    clip_schedule: str = "constant"
    total_steps: int | None = None
    log_std_init: float = 0.0
    ortho_init: bool = True
    eval_episodes: int = 10
    device: str = "cpu"
    dtype: str | torch.dtype = "float32"  # its name after __post_init__
    compile: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        name = str(self.dtype).removeprefix("torch.")  # a torch dtype: its name
        object.__setattr__(self, "dtype", _DTYPE_ALIASES.get(name, name))
        if self.env not in BATCHED_ENVS:
            raise ConfigError(unknown_name("batched env", self.env, BATCHED_ENVS.names()), key="env")
        for name in ("n_envs", "n_steps", "n_epochs", "n_minibatches", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", key=name)
        if (self.n_envs * self.n_steps) % self.n_minibatches:
            raise ConfigError(
                f"must divide n_envs * n_steps = {self.n_envs * self.n_steps}, got {self.n_minibatches}",
                key="n_minibatches",
            )
        if self.n_envs * self.n_steps < 2 * self.n_minibatches:  # advantages are normalised per minibatch
            raise ConfigError(
                f"minibatches must hold >= 2 samples: n_envs * n_steps = {self.n_envs * self.n_steps} is too "
                f"few for {self.n_minibatches} minibatches",
                key="n_minibatches",
            )
        if not self.hidden or min(self.hidden) < 1:
            raise ConfigError(f"must be one or more widths >= 1, got {self.hidden}", key="hidden")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}", "activation")
        for name in ("lr_schedule", "clip_schedule"):
            if getattr(self, name) not in _SCHEDULES:
                raise ConfigError(f"must be one of {_SCHEDULES}, got {getattr(self, name)!r}", key=name)
            if getattr(self, name) == "linear" and (self.total_steps is None or self.total_steps < 1):
                raise ConfigError(f"a linear schedule needs total_steps >= 1, got {self.total_steps}", name)
        if not isinstance(self.compile, bool):
            raise ConfigError(f"must be true or false, got {self.compile!r}", key="compile")
        if self.dtype not in DTYPES:
            raise ConfigError(f"must be one of {', '.join(DTYPES)}, got {self.dtype!r}", key="dtype")
        try:
            OBJECTIVES.entry(self.objective)
        except ConfigError as exc:
            raise ConfigError(exc.rule, key="objective") from None

    @property
    def spec(self) -> EnvSpec:
        """The batched env's spec (imports the env, and torch)."""
        return BATCHED_ENVS.entry(self.env).load().spec

    @cached_property
    def torch_dtype(self) -> torch.dtype:
        """:attr:`dtype` as a torch dtype (imports torch)."""
        import torch

        return getattr(torch, str(self.dtype).removeprefix("torch."))  # type: ignore[no-any-return]

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as :meth:`from_dict` reads it."""
        out = dataclasses.asdict(self)
        out["hidden"] = list(self.hidden)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EngineConfig:
        """The config :meth:`to_dict` wrote (e.g. ``state_dict()["config"]``, to rebuild a population)."""
        values = dict(data)
        values["hidden"] = tuple(values["hidden"])
        return cls(**values)


def check_hparams(values: Mapping[str, float]) -> dict[str, float]:
    """``values`` as floats, after checking every name and range.

    Raises:
        ConfigError: (a ValueError) for an unknown name, naming the valid ones, or a value out of range.
    """
    out = {}
    for name, value in values.items():
        if name not in _RULES:
            raise ConfigError(unknown_name("hyperparameter", name, HYPERPARAMS))
        rule, text = _RULES[name]
        value = float(value)
        if not (math.isfinite(value) and rule(value)):
            raise ConfigError(f"must be finite and {text}, got {value}", key=name)
        out[name] = value
    return out


SHAPE_KEYS = (
    "n_envs",
    "n_steps",
    "n_epochs",
    "n_minibatches",
    "objective",
    "hidden",
    "activation",
    "normalize_obs",
    "normalize_reward",
    "lr_schedule",
    "clip_schedule",
    "log_std_init",
    "ortho_init",
)
ARG_KEYS = ("env", "device", "dtype", "threads", "eval_episodes", "compile")


def engine_config(config: Mapping[str, Any], total_steps: int | None) -> EngineConfig:
    """The shape-setting part of ``config`` as an :class:`EngineConfig` (linear schedules end at the
    member's budget, ``total_steps``, unless the config says otherwise)."""
    values: dict[str, Any] = {"env": config.get("env", "CartPole-v1")}
    for key in (*SHAPE_KEYS, "eval_episodes", "device", "total_steps", "compile"):
        if key in config:
            values[key] = config[key]
    if isinstance(values.get("hidden"), int):
        values["hidden"] = (values["hidden"],) * 2
    if "dtype" in config:
        values["dtype"] = str(config["dtype"])
    if "total_steps" not in values and "linear" in (values.get("lr_schedule"), values.get("clip_schedule")):
        values["total_steps"] = total_steps
    for key in ("n_envs", "n_steps", "n_epochs", "n_minibatches", "eval_episodes"):
        if key in values:
            values[key] = int(values[key])
    return EngineConfig(**values)


def hparams_of(config: Mapping[str, Any]) -> dict[str, float]:
    return check_hparams({k: v for k, v in config.items() if k in HYPERPARAMS})


def check_args(
    args: dict[str, Any], params: list[str], extra_keys: Sequence[str] = (), target: str = "engine:ppo"
) -> None:
    """Refuse an unknown key (with the closest valid one), a bad shape or env, before anything trains."""

    known = set(HYPERPARAMS) | set(SHAPE_KEYS) | set(ARG_KEYS) | {"total_steps"} | set(extra_keys)
    for key in [*args, *params]:
        if key not in known:
            close = closest(key, sorted(known))
            hint = f" (did you mean {close!r}?)" if close else ""
            raise ConfigError(f"is not a key of {target}{hint}; valid keys: {', '.join(sorted(known))}", key)
    engine_config({k: v for k, v in args.items() if k not in params}, total_steps=1)
    hparams_of({k: v for k, v in args.items() if k in HYPERPARAMS})


# What a population method may never change, and what every member of one computation shares: the
# shapes and arguments (hyperparameters are tensors). Declared with the engine's targets.
FIXED_KEYS = frozenset(SHAPE_KEYS) | frozenset(ARG_KEYS)


def granularity(config: Mapping[str, Any]) -> int:
    """Env steps of one rollout, ``n_envs * n_steps``: the engine trains whole rollouts."""
    return int(config.get("n_envs", EngineConfig.n_envs)) * int(config.get("n_steps", EngineConfig.n_steps))
