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
from autorl.envs.samplers import LEVEL_SAMPLERS, TEACHERS, register_level_sampler
from autorl.envs.wrapper import ContextualEnv

__all__ = [
    "FAMILIES",
    "LEVEL_SAMPLERS",
    "TEACHERS",
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
    "register_level_sampler",
]
