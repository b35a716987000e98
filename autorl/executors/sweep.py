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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import optuna
from optuna.trial import FrozenTrial, TrialState

from autorl.config import Sweep
from autorl.errors import FailureKind
from autorl.executors.trial import (
    BatchJob,
    Report,
    SweepRef,
    TrialEnd,
    TrialJob,
    TrialOutcome,
    run_batch,
    run_trial,
)
from autorl.executors.workers import Event, EventKind
from autorl.methods import build_plan
from autorl.methods.race import Evaluation, next_block, standing
from autorl.results.race import evaluation, race_evaluations, race_key
from autorl.results.record import (
    RACE_BLOCK,
    RACE_OF,
    TrialRecord,
    consumed,
    counted,
    record_of,
    was_interrupted,
    write_trial,
)
from autorl.results.rundir import note_run
from autorl.results.status import SweepStatus
from autorl.results.storage import GRACE_S, HEARTBEAT_S, open_study, recover
from autorl.results.tracking import Tracker
from autorl.space import suggest
from autorl.targets.runner import Select

Progress = Callable[[SweepStatus], None]
ELAPSED = "autorl_elapsed_s"  # study attribute: wall time the sweep has run, summed across resumes


class Backend(Protocol):
    """Where jobs run: :class:`~autorl.executors.workers.ProcessPool` or the Ray actors."""

    @property
    def size(self) -> int: ...

    def idle(self) -> list[int]: ...

    def busy(self) -> dict[int, tuple[int, float]]: ...

    def submit(
        self,
        fn: Any,
        arg: Any,
        log: Any = None,
        worker: int | None = None,
        reads: Sequence[str] = (),
        writes: Sequence[str] = (),
    ) -> int:
        """Start ``fn(arg, link)``; ``reads`` and ``writes``: the run directory's checkpoints the job
        loads and saves (a backend whose workers do not share the run directory moves them)."""
        ...

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
    job: int
    log: str
    seeds: list[int]
    race: tuple[int, int] | None = None  # (configuration, block) of a race block
    reported: float = 0.0  # budget units its reports say it spent (all seeds)


@dataclass
class _Job:
    worker: int
    trials: list[int]  # trial numbers it runs (one, or a batch)
    last: float = field(default_factory=time.monotonic)  # its last message: a batch's timeout clock
    timed_out: bool = False


@dataclass
class _Tally:
    """Trials counted and budget consumed so far (re-read from a shared storage, else kept here)."""

    counted: int
    consumed: float
    others_running: int = 0
    session: float = 0.0  # units this run of the sweep spent


def committed_units(sweep: Sweep, consumed: float, running: list[float]) -> float:
    """Budget units ``budget.total`` must leave room for before another trial starts, given the units
    the finished trials ``consumed`` and what each ``running`` trial has reported so far. A trial of a
    method without rungs runs to ``budget.max``, so it is reserved in full (and one more must fit): a
    batch or several workers then never start trials that could only end past the total. A trial that
    a pruner may stop counts what it has spent so far. Every executor asks this one rule."""
    if sweep.spec.rungs:
        return consumed + sum(running)
    per_trial = float(sweep.config.budget.steps * sweep.config.seeds_per_trial)
    return consumed + per_trial * (len(running) + 1) - 1


def run_trials(
    sweep: Sweep,
    backend: Backend,
    resume: bool = False,
    progress: Progress | None = None,
    tracker: Tracker | None = None,
) -> optuna.Study:
    """Run (or resume) a sampler-based sweep to its trial count on ``backend``; returns the study.

    With ``batch: P`` (a target that trains many configurations as one computation) each worker runs
    P trials at once and asks for the next one when a trial ends, so its batch stays full. Ctrl-C and
    SIGTERM record the running trials as interrupted and propagate; a spent ``budget.time`` does the
    same to them and returns normally.
    """
    return _TrialLoop(sweep, backend, progress, tracker or Tracker([])).run()


class _TrialLoop:
    """The orchestrator of one run of a sweep: the only process that asks the sampler, reports to the
    pruner and writes the study."""

    def __init__(self, sweep: Sweep, backend: Backend, progress: Progress | None, tracker: Tracker) -> None:
        self.sweep, self.backend, self.progress, self.cfg = sweep, backend, progress, sweep.config
        self.tracker = tracker
        self.study = study = open_study(sweep)
        recover(study, stale_running=not sweep.shared_storage)
        trials = study.get_trials(deepcopy=False)
        stream = stream_of(sweep, trials)
        note_run(sweep.out, stream=stream)
        plan = build_plan(sweep.method, sweep.context(stream), sweep.method_options)
        study.sampler, study.pruner = plan.sampler, plan.pruner
        # where a batch evaluates its trials: at every report if anything reads intermediate values,
        # else at a trial's last (and at multiples of budget.evaluate_every, for curves)
        budget = self.cfg.budget
        reads = plan.prunes or bool(tracker) or sweep.value_spec.select is not Select.LAST
        self.evaluate_every = budget.interval if reads else (budget.evaluate_every or budget.steps)
        self.ref = SweepRef.of(sweep)
        self.tally = _Tally(counted(trials), consumed(trials))
        self.status = _status(sweep, trials)
        self.clock = Clock(study, self.cfg.budget.time)
        self.beats = Heartbeats(study)
        self.running: dict[int, _Running] = {}  # by trial number
        self.jobs: dict[int, _Job] = {}
        self.batched = self.cfg.batch > 1
        self.race = _Race(sweep, trials)
        self.waiting = sum(1 for t in trials if t.state == TrialState.WAITING)  # queued configs

    # -- trials ---------------------------------------------------------------------------------------
    def may_start(self) -> bool:
        cfg, tally = self.cfg, self.tally
        if self.clock.left <= 0:
            return False
        if cfg.budget.total is not None and self.committed() >= cfg.budget.total:
            return False
        if cfg.trials - tally.counted - len(self.running) - tally.others_running <= 0:
            return False
        return bool(self.waiting) or self.tuning_room() or self._block() is not None

    def committed(self, tuning: bool = False) -> float:
        """Budget units ``budget.total`` must leave room for before another trial starts: the finished
        trials' and what the running ones will spend (``tuning``: the sampler's trials' only, race blocks
        left out), by :func:`committed_units`."""
        running = [r.reported for r in self.running.values() if not (tuning and r.race is not None)]
        consumed = self.tally.consumed - (self.race.spent if tuning else 0.0)
        return committed_units(self.sweep, consumed, running)

    def tuning_room(self) -> bool:
        """Whether the sampler may start another trial: always, unless a racing sweep's ``budget.total``
        is set, whose ``race.share`` is kept for the race (the sampler's trials stop short of the rest)."""
        race, total = self.cfg.race, self.cfg.budget.total
        return race is None or total is None or self.committed(tuning=True) < (1 - race.share) * total

    def _block(self) -> tuple[int, int] | None:
        """The race block due now, if any."""
        if self.waiting:  # asks take queued trials first
            return None
        return self.race.due(self.running.values(), self.tally.consumed, reserved=not self.tuning_room())

    def recount(self) -> None:
        everything = self.study.get_trials(deepcopy=False)
        self.tally.counted, self.tally.consumed = counted(everything), consumed(everything)
        mine = {r.trial._trial_id for r in self.running.values()}
        others = [t for t in everything if t.state == TrialState.RUNNING and t._trial_id not in mine]
        self.tally.others_running = len(others)
        if self.race.on:  # other processes' race blocks, finished and running, count as this one's
            self.race = _Race(self.sweep, everything, others)

    def ask(self, job: int) -> TrialJob:
        """A new trial belonging to ``job``: a race block when the race is due one, else the sampler's."""
        block = self._block()
        self.waiting = max(0, self.waiting - 1)  # asks take queued trials first
        if block is not None:
            self.study.enqueue_trial(
                self.race.params[block[0]], user_attrs={RACE_OF: block[0], RACE_BLOCK: block[1]}
            )
        with warnings.catch_warnings():  # Optuna warns that heartbeats belong to study.optimize: we beat
            warnings.simplefilter("ignore", UserWarning)
            trial = self.study.ask()
        params = suggest(self.sweep.space, trial)
        log = f"logs/trial-{trial.number}.log"
        key = race_key(trial)  # the queued block (or a requeued one, which asks come to first)
        seeds = self.sweep.race_seeds(key[1]) if key else self.sweep.trial_seeds(trial.number)
        self.running[trial.number] = _Running(trial, params, job, log, seeds, key)
        self.beats.add(trial._trial_id)
        return TrialJob(
            self.ref,
            trial.number,
            params,
            self.cfg.budget.steps,
            tuple(seeds),
            report=len(self.sweep.directions) == 1 or bool(self.tracker),
        )

    def start(self, worker: int) -> None:
        """Give an idle worker a trial, or a batch of up to ``batch`` trials."""
        job_id = -1 - len(self.jobs)  # a placeholder until the backend numbers the job
        if not self.batched:
            spec = self.ask(job_id)
            job = self.backend.submit(
                run_trial, spec, log=self.sweep.out / self.running[spec.number].log, worker=worker
            )
            specs = [spec]
        else:
            specs = [self.ask(job_id)]
            while len(specs) < self.cfg.batch and self.may_start():
                specs.append(self.ask(job_id))
            batch = BatchJob(self.ref, specs, self.cfg.budget.steps, specs[0].report, self.evaluate_every)
            log = self.sweep.out / "logs" / f"batch-{specs[0].number}.log"
            job = self.backend.submit(run_batch, batch, log=log, worker=worker)
        for spec in specs:
            self.running[spec.number].job = job
            if self.batched:
                self.running[spec.number].log = f"logs/batch-{specs[0].number}.log"
        self.jobs[job] = _Job(worker, [s.number for s in specs])

    def end(
        self, number: int, state: TrialState, record: TrialRecord, values: list[float] | None = None
    ) -> None:
        run = self.running.pop(number)
        job = self.jobs.get(run.job)
        if job is not None and number in job.trials:
            job.trials.remove(number)
        self.beats.ids.discard(run.trial._trial_id)
        record.log = run.log
        record.at_s = round(self.clock.elapsed, 3)
        write_trial(self.study, record, state, values, trial=run.trial)
        name = "interrupted" if record.interrupted else state.name.lower()
        self.status.count(name)
        self.tracker.end(f"trial-{number}", name, record.metrics, run.params)
        if not record.interrupted:
            self.tally.counted += 1
            self.tally.consumed += record.budget
            self.tally.session += record.budget
        if values or run.race is not None:
            self.race.ended(number, run.race, values, record, run.trial.params)
        if values and run.race is None:
            self.status.offer(values[0], self.sweep.maximize)
        shown = f" {self.sweep.metrics[0]}={values[0]:.6g}" if values else ""
        if run.race is not None:
            shown = f" (race block {run.race[1]} of trial {run.race[0]}){shown}"
        shown = shown or (f" ({record.error})" if record.error else "")
        spent = (
            f" after {record.budget:,.0f} {self.sweep.info.unit}" if self.cfg.budget.max is not None else ""
        )
        self.status.line = f"trial {number} {name}{shown}{spent}"
        self.report()

    def fail(self, number: int, kind: FailureKind, error: str, exit: str | None = None) -> None:
        """Record a trial that failed outside its target (its process, the sweep's stop)."""
        run = self.running[number]
        record = TrialRecord(config=self.sweep.space.record(run.params), seeds=run.seeds)
        record.exit = exit
        self.end(number, TrialState.FAIL, record.fail(kind, error))

    def died(self, job_id: int, how: str) -> None:
        job = self.jobs.pop(job_id)
        exit = f"timeout after {self.cfg.trial_timeout:g} s" if job.timed_out else how
        kind = FailureKind.TIMEOUT if job.timed_out else FailureKind.DIED
        for number in list(job.trials):
            log = self.running[number].log
            where = (
                f"its output is in {log}"
                if (self.sweep.out / log).is_file()
                else "its output was lost with it"
            )
            self.fail(number, kind, f"WorkerDied: the trial's process ended ({exit}); {where}", exit=exit)

    def interrupt_all(self, why: str) -> None:
        for number in list(self.running):
            self.fail(number, FailureKind.INTERRUPTED, f"Interrupted: {why}")

    # -- progress -------------------------------------------------------------------------------------
    def report(self) -> None:
        """Give the progress display the status: units per second against the units still planned."""
        if not self.progress:
            return
        cfg, tally, status = self.cfg, self.tally, self.status
        finished = sum(status.states.get(k, 0) for k in ("complete", "pruned", "fail"))
        spent = tally.consumed
        expected = spent / finished if finished and spent else float(cfg.budget.steps * cfg.seeds_per_trial)
        to_start = max(0, cfg.trials - tally.counted - len(self.running) - tally.others_running)
        left = to_start * expected + sum(max(0.0, expected - r.reported) for r in self.running.values())
        if cfg.budget.total is not None:
            left = min(left, max(0.0, cfg.budget.total - spent))
        status.done, status.units_left = tally.counted, left
        status.units_done = tally.session + sum(r.reported for r in self.running.values())
        status.states["running"] = len(self.running)
        self.progress(status)
        status.line = ""

    # -- the loop -------------------------------------------------------------------------------------
    def handle(self, ev: Event) -> None:
        job_id = ev.job
        job = self.jobs.get(job_id) if job_id is not None else None
        if job is None or job_id is None:
            return  # an idle worker that died (it is replaced), or a job already recorded
        job.last = time.monotonic()
        if ev.kind is EventKind.ASK and isinstance(ev.payload, (Report, list)):  # a list: a batch's step
            got = ev.payload
            first = job.trials[0]
            answer = (
                [self.reported(first, r) for r in got] if isinstance(got, list) else self.reported(first, got)
            )
            self.backend.answer(ev.worker, job_id, answer)
            self.report()
        elif ev.kind is EventKind.ASK and isinstance(ev.payload, TrialEnd):  # a batch's trial ended
            ended = ev.payload.outcome
            self.end(ev.payload.number, ended.state, ended.record, ended.values)
            nxt = self.ask(job_id) if self.may_start() else None
            if nxt is not None:
                self.running[nxt.number].log = (
                    self.running[job.trials[0]].log if job.trials else f"logs/batch-{nxt.number}.log"
                )
                job.trials.append(nxt.number)
            self.backend.answer(ev.worker, job_id, nxt)
        elif ev.kind is EventKind.DONE:
            if not self.batched:
                out: TrialOutcome = ev.payload
                self.end(job.trials[0], out.state, out.record, out.values)
            for number in list(job.trials):  # a batch that ended without telling of a trial
                self.fail(
                    number, FailureKind.ERROR, "BatchEnded: the batch finished without this trial's result"
                )
            del self.jobs[job_id]
        elif ev.kind is EventKind.DIED:
            self.died(job_id, str(ev.payload))
        elif ev.kind is EventKind.ERROR:
            raise RuntimeError(
                f"autorl failed while running trials {job.trials} (a bug, please report):\n{ev.payload}"
            )

    def reported(self, first: int, got: Report) -> bool:
        """Record a trial's intermediate value (``got.number``, else the job's ``first`` trial); whether
        to prune it."""
        number = got.number if got.number is not None else first
        run = self.running[number]
        run.reported = float(got.step) * self.cfg.seeds_per_trial
        metrics = got.metrics or ({} if got.value is None else {self.sweep.metrics[0]: got.value})
        self.tracker.step(f"trial-{number}", got.step, metrics, run.params)
        # a race block runs to the end: its value judges a configuration, not a rung; several
        # objectives report only to tracking (Optuna prunes single-objective trials alone)
        if len(self.sweep.directions) != 1 or got.value is None:  # None: a batch's step it did not evaluate
            return False
        run.trial.report(got.value, got.step)
        return run.race is None and run.trial.should_prune()

    def run(self) -> optuna.Study:
        sweep, cfg, backend, clock, tally = self.sweep, self.cfg, self.backend, self.clock, self.tally
        last_stale_check = 0.0
        try:
            while True:
                if sweep.shared_storage and (
                    time.monotonic() - last_stale_check > HEARTBEAT_S or not self.running
                ):
                    optuna.storages.fail_stale_trials(self.study)
                    self.recount()
                    last_stale_check = time.monotonic()
                for worker in backend.idle():
                    if not self.may_start():
                        break
                    self.start(worker)
                if not self.running:
                    if sweep.shared_storage and tally.others_running and clock.left > 0:
                        time.sleep(min(2.0, GRACE_S / 10))  # another process's trials may still come back
                        continue
                    break
                if clock.left <= 0:
                    self.interrupt_all("budget.time is spent")
                    break
                for ev in backend.events(timeout=min(1.0, max(0.01, clock.left))):
                    self.handle(ev)
                if cfg.trial_timeout is not None:
                    self.check_timeouts(cfg.trial_timeout)
                clock.save()
        except KeyboardInterrupt:
            self.interrupt_all("the sweep was stopped (Ctrl-C or SIGTERM)")
            raise
        finally:
            self.beats.close()
            clock.save(force=True)
        self.report()
        return self.study

    def check_timeouts(self, limit: float) -> None:
        """A trial (a batch: its interval) past ``trial_timeout`` has its worker ended."""
        now = time.monotonic()
        for job_id, (worker, age) in self.backend.busy().items():
            job = self.jobs.get(job_id)
            if job is None or job.timed_out:
                continue
            if (now - job.last if self.batched else age) > limit:
                job.timed_out = True
                self.backend.kill(worker)


class _Race:
    """The race's bookkeeping in the trial loop: the evaluations so far (kept as trials end, so a
    decision reads no storage; rebuilt from the study's trials at each recount where several processes
    share the storage), the raced configurations' parameters, and the race's share of the budget
    units; :func:`autorl.methods.race.next_block` decides."""

    def __init__(self, sweep: Sweep, trials: list[FrozenTrial], others: Iterable[FrozenTrial] = ()) -> None:
        self.sweep, self.on = sweep, sweep.config.race is not None
        self.evaluations: list[Evaluation] = []
        self.params: dict[int, dict[str, Any]] = {}  # a configuration's Optuna parameters
        self.spent = 0.0  # budget units finished race blocks took
        # what other processes sharing the storage are running: how many trials, and their race blocks
        # as (configuration, block)
        others = list(others)
        self.others_running = len(others)
        self.elsewhere = [k for t in others if (k := race_key(t)) is not None]
        for t, found in race_evaluations(trials, sweep.maximize) if self.on else ():
            self._take(found, t.params)
            if race_key(t) is not None and t.state.is_finished() and not was_interrupted(t):
                self.spent += record_of(t).budget

    def _take(self, found: Evaluation | None, params: dict[str, Any]) -> None:
        if found is not None:
            self.evaluations.append(found)
            if found.block == 0:
                self.params[found.config] = dict(params)

    def ended(
        self,
        number: int,
        key: tuple[int, int] | None,
        values: list[float] | None,
        record: TrialRecord,
        params: dict[str, Any],
    ) -> None:
        """Take in a trial the loop just ended (a tuning trial with its values, or a race block)."""
        if not self.on or record.interrupted:
            return
        self._take(evaluation(number, key, values, self.sweep.maximize), params)
        if key is not None:
            self.spent += record.budget

    def due(self, running: Any, consumed: float, reserved: bool = False) -> tuple[int, int] | None:
        """The race block to run now, ``(configuration, block)``, or None: the sampler's turn (no race,
        nothing to race, or the race's share spent). The race keeps pace with the sweep (its units
        within ``share`` of the sweep's); once the sampler has used its part of ``budget.total``
        (``reserved``), it may spend the share of the total kept for it."""
        race = self.sweep.config.race
        if race is None:
            return None
        runs = list(running)
        per = float(self.sweep.config.budget.steps * self.sweep.config.seeds_per_trial)
        in_flight = sum(1 for r in runs if r.race is not None) + len(self.elsewhere)
        total = self.sweep.config.budget.total
        running = len(runs) + self.others_running  # here and in the other processes
        cap = race.share * (total if reserved and total else consumed + per * (running + 1))
        if self.spent + per * (in_flight + 1) > cap:
            return None
        busy: dict[int, list[int]] = {}
        for config, block in [r.race for r in runs if r.race is not None] + self.elsewhere:
            busy.setdefault(config, []).append(block)
        return next_block(standing(self.evaluations), busy, race.seeds)


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
