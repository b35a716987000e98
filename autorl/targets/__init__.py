"""Targets: what a sweep tunes. See :mod:`autorl.targets.base` for the three accepted forms."""

from autorl.targets.base import (
    TARGETS,
    TargetInfo,
    Trainable,
    TrialContext,
    granularity_range,
    register_target,
    target_info,
)
from autorl.targets.driver import (
    Aggregate,
    Select,
    TargetKind,
    TrialResult,
    next_report,
    run_target,
    target_kind,
)

__all__ = [
    "TARGETS",
    "Aggregate",
    "Select",
    "TargetInfo",
    "TargetKind",
    "Trainable",
    "TrialContext",
    "TrialResult",
    "granularity_range",
    "next_report",
    "register_target",
    "run_target",
    "target_info",
    "target_kind",
]

from autorl.targets import builtin as _builtin  # noqa: F401  (registers the built-in targets)
