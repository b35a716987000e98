"""The embedded executor: Optuna on this machine, trials in worker processes, a persistent storage.

One worker runs trials in this process. Several workers are separate processes sharing the study's
storage (SQLite in the output directory unless ``storage`` names another); each claims a trial slot
from a shared counter before asking the sampler, so exactly ``trials`` trials run. A worker process
dies with its parent (Linux ``PR_SET_PDEATHSIG``), so a killed sweep leaves nothing running.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.storages import fail_stale_trials
from optuna.storages._heartbeat import get_heartbeat_thread, is_heartbeat_enabled
from optuna.trial import FrozenTrial, TrialState

from autorl.config import Sweep, parse_sweep
from autorl.executors.objective import Objective, TrialFailed
from autorl.executors.storage import check_resumable, consumed, counted, open_study, recover
from autorl.methods import build_plan

Progress = Callable[[list[FrozenTrial]], None]


def _remaining(study: optuna.Study, sweep: Sweep) -> int:
    """Trials still to start; 0 once ``budget.total`` is spent."""
    trials = study.get_trials(deepcopy=False)
    total = sweep.config.budget.total
    if total is not None and consumed(trials) >= total:
        return 0
    running = sum(1 for t in trials if t.state == TrialState.RUNNING) if sweep.shared_storage or total else 0
    return max(0, sweep.config.trials - counted(trials) - running)


def _run_one(study: optuna.Study, objective: Objective, lock: Any = None) -> None:
    """Ask, run and tell one trial.

    Asking happens under ``lock``: on SQLite two processes can otherwise pop the same queued
    (WAITING) trial, since SQLite has no row locks.
    """
    storage = study._storage
    with lock if lock is not None else contextlib.nullcontext():
        if is_heartbeat_enabled(storage):
            fail_stale_trials(study)
        trial = study.ask()
    try:
        with get_heartbeat_thread(trial._trial_id, storage):
            values = objective(trial)
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED)
    except TrialFailed:
        study.tell(trial, state=TrialState.FAIL)
    except BaseException:
        study.tell(trial, state=TrialState.FAIL)
        raise
    else:
        study.tell(trial, values)


def run_embedded(sweep: Sweep, resume: bool = False, progress: Progress | None = None) -> optuna.Study:
    """Run (or resume) the sweep to its trial count; returns the study. Ctrl-C propagates after cleanup."""
    study = open_study(sweep)
    check_resumable(study, sweep, resume)
    recover(study, stale_running=not sweep.shared_storage)
    # A restart gets fresh random streams (numbered after the trials so far), else a seeded sampler
    # proposes its first points again.
    base = len(study.get_trials(deepcopy=False)) * sweep.config.workers
    plan = build_plan(sweep, worker=base)
    study.sampler, study.pruner = plan.sampler, plan.pruner
    if sweep.config.workers == 1:
        objective = Objective(sweep)
        # A private storage needs no recount per trial (a recount reads every trial: O(n) each time).
        while (left := _remaining(study, sweep)) > 0:
            recount = sweep.shared_storage or sweep.config.budget.total is not None
            for _ in range(1 if recount else left):
                _run_one(study, objective)
                if progress:
                    progress(study.get_trials(deepcopy=False))
        return study
    _run_workers(sweep, study, progress, base)
    return study


def _run_workers(sweep: Sweep, study: optuna.Study, progress: Progress | None, base: int) -> None:
    ctx = mp.get_context("spawn")
    slots = ctx.Value("i", _remaining(study, sweep))
    data = sweep.resolved()
    procs = [
        ctx.Process(
            target=_worker_main, args=(data, sweep.source, str(sweep.out), base + i, slots), daemon=False
        )
        for i in range(sweep.config.workers)
    ]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            if progress:
                progress(study.get_trials(deepcopy=False))
            time.sleep(0.5)
    except KeyboardInterrupt:
        # The workers got the same SIGINT; give them a moment to record their trials as interrupted.
        _stop(procs)
        raise
    finally:
        _stop(procs)
    if progress:
        progress(study.get_trials(deepcopy=False))
    bad = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if bad:
        raise RuntimeError(f"{len(bad)} worker process(es) exited with codes {bad}; see the messages above")


def _stop(procs: list[Any], grace: float = 10.0) -> None:
    deadline = time.monotonic() + grace
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def _worker_main(data: dict[str, Any], source: str, out: str, worker: int, slots: Any) -> None:
    _die_with_parent()
    parent = os.getppid()
    sweep = parse_sweep(data, source, out)
    plan = build_plan(sweep, worker=worker)
    study = optuna.load_study(
        study_name=sweep.study_name,
        storage=open_study(sweep)._storage,
        sampler=plan.sampler,
        pruner=plan.pruner,
    )
    objective = Objective(sweep)
    try:
        while os.getppid() == parent:
            with slots.get_lock():
                if slots.value <= 0:
                    return
                slots.value -= 1
            if (sweep.shared_storage or sweep.config.budget.total) and _remaining(study, sweep) <= 0:
                return
            _run_one(study, objective, slots.get_lock())
    except KeyboardInterrupt:
        return
