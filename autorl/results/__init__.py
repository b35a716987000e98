"""Results: the trial record, storages, the run directory, tables, schedules and plots.

The tables (:mod:`autorl.results.store`, which imports pandas) load on first use: a worker process
records trials through :mod:`autorl.results.record` and never needs them (pandas is 0.3 s of a
worker's start-up, on the path to its first job)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from autorl.results.record import ATTR, TrialRecord, consumed, counted, record_of, was_interrupted
from autorl.results.rundir import DirectoryLock, owned_run, versions, write_atomic, write_run_files
from autorl.results.storage import make_storage, open_study, recover
from autorl.urls import redact

if TYPE_CHECKING:
    from autorl.results.store import (
        best_record,
        best_trials,
        curves_frame,
        export,
        load_results,
        open_run,
        trials_frame,
    )

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
_STORE = ("best_record", "best_trials", "curves_frame", "export", "load_results", "open_run", "trials_frame")


def __getattr__(name: str) -> Any:
    if name in _STORE:
        return getattr(importlib.import_module("autorl.results.store"), name)
    raise AttributeError(f"module 'autorl.results' has no attribute {name!r}")


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
