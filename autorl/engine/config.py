"""What every member of an engine shares (:class:`EngineConfig`) and the rules of the hyperparameters
each member has as a tensor (:data:`HYPERPARAMS`, :func:`check_hparams`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch

from autorl.engine.envs import SPECS, EnvSpec
from autorl.engine.nets import ACTIVATIONS
from autorl.engine.objectives import OBJECTIVES
from autorl.errors import ConfigError
from autorl.registry import unknown_name

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


@dataclass(frozen=True)
class EngineConfig:
    """What every member of one engine (a "group") shares: the shapes of its computation.

    Attributes:
        env: The gymnasium id of a batched env (:data:`autorl.engine.envs.SPECS`).
        n_envs: Envs per member.
        n_steps: Rollout length per env; a rollout is ``n_envs * n_steps`` env steps per member.
        n_epochs: Passes over each rollout.
        n_minibatches: Minibatches per epoch; must divide ``n_envs * n_steps``.
        objective: The policy objective's name in :data:`autorl.engine.objectives.OBJECTIVES`
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
        dtype: torch.float32 or torch.float64, of networks, envs and statistics.
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
    dtype: torch.dtype = torch.float32
    compile: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if self.env not in SPECS:
            raise ConfigError(unknown_name("batched env", self.env, SPECS), key="env")
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
        if self.dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"must be torch.float32 or torch.float64, got {self.dtype}", key="dtype")
        try:
            OBJECTIVES.entry(self.objective)
        except ConfigError as exc:
            raise ConfigError(exc.rule, key="objective") from None

    @property
    def spec(self) -> EnvSpec:
        """The batched env's spec."""
        return SPECS[self.env]

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the dtype as its name), as :meth:`from_dict` reads it."""
        out = dataclasses.asdict(self)
        out["hidden"] = list(self.hidden)
        out["dtype"] = str(self.dtype).removeprefix("torch.")
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EngineConfig:
        """The config :meth:`to_dict` wrote (e.g. ``state_dict()["config"]``, to rebuild a population)."""
        values = dict(data)
        values["dtype"] = getattr(torch, values["dtype"])
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
