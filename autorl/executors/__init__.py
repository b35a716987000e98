"""Executors: where trials run. ``embedded`` (Optuna, worker processes) and ``ray`` (Ray Tune)."""

from autorl.executors.embedded import run_embedded
from autorl.executors.objective import ATTR, Objective, TrialFailed, trial_seeds
from autorl.executors.storage import counted, make_storage, open_study, recover

__all__ = [
    "ATTR",
    "Objective",
    "TrialFailed",
    "counted",
    "make_storage",
    "open_study",
    "recover",
    "run_embedded",
    "trial_seeds",
]
