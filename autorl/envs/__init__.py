"""Environment design: contextual families, level samplers (DR, PLR, curricula) and their targets."""

from autorl.envs.families import FAMILIES, ContextParam, Family, get_family, register_family
from autorl.envs.levels import (
    DefaultSampler,
    DomainRandomization,
    LevelSampler,
    PLRConfig,
    PrioritizedLevelReplay,
    SelfPacedCurriculum,
)
from autorl.envs.plots import generalisation_gap, heatmap, plot_level_history
from autorl.envs.wrapper import ContextualEnv
from autorl.targets.base import TARGETS, register_target

if "envdesign:sb3" not in TARGETS:
    register_target(
        "envdesign:sb3",
        "autorl.envs.target:EnvDesignTarget",
        "an SB3 agent on a contextual env family; levels from default, dr, plr (PPO/A2C) or curriculum",
        unit="env_steps",
        metric="heldout_return",
        direction="maximize",
        space="envdesign/ppo.yaml",
        check="autorl.envs.target:check_envdesign",
    )
if "envdesign:actor_critic" not in TARGETS:
    register_target(
        "envdesign:actor_critic",
        "autorl.envs.ac:EnvDesignACTarget",
        "the meta-gradient actor-critic on a contextual env family; levels from default, dr or curriculum",
        unit="env_steps",
        metric="heldout_return",
        direction="maximize",
        space="agents/actor_critic.yaml",
        check="autorl.envs.ac:check_envdesign_ac",
    )

__all__ = [
    "FAMILIES",
    "ContextParam",
    "ContextualEnv",
    "DefaultSampler",
    "DomainRandomization",
    "Family",
    "LevelSampler",
    "PLRConfig",
    "PrioritizedLevelReplay",
    "SelfPacedCurriculum",
    "generalisation_gap",
    "get_family",
    "heatmap",
    "plot_level_history",
    "register_family",
]
