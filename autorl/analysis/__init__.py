"""Analysis: aggregate statistics with bootstrap intervals (after rliable) and comparison reports.

The data shape is a score dict ``{method: (runs, tasks) array}``; :func:`scores_from_frame` builds it
from a tidy frame. See ``docs/compare.md``, section "Statistics".
"""

from autorl.analysis.report import aggregate_table, normalize_frame, write_report
from autorl.analysis.stats import (
    Interval,
    Profile,
    anytime_curve,
    iqm,
    mean,
    median,
    normalize,
    optimality_gap,
    pairwise_probability_of_improvement,
    performance_profile,
    probability_of_improvement,
    probability_of_improvement_ci,
    scores_from_frame,
    stratified_bootstrap_ci,
)

__all__ = [
    "Interval",
    "Profile",
    "aggregate_table",
    "anytime_curve",
    "iqm",
    "mean",
    "median",
    "normalize",
    "normalize_frame",
    "optimality_gap",
    "pairwise_probability_of_improvement",
    "performance_profile",
    "probability_of_improvement",
    "probability_of_improvement_ci",
    "scores_from_frame",
    "stratified_bootstrap_ci",
    "write_report",
]
