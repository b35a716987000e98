"""Executors run what methods decide: trials and populations on supervised worker processes, locally
(``embedded``) or as Ray actors on a local instance or a cluster (``ray``).

The package imports its modules when a name is first used, so that :mod:`autorl.executors.process`
(what the command line uses to start workers early) comes without optuna, torch or the loops."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autorl.executors.launch import batched, open_backend, run
    from autorl.executors.population import BatchedHosts, ProcessHosts, run_population
    from autorl.executors.process import discard_spares
    from autorl.executors.sweep import Backend, Progress, run_trials
    from autorl.executors.trial import TrialJob, TrialOutcome, run_trial
    from autorl.executors.workers import ProcessPool

_WHERE = {
    "batched": "launch",
    "open_backend": "launch",
    "run": "launch",
    "BatchedHosts": "population",
    "ProcessHosts": "population",
    "run_population": "population",
    "discard_spares": "process",
    "Backend": "sweep",
    "Progress": "sweep",
    "run_trials": "sweep",
    "TrialJob": "trial",
    "TrialOutcome": "trial",
    "run_trial": "trial",
    "ProcessPool": "workers",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'autorl.executors' has no attribute {name!r}")
    return getattr(importlib.import_module(f"autorl.executors.{_WHERE[name]}"), name)


__all__ = [
    "Backend",
    "BatchedHosts",
    "ProcessHosts",
    "ProcessPool",
    "Progress",
    "TrialJob",
    "TrialOutcome",
    "batched",
    "discard_spares",
    "open_backend",
    "run",
    "run_population",
    "run_trial",
    "run_trials",
]
