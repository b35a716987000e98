"""Results: the trial record, storages, the run directory, tables, schedules and plots."""

from autorl.results.record import ATTR, TrialRecord, consumed, counted, record_of, was_interrupted
from autorl.results.rundir import DirectoryLock, owned_run, versions, write_atomic, write_run_files
from autorl.results.storage import make_storage, open_study, recover
from autorl.results.store import (
    best_record,
    best_trials,
    curves_frame,
    export,
    load_results,
    open_run,
    trials_frame,
)
from autorl.urls import redact

__all__ = [
    "ATTR",
    "DirectoryLock",
    "TrialRecord",
    "best_record",
    "best_trials",
    "consumed",
    "counted",
    "curves_frame",
    "export",
    "load_results",
    "make_storage",
    "open_run",
    "open_study",
    "owned_run",
    "record_of",
    "recover",
    "redact",
    "trials_frame",
    "versions",
    "was_interrupted",
    "write_atomic",
    "write_run_files",
]
