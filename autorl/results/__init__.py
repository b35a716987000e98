"""Results: the run directory, trial tables, best configurations and plots."""

from autorl.results.store import (
    best_record,
    best_trials,
    curves_frame,
    export,
    load_results,
    open_run,
    trials_frame,
    versions,
    write_run_files,
)

__all__ = [
    "best_record",
    "best_trials",
    "curves_frame",
    "export",
    "load_results",
    "open_run",
    "trials_frame",
    "versions",
    "write_run_files",
]
