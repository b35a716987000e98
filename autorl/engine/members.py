"""What belongs to the members of a population, as tensors whose first dimension is the member: their
store (:class:`_Members`: networks, Adam, normalisers, envs, random streams) and one rollout's buffer
(:class:`_Rollout`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from autorl.engine.config import EngineConfig


@dataclass
class _Members:
    """Everything that belongs to the members; every tensor's first dimension is the member.

    One class for the whole population and for any subset of it (:meth:`select`), so that a subset
    trains on its own copy and :meth:`assign` writes it back.
    """

    seed: Tensor  # [P] int64
    counter: Tensor  # [P] int64: draws made from the training stream
    eval_counter: Tensor  # [P] int64: draws made from the evaluation stream
    theta: Tensor  # [P, n_params]
    adam_m: Tensor  # [P, n_params]
    adam_v: Tensor  # [P, n_params]
    adam_step: Tensor  # [P] int64
    hp: dict[str, Tensor]  # [P] float64 each
    obs_mean: Tensor  # [P, obs_dim]
    obs_var: Tensor  # [P, obs_dim]
    obs_count: Tensor  # [P]
    ret_mean: Tensor  # [P]: of the discounted return (VecNormalize tracks it; only the variance is used)
    ret_var: Tensor  # [P]
    ret_count: Tensor  # [P]
    ret_acc: Tensor  # [P, E]: each env's running discounted return
    env_state: Tensor  # [P, E, state_dim]
    env_elapsed: Tensor  # [P, E] int64
    obs: Tensor  # [P, E, obs_dim]: the current raw observations
    ep_return: Tensor  # [P, E]: the undiscounted return so far of each env's episode
    level: dict[str, Tensor]  # [P, E] each: physical parameters of the training envs
    eval_level: dict[str, Tensor]  # [P] each: physical parameters of the evaluation envs
    steps: Tensor  # [P] int64: env steps trained
    failed: Tensor  # [P] bool

    def flat(self) -> dict[str, Tensor]:
        """Every tensor by name; those of the dict fields as ``"field/key"``. The tensors, not copies."""
        out: dict[str, Tensor] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict):
                out.update({f"{f.name}/{key}": t for key, t in value.items()})
            else:
                out[f.name] = value
        return out

    @classmethod
    def from_flat(cls, tensors: Mapping[str, Tensor]) -> _Members:
        values: dict[str, Any] = {}
        for name, t in tensors.items():
            field, _, key = name.partition("/")
            if key:
                values.setdefault(field, {})[key] = t
            else:
                values[field] = t
        return cls(**values)

    def select(self, idx: Tensor) -> _Members:
        return _Members.from_flat({name: t[idx] for name, t in self.flat().items()})

    def assign(self, idx: Tensor | slice, other: _Members, names: Sequence[str] | None = None) -> None:
        """Write ``other``'s members into rows ``idx`` (all tensors, or only the fields in ``names``)."""
        mine, theirs = self.flat(), other.flat()
        for name, t in mine.items():
            if names is None or name.partition("/")[0] in names:
                t[idx] = theirs[name]

    @classmethod
    def cat(cls, parts: Sequence[_Members]) -> _Members:
        flats = [p.flat() for p in parts]
        return cls.from_flat({name: torch.cat([f[name] for f in flats]) for name in flats[0]})


_COPIED = (
    "theta",
    "adam_m",
    "adam_v",
    "adam_step",
    "obs_mean",
    "obs_var",
    "obs_count",
    "ret_mean",
    "ret_var",
    "ret_count",
    "steps",
    "failed",
)
"""The fields :meth:`Population.copy` copies: the agent, not its envs, hyperparameters or random stream."""


@dataclass
class _Rollout:
    """One rollout of k members, ``[k, n_steps, n_envs, ...]``, preallocated once per :meth:`train` call."""

    obs: Tensor  # normalised, as the policy saw them
    actions: Tensor  # [..] int64 or [.., action_dim] (unclipped)
    log_probs: Tensor
    rewards: Tensor  # normalised where normalize_reward
    dones: Tensor
    truncated: Tensor
    final_obs: Tensor  # normalised; the obs an episode ended in (for bootstrapping truncations)
    last_obs: Tensor  # [k, n_envs, obs_dim]: normalised, after the rollout

    @classmethod
    def empty(cls, config: EngineConfig, k: int) -> _Rollout:
        spec, dtype, device = config.spec, config.torch_dtype, config.device
        shape = (k, config.n_steps, config.n_envs)

        def new(*extra: int, dt: torch.dtype = dtype) -> Tensor:
            return torch.empty(*shape, *extra, dtype=dt, device=device)

        discrete = spec.n_actions is not None
        return cls(
            obs=new(spec.obs_dim),
            actions=new(dt=torch.int64) if discrete else new(spec.action_dim),
            log_probs=new(),
            rewards=new(),
            dones=new(dt=torch.bool),
            truncated=new(dt=torch.bool),
            final_obs=new(spec.obs_dim),
            last_obs=torch.empty(k, config.n_envs, spec.obs_dim, dtype=dtype, device=device),
        )
