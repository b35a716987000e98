"""What the environment-design targets' configs are checked against, importable without torch or SB3:
the level keys every env-design learner understands (:data:`LEVEL_KEYS`) and the checks the sweep's
own process runs before anything trains."""

from __future__ import annotations

from typing import Any

from autorl.engine.config import check_args
from autorl.envs.families import get_family
from autorl.envs.samplers import LEVEL_SAMPLERS, TEACHERS, check_choice
from autorl.errors import ConfigError

LEVEL_KEYS = {
    "family",
    "train_ranges",
    "level_sampler",
    "dr_width",
    "plr_score",
    "plr_prioritization",
    "plr_temperature",
    "plr_staleness",
    "plr_replay_prob",
    "plr_buffer_size",
    "curriculum_teacher",
    "curriculum_threshold",
    "curriculum_start_width",
    "curriculum_step",
    "alp_random_prob",
    "alp_fit_every",
    "alp_max_components",
    "n_test_levels",
    "n_train_eval_levels",
    "test_seed",
    "n_val_levels",
    "val_seed",
}  # what every env-design learner understands


def check_levels(args: dict[str, Any]) -> None:
    """Refuse an unknown family, bad ranges, sampler or curriculum teacher."""
    family = get_family(args.get("family", "CartPole"))
    family.check_ranges(args.get("train_ranges") or {})
    check_choice(LEVEL_SAMPLERS, "level_sampler", args.get("level_sampler", "default"))
    check_choice(TEACHERS, "curriculum_teacher", args.get("curriculum_teacher", "alp_gmm"))


def check_envdesign_engine(args: dict[str, Any], params: list[str]) -> None:
    """Refuse a bad family, sampler or engine key before anything trains."""
    check_levels(args)
    check_args(args, params, extra_keys=sorted(LEVEL_KEYS), target="envdesign:engine")
    if args.get("plr_score") == "max_mc":
        raise ConfigError(
            "envdesign:engine scores PLR levels by value losses: use positive_value_loss or l1_value_loss",
            "plr_score",
        )
    family = get_family(args.get("family", "CartPole"))
    if "env" in args and args["env"] != family.env_id:
        raise ConfigError(
            f"the family {family.name!r} is {family.env_id}: leave env out or set it to that", "env"
        )
