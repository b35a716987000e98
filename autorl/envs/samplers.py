"""Level samplers and curriculum teachers by name: what ``level_sampler`` and ``curriculum_teacher`` in a
config choose.

A level sampler is registered as a factory ``f(family, ranges, config, seed) -> LevelSampler`` over the
family's training ranges (already scaled by ``dr_width``) and the trial's config, where a sampler reads
its own ``<prefix>_*`` keys. ``scores=True`` declares that it ranks levels by scores the learner
computes from its rollouts (PLR's value losses), which only some learners provide. A third-party
package registers its own through the ``autorl.level_samplers`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym

from autorl.envs.families import Family
from autorl.envs.levels import (
    ALPGMM,
    ALPGMMConfig,
    DefaultSampler,
    DomainRandomization,
    LevelSampler,
    PLRConfig,
    PrioritizedLevelReplay,
    Ranges,
    SelfPacedCurriculum,
)
from autorl.errors import ConfigError
from autorl.registry import Registry, closest

SamplerFactory = Callable[[Family, Ranges, dict[str, Any], int], LevelSampler]

LEVEL_SAMPLERS: Registry[SamplerFactory] = Registry(
    "level sampler", entry_point_group="autorl.level_samplers"
)
TEACHERS: Registry[SamplerFactory] = Registry("curriculum teacher")


def register_level_sampler(
    name: str, factory: SamplerFactory, description: str = "", *, scores: bool = False
) -> None:
    """Register a level sampler; ``scores``: it needs per-level scores from the learner's rollouts."""
    LEVEL_SAMPLERS.register(name, factory, description, scores=scores)


def needs_scores(name: str) -> bool:
    """Whether level sampler ``name`` ranks levels by the learner's rollout scores (as declared)."""
    return bool(LEVEL_SAMPLERS.entry(name).extra.get("scores"))


def check_choice(registry: Registry[Any], key: str, name: str) -> None:
    """Refuse an unknown ``name`` for ``key`` (``level_sampler must be one of ..., got ...``)."""
    if name in registry:
        return
    close = closest(name, registry.names())
    hint = f" (did you mean {close!r}?)" if close else ""
    raise ConfigError(f"{key} must be one of {', '.join(registry.names())}, got {name!r}{hint}", key)


def prefixed(config: dict[str, Any], prefix: str, renames: dict[str, str] | None = None) -> dict[str, Any]:
    """``{"plr_temperature": 0.3}`` -> ``{"temperature": 0.3}``: a sampler config's fields from the args
    (absent ones keep the dataclass defaults, so each default is written once)."""
    renames = renames or {}
    out = {}
    for key, value in config.items():
        if key.startswith(prefix):
            name = key[len(prefix) :]
            out[renames.get(name, name)] = value
    return out


def _curriculum(family: Family, ranges: Ranges, config: dict[str, Any], seed: int) -> LevelSampler:
    teacher = config.get("curriculum_teacher", "alp_gmm")
    check_choice(TEACHERS, "curriculum_teacher", teacher)
    return TEACHERS.get(teacher)(family, ranges, config, seed)


def _widening(family: Family, ranges: Ranges, config: dict[str, Any], seed: int) -> LevelSampler:
    options = {k: float(v) for k, v in prefixed(config, "curriculum_").items() if k != "teacher"}
    if "threshold" not in options:  # 0.8 x the env's reward threshold, where it has one
        spec = gym.spec(family.env_id)
        options["threshold"] = 0.8 * spec.reward_threshold if spec.reward_threshold is not None else 0.0
    return SelfPacedCurriculum(family, ranges, seed, **options)  # type: ignore[arg-type]  # floats


register_level_sampler(
    "default",
    lambda family, ranges, config, seed: DefaultSampler(family, ranges, seed),
    "the default level only",
)
register_level_sampler(
    "dr",
    lambda family, ranges, config, seed: DomainRandomization(family, ranges, seed),
    "domain randomisation: uniform levels over the training ranges",
)
register_level_sampler(
    "plr",
    lambda family, ranges, config, seed: PrioritizedLevelReplay(
        family, ranges, seed, PLRConfig(**prefixed(config, "plr_", {"staleness": "staleness_coef"}))
    ),
    "prioritised level replay: levels replayed by their value losses",
    scores=True,
)
register_level_sampler("curriculum", _curriculum, "a curriculum by its teacher (curriculum_teacher)")
TEACHERS.register(
    "alp_gmm",
    lambda family, ranges, config, seed: ALPGMM(
        family, ranges, seed, ALPGMMConfig(**prefixed(config, "alp_"))
    ),
    "ALP-GMM: levels where learning progress is largest",
)
TEACHERS.register(
    "widening", _widening, "self-paced widening of the ranges once the return passes a threshold"
)
LEVEL_SAMPLERS.mark_built_in()
TEACHERS.mark_built_in()
