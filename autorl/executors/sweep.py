"""The trial loop of sampler-based methods (static HPO, multi-fidelity, and the methods that live
inside one run): ask the method for a configuration, run it on a free worker, tell the result.

One loop serves every backend (local worker processes, Ray actors): the orchestrator is the only
process that talks to the method (sampler and pruner) and writes to the study, so trials are counted
exactly, ``budget.total`` and ``budget.time`` are honoured the same everywhere, and a worker that dies
or overruns ``trial_timeout`` costs one trial, recorded FAIL, never the sweep.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import optuna
from optuna.trial import FrozenTrial, TrialState

from autorl.config import Sweep
from autorl.executors.trial import Report, SweepRef, TrialJob, TrialOutcome, run_trial
from autorl.executors.workers import Event
from autorl.methods import build_plan
from autorl.results.record import TrialRecord, consumed, counted, finish, was_interrupted
from autorl.results.rundir import note_run
from autorl.results.status import SweepStatus
from autorl.results.storage import GRACE_S, HEARTBEAT_S, open_study, recover
from autorl.space import suggest

Progress = Callable[[SweepStatus], None]
ELAPSED = "autorl_elapsed_s"  # study attribute: wall time the sweep has run, summed across resumes


class Backend(Protocol):
    """Where jobs run: :class:`~autorl.executors.workers.ProcessPool` or the Ray actors."""

    @property
    def size(self) -> int: ...

    def idle(self) -> list[int]: ...

    def busy(self) -> dict[int, tuple[int, float]]: ...

    def submit(self, fn: Any, arg: Any, log: Any = None, worker: int | None = None) -> int: ...

    def answer(self, worker: int, job: int, value: Any) -> None: ...

    def events(self, timeout: float | None = None) -> list[Event]: ...

    def kill(self, worker: int) -> None: ...

    def close(self) -> None: ...


class Clock:
    """The sweep's wall time, summed across resumes (kept in the study, written every few seconds)."""

    def __init__(self, study: optuna.Study, limit: float | None) -> None:
        self.study, self.limit = study, limit
        self.before = float(study.user_attrs.get(ELAPSED, 0.0))
        self.start = time.monotonic()
        self._saved = self.start

    @property
    def elapsed(self) -> float:
        return self.before + time.monotonic() - self.start

    @property
    def left(self) -> float:
        return math.inf if self.limit is None else self.limit - self.elapsed

    def save(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._saved > 5.0:
            self.study.set_user_attr(ELAPSED, self.elapsed)
            self._saved = now


class Heartbeats:
    """One thread that keeps the running trials of a shared storage alive (Optuna's heartbeat)."""

    def __init__(self, study: optuna.Study) -> None:
        self.storage: Any = study._storage  # an RDB storage with heartbeats (checked below)
        self.ids: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        from optuna.storages._heartbeat import is_heartbeat_enabled

        if is_heartbeat_enabled(self.storage):
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()

    def add(self, trial_id: int) -> None:
        """Beat for ``trial_id`` from now on (a trial that never beat is never found stale)."""
        self.ids.add(trial_id)
        if self._thread is not None:
            self.storage.record_heartbeat(trial_id)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            for trial_id in list(self.ids):
                with contextlib.suppress(Exception):
                    self.storage.record_heartbeat(trial_id)

    def close(self) -> None:
        self._stop.set()


def stream_of(sweep: Sweep, trials: list[FrozenTrial]) -> int:
    """The method's random stream: fresh after a resume (numbered after the trials so far), and, on a
    shared storage, drawn for this process, so processes started with one seed propose other points."""
    if sweep.shared_storage:
        return int.from_bytes(os.urandom(4), "little") % 1_000_000_007
    return len(trials)


@dataclass
class _Running:
    trial: optuna.Trial
    params: dict[str, Any]
    worker: int
    log: str
    timed_out: bool = False
    reported: float = 0.0  # budget units its reports say it spent (all seeds)


@dataclass
class _Tally:
    """Trials counted and budget consumed so far (re-read from a shared storage, else kept here)."""

    counted: int
    consumed: float
    others_running: int = 0
    session: float = 0.0  # units this run of the sweep spent


def run_trials(
    sweep: Sweep, backend: Backend, resume: bool = False, progress: Progress | None = None
) -> optuna.Study:
    """Run (or resume) a sampler-based sweep to its trial count on ``backend``; returns the study.

    Ctrl-C and SIGTERM record the running trials as interrupted and propagate; a spent
    ``budget.time`` does the same to them and returns normally.
    """
    study = open_study(sweep)
    recover(study, stale_running=not sweep.shared_storage)
    trials = study.get_trials(deepcopy=False)
    stream = stream_of(sweep, trials)
    note_run(sweep.out, stream=stream)
    plan = build_plan(sweep.method, sweep.context(stream), sweep.method_options)
    study.sampler, study.pruner = plan.sampler, plan.pruner
    ref = SweepRef.of(sweep)
    cfg = sweep.config
    tally = _Tally(counted(trials), consumed(trials))
    status = _status(sweep, trials)
    clock = Clock(study, cfg.budget.time)
    beats = Heartbeats(study)
    running: dict[int, _Running] = {}
    last_stale_check = 0.0

    def may_start() -> bool:
        if clock.left <= 0:
            return False
        if cfg.budget.total is not None and tally.consumed >= cfg.budget.total:
            return False
        return cfg.trials - tally.counted - len(running) - tally.others_running > 0

    def recount() -> None:
        everything = study.get_trials(deepcopy=False)
        tally.counted, tally.consumed = counted(everything), consumed(everything)
        mine = {r.trial._trial_id for r in running.values()}
        tally.others_running = sum(
            1 for t in everything if t.state == TrialState.RUNNING and t._trial_id not in mine
        )

    def start(worker: int) -> None:
        with warnings.catch_warnings():  # Optuna warns that heartbeats belong to study.optimize: we beat
            warnings.simplefilter("ignore", UserWarning)
            trial = study.ask()
        params = suggest(sweep.space, trial)
        log = f"logs/trial-{trial.number}.log"
        job = TrialJob(ref, trial.number, params, cfg.budget.steps, report=len(sweep.directions) == 1)
        job_id = backend.submit(run_trial, job, log=sweep.out / log, worker=worker)
        running[job_id] = _Running(trial, params, worker, log)
        beats.add(trial._trial_id)

    seeds = cfg.seeds_per_trial

    def report() -> None:
        """Give the progress display the status: units per second against the units still planned."""
        if not progress:
            return
        finished = sum(status.states.get(k, 0) for k in ("complete", "pruned", "fail"))
        spent = tally.consumed
        expected = spent / finished if finished and spent else float(cfg.budget.steps * seeds)
        to_start = max(0, cfg.trials - tally.counted - len(running) - tally.others_running)
        left = to_start * expected + sum(max(0.0, expected - r.reported) for r in running.values())
        if cfg.budget.total is not None:
            left = min(left, max(0.0, cfg.budget.total - spent))
        status.done, status.units_left = tally.counted, left
        status.units_done = tally.session + sum(r.reported for r in running.values())
        status.states["running"] = len(running)
        progress(status)
        status.line = ""

    def end(job_id: int, state: TrialState, record: TrialRecord, values: list[float] | None = None) -> None:
        run = running.pop(job_id)
        beats.ids.discard(run.trial._trial_id)
        record.log = run.log
        finish(study, run.trial, state, record, values)
        name = "interrupted" if record.interrupted else state.name.lower()
        status.count(name)
        if not record.interrupted:
            tally.counted += 1
            tally.consumed += record.budget
            tally.session += record.budget
        if values:
            status.offer(values[0], sweep.maximize)
        shown = (
            f" {sweep.metrics[0]}={values[0]:.6g}"
            if values
            else (f" ({record.error})" if record.error else "")
        )
        spent = f" after {record.budget:,.0f} {sweep.info.unit}" if cfg.budget.max is not None else ""
        status.line = f"trial {run.trial.number} {name}{shown}{spent}"
        report()

    def died(job_id: int, how: str) -> None:
        run = running[job_id]
        exit = f"timeout after {cfg.trial_timeout:g} s" if run.timed_out else how
        where = (
            f"its output is in {run.log}"
            if (sweep.out / run.log).is_file()
            else "its output was lost with it"
        )
        record = TrialRecord(
            config=sweep.space.record(run.params),
            seeds=sweep.trial_seeds(run.trial.number),
            error=f"WorkerDied: the trial's process ended ({exit}); {where}",
            exit=exit,
        )
        end(job_id, TrialState.FAIL, record)

    def interrupt_all(why: str) -> None:
        for job_id in list(running):
            run = running[job_id]
            record = TrialRecord(
                config=sweep.space.record(run.params),
                seeds=sweep.trial_seeds(run.trial.number),
                interrupted=True,
                error=f"Interrupted: {why}",
            )
            end(job_id, TrialState.FAIL, record)

    try:
        while True:
            if sweep.shared_storage and (time.monotonic() - last_stale_check > HEARTBEAT_S or not running):
                optuna.storages.fail_stale_trials(study)
                recount()
                last_stale_check = time.monotonic()
            for worker in backend.idle():
                if not may_start():
                    break
                start(worker)
            if not running:
                if sweep.shared_storage and tally.others_running and clock.left > 0:
                    time.sleep(min(2.0, GRACE_S / 10))  # another process's trials may still come back
                    continue
                break
            if clock.left <= 0:
                interrupt_all("budget.time is spent")
                break
            for ev in backend.events(timeout=min(1.0, max(0.01, clock.left))):
                _handle(ev, running, backend, study, end, died)
                if ev.kind == "ask" and ev.job in running:
                    running[ev.job].reported = float(ev.payload.step) * seeds
                    report()
            if cfg.trial_timeout is not None:
                for job_id, (worker, age) in backend.busy().items():
                    if job_id in running and age > cfg.trial_timeout and not running[job_id].timed_out:
                        running[job_id].timed_out = True
                        backend.kill(worker)
            clock.save()
    except KeyboardInterrupt:
        interrupt_all("the sweep was stopped (Ctrl-C or SIGTERM)")
        raise
    finally:
        beats.close()
        clock.save(force=True)
    report()
    return study


def _status(sweep: Sweep, trials: list[FrozenTrial]) -> SweepStatus:
    """The status at the start of a run (a resumed sweep starts from its trials so far)."""
    status = SweepStatus("trials", total=sweep.config.trials, unit=sweep.info.unit)
    for t in trials:
        if t.state == TrialState.RUNNING or t.state == TrialState.WAITING:
            continue
        status.count("interrupted" if was_interrupted(t) else t.state.name.lower())
        if t.state == TrialState.COMPLETE and t.values:
            status.offer(t.values[0], sweep.maximize)
    return status


def _handle(
    ev: Event,
    running: dict[int, _Running],
    backend: Backend,
    study: optuna.Study,
    end: Callable[..., None],
    died: Callable[[int, str], None],
) -> None:
    if ev.job is None or ev.job not in running:
        return  # an idle worker that died (it is replaced), or a job already recorded
    run = running[ev.job]
    if ev.kind == "ask" and isinstance(ev.payload, Report):
        run.trial.report(ev.payload.value, ev.payload.step)
        backend.answer(ev.worker, ev.job, run.trial.should_prune())
    elif ev.kind == "done":
        out: TrialOutcome = ev.payload
        end(ev.job, out.state, out.record, out.values)
    elif ev.kind == "died":
        died(ev.job, str(ev.payload))
    elif ev.kind == "error":
        raise RuntimeError(
            f"autorl failed while running trial {run.trial.number} (a bug, please report):\n{ev.payload}"
        )
