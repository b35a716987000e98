"""``envdesign:actor_critic``: the meta-gradient actor-critic trained on levels from a level sampler.

Same env-design args, metrics and outputs as ``envdesign:sb3`` (see :mod:`autorl.envs.target`); the
agent's own hyperparameters (``lr``, ``num_envs``, ``meta_gamma``, ...) are those of
``agents:actor_critic``. Level samplers learn from episode returns through the env wrapper, so DR and
both curriculum teachers work; PLR scores levels from an agent's per-transition value losses, which
only the SB3 learner exposes (``envdesign:sb3``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from autorl.agents.actor_critic import ActorCriticTarget, _make_env
from autorl.envs.checks import LEVEL_KEYS, check_levels
from autorl.envs.families import Family, get_family
from autorl.envs.levels import LevelSampler
from autorl.envs.samplers import LEVEL_SAMPLERS, needs_scores
from autorl.envs.target import heldout_metrics, refuse_unknown, setup_levels
from autorl.envs.wrapper import ContextualEnv
from autorl.errors import ConfigError
from autorl.targets.base import TrialContext


def make_contextual_env(family: str, sampler: LevelSampler) -> gym.Env:
    """One training env; module level so the actor-critic can pickle its envs (and the sampler in them)
    into a checkpoint."""
    fam = get_family(family)
    return ContextualEnv(_make_env(fam.env_id), fam, sampler.sample, sampler.episode_end)


class EnvDesignACTarget(ActorCriticTarget):
    """``agents:actor_critic`` (meta-gradients optional) on a contextual family."""

    # set by setup_levels, shared with the SB3 learner
    family: Family
    sampler: LevelSampler
    levels_log: list[dict[str, Any]]

    def __init__(self, config: dict[str, Any], ctx: TrialContext) -> None:
        _refuse_scored(config.get("level_sampler", "default"))
        self.config, self.ctx = dict(config), ctx
        setup_levels(self, self.config, ctx.seed)
        agent = {k: v for k, v in config.items() if k not in LEVEL_KEYS}
        super().__init__({**agent, "env_id": self.family.env_id}, ctx)

    def _env_fn(self) -> Any:
        return functools.partial(make_contextual_env, self.family.name, self.sampler)

    def train(self, budget: int) -> dict[str, float]:
        metrics = super().train(budget)  # eval_return: the default context
        self.levels_log.append({"step": self.env_steps, **self.sampler.snapshot()})
        return {**metrics, **heldout_metrics(self, self.env_steps)}

    def save(self, path: Path) -> None:
        super().save(path)  # the envs, and the sampler inside them, are pickled together (envs.pkl)
        torch.save(self.levels_log, Path(path) / "levels_log.pt")

    def load(self, path: Path) -> None:
        super().load(path)
        self.sampler = self.env.envs.envs[0].source.__self__  # type: ignore[attr-defined]  # the envs' sampler
        self.levels_log = torch.load(Path(path) / "levels_log.pt", weights_only=True)


def _refuse_scored(sampler: str) -> None:
    """A sampler that ranks levels by the learner's rollout scores (PLR) cannot run here."""
    if sampler in LEVEL_SAMPLERS and needs_scores(sampler):
        raise ConfigError(
            f"{sampler} scores levels from per-transition value losses, which envdesign:actor_critic does "
            "not expose; use dr or curriculum here, or envdesign:sb3 for it",
            "level_sampler",
        )


def check_envdesign_ac(args: dict[str, Any], params: list[str]) -> None:
    """Refuse a bad family, sampler or agent key before any trial starts."""
    from autorl.agents.actor_critic import ActorCriticConfig

    check_levels(args)
    _refuse_scored(args.get("level_sampler", "default"))
    agent = {k: v for k, v in args.items() if k not in LEVEL_KEYS}
    known = set(ActorCriticConfig.__dataclass_fields__) | LEVEL_KEYS
    refuse_unknown("envdesign:actor_critic", set(args) | set(params), known)
    ActorCriticConfig.from_dict({**agent, "env_id": get_family(args.get("family", "CartPole")).env_id})
