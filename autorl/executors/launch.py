"""Start a sweep on its executor: its backend (worker processes or Ray actors) and its loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

import optuna

from autorl.executors.population import BatchedHosts, ProcessHosts, run_population
from autorl.executors.process import discard_spares
from autorl.executors.sweep import Backend, Progress, run_trials
from autorl.executors.workers import ProcessPool

if TYPE_CHECKING:
    from autorl.config import Sweep
    from autorl.results.tracking import Tracker


def open_backend(sweep: Sweep) -> Backend:
    """The sweep's workers: ``workers`` processes here, or that many Ray actors (fewer for a smaller
    population; a batched population puts one shard on each)."""
    cfg = sweep.config
    size = min(cfg.workers, sweep.population.size) if sweep.spec.population else cfg.workers
    if cfg.executor == "ray":
        from autorl.executors.ray import RayPool

        return RayPool(sweep, size)
    return ProcessPool(size, memory=cfg.trial_memory)


def batched(sweep: Sweep) -> bool:
    """The sweep's target trains many configurations as one computation (the engine), as it declares."""
    return sweep.info.batch is not None


def run(
    sweep: Sweep,
    resume: bool = False,
    progress: Progress | None = None,
    plots: bool = True,
    tracker: Tracker | None = None,
) -> optuna.Study:
    """Run (or resume) ``sweep`` on its executor; returns its study. Ctrl-C propagates after cleanup.
    ``plots``: draw the figures a run writes as it ends (a population's schedules); ``tracker``: the
    experiment tracking the orchestrator writes to (:mod:`autorl.results.tracking`)."""
    if sweep.config.executor == "tune":
        from autorl.executors.tune import run_tune

        return run_tune(sweep, resume, progress, tracker)
    backend = open_backend(sweep)
    discard_spares()  # a worker started early that this backend did not take
    try:
        if sweep.spec.population:
            kind = BatchedHosts if batched(sweep) else ProcessHosts
            hosts = kind(sweep, backend, sweep.config.trial_timeout)
            return run_population(sweep, hosts, resume, progress, plots=plots, tracker=tracker)
        return run_trials(sweep, backend, resume, progress, tracker)
    finally:
        backend.close()
