"""Targets: what a sweep tunes. See :mod:`autorl.targets.base` for the three accepted forms."""

from autorl.targets.base import (
    TARGETS,
    BatchTrainable,
    TargetInfo,
    Trainable,
    TrialContext,
    declaring,
    define_target,
    granularity_range,
    pieces,
    reference_info,
    register_target,
    target_info,
)
from autorl.targets.driver import TargetKind, TrialResult, run_target, target_kind
from autorl.targets.runner import (
    Agents,
    Aggregate,
    BatchAgents,
    Select,
    Step,
    Trainables,
    advance,
    aggregate_seeds,
    iqm,
    next_report,
    select_value,
)

__all__ = [
    "TARGETS",
    "Agents",
    "Aggregate",
    "BatchAgents",
    "BatchTrainable",
    "Select",
    "Step",
    "TargetInfo",
    "TargetKind",
    "Trainable",
    "Trainables",
    "TrialContext",
    "TrialResult",
    "advance",
    "aggregate_seeds",
    "declaring",
    "define_target",
    "granularity_range",
    "iqm",
    "next_report",
    "pieces",
    "reference_info",
    "register_target",
    "run_target",
    "select_value",
    "target_info",
    "target_kind",
]

from autorl.targets import builtin as _builtin  # noqa: F401  (registers the built-in targets)
