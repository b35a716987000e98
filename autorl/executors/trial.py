"""Run one trial: the function every executor runs in its worker processes (local or on Ray).

The orchestrator samples a configuration and sends a :class:`TrialJob`; the worker runs the target on
it and reports each intermediate value back over a :class:`Link`, which answers whether the method
prunes the trial. The outcome comes back as a :class:`TrialOutcome`: the state, the values and the
trial's :class:`~autorl.results.TrialRecord`. Failures of the target are classified here (an
exception or a non-finite metric is FAIL, only the pruner prunes); a dying process is the
supervisor's to record.
"""

from __future__ import annotations

import functools
import json
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from optuna.trial import TrialState

from autorl.config import Sweep, parse_sweep
from autorl.errors import TrialDiverged, TrialFailed, TrialPruned, describe, failure_of
from autorl.results.record import TrialRecord
from autorl.targets import (
    TARGETS,
    BatchAgents,
    Step,
    TrialContext,
    advance,
    next_report,
    run_target,
    select_value,
)


class Link(Protocol):
    """The worker's line to its orchestrator: ``ask`` sends a message and waits for the answer."""

    def ask(self, message: Any) -> Any: ...


@dataclass(frozen=True)
class SweepRef:
    """A sweep as it travels to a worker: the resolved config, re-validated there once."""

    data_json: str
    source: str
    out: str

    @classmethod
    def of(cls, sweep: Sweep) -> SweepRef:
        return cls(json.dumps(sweep.portable()), sweep.source, str(sweep.out))

    def load(self) -> Sweep:
        return _sweep(self.data_json, self.source, self.out)


@functools.lru_cache(maxsize=8)
def _sweep(data_json: str, source: str, out: str) -> Sweep:
    return parse_sweep(json.loads(data_json), source, out)


@functools.lru_cache(maxsize=8)
def _target_args(sweep_ref: SweepRef) -> tuple[Any, dict[str, Any]]:
    """The target and its fixed arguments (the config's ``args`` and the method's), loaded once."""
    sweep = sweep_ref.load()
    return TARGETS.get(sweep.config.target), sweep.trial_args()


@dataclass(frozen=True)
class Report:
    """An intermediate value of a running trial; the orchestrator answers True to prune it (a batch
    sends a list of them, one per trial, and gets a list of answers).
    ``number`` names the trial in a batch (None: the job's only trial); ``metrics``: all the step's
    metrics (training statistics too), for experiment tracking."""

    step: int
    value: float | None  # None: a batch's step that was not evaluated (progress and tracking only)
    number: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialEnd:
    """A batch's trial ended; the orchestrator records it and answers with the next trial (a
    :class:`TrialJob` for the freed slot) or None."""

    number: int
    outcome: TrialOutcome


@dataclass(frozen=True)
class BatchJob:
    """Trials to train as one computation (a target with a ``batch`` class)."""

    sweep: SweepRef
    trials: list[TrialJob]
    budget: int
    report: bool = True
    evaluate_every: int = 1  # a trial is evaluated at its last report and where one reaches a multiple


@dataclass(frozen=True)
class TrialJob:
    """One trial to run: its number, the sampled configuration (user's scale), its budget and its seeds
    (its own, or a race block's: :meth:`~autorl.config.Sweep.race_seeds`)."""

    sweep: SweepRef
    number: int
    params: dict[str, Any]
    budget: int
    seeds: tuple[int, ...]
    report: bool = True  # send intermediate values (to a pruner, or to experiment tracking)


@dataclass
class TrialOutcome:
    """How a trial ended: its state, its values (COMPLETE) and its record."""

    state: TrialState
    record: TrialRecord
    values: list[float] | None = None
    message: str = ""
    curve: list[tuple[int, float]] = field(default_factory=list)


def run_trial(job: TrialJob, link: Link) -> TrialOutcome:
    """Run ``job`` and classify the result. Never raises for the target's own failures."""
    sweep = job.sweep.load()
    target, args = _target_args(job.sweep)
    cfg = sweep.config
    seeds = list(job.seeds)
    record = TrialRecord(config=sweep.space.record(job.params), seeds=seeds)

    def should_prune(value: float, step: int) -> bool:
        # A trial that has spent its whole budget is finished, not stopped early.
        return bool(link.ask(Report(step, value, metrics=ctx.metrics))) and step < job.budget

    ctx = TrialContext(
        seed=seeds[0],
        budget=job.budget,
        report_every=cfg.budget.interval,
        number=job.number,
        checkpoint_dir=sweep.out / "checkpoints" / f"trial-{job.number}",
        metric=sweep.metrics[0],
        should_prune=should_prune if job.report else None,
    )
    start = time.perf_counter()
    try:
        result = run_target(
            target,
            {**args, **job.params},
            ctx,
            select=sweep.value_spec.select,
            k=sweep.value_spec.k,
            maximize=sweep.maximize,
            seeds=seeds,
            aggregate=cfg.aggregate,
        )
        values = [result.metrics[m] for m in sweep.metrics]
        bad = [m for m, v in zip(sweep.metrics, values, strict=True) if not math.isfinite(v)]
        if bad:
            raise TrialDiverged(f"{', '.join(bad)} is not finite (diverged)")
    except TrialPruned as exc:
        step = ctx.curve[-1][0] if ctx.curve else 0
        record.metrics = {"budget": float(step * len(seeds)), "wall_s": time.perf_counter() - start}
        return TrialOutcome(TrialState.PRUNED, record, message=str(exc), curve=list(ctx.curve))
    except (Exception, SystemExit) as exc:  # sys.exit() in a target fails the trial, not the worker
        record.fail(failure_of(exc), describe(exc))
        record.traceback = traceback.format_exc(limit=-8)
        record.metrics = {"wall_s": time.perf_counter() - start}
        if ctx.curve:
            record.metrics["budget"] = float(ctx.curve[-1][0] * len(seeds))
        return TrialOutcome(TrialState.FAIL, record, message=record.error or "", curve=list(ctx.curve))
    record.metrics = result.metrics
    record.per_seed = result.per_seed
    return TrialOutcome(TrialState.COMPLETE, record, values=values, curve=list(ctx.curve))


def checkpoint_path(run_dir: Path, relative: str) -> Path:
    """``relative`` inside ``run_dir``; anything that resolves outside it is refused.

    Checkpoints can hold pickled data (SB3's model.zip, VecNormalize): autorl loads them only from
    the run directory it wrote them to.
    """
    root = run_dir.resolve()
    path = (root / relative).resolve()
    if path != root and root not in path.parents:
        raise ValueError(f"checkpoint {relative!r} lies outside the run directory {root}: refused")
    return path


JobFunction = Callable[[Any, Link], Any]


@dataclass
class _Slot:
    """A trial in a batch: its members (one per seed), evaluations and start time."""

    number: int
    params: dict[str, Any]
    members: list[int]
    seeds: list[int]
    piece: int = 1  # the units of one piece it trains in (TargetInfo.granularity)
    steps: int = 0
    curve: list[tuple[int, float]] = field(default_factory=list)
    start: float = field(default_factory=time.perf_counter)


def run_batch(job: BatchJob, link: Link) -> None:
    """Train a batch of trials as one computation (the target's declared ``batch``), every trial to its end.

    The runner advances every trial to its next report (:func:`~autorl.targets.next_report`; a
    refilled slot is behind); each one's value is reported (a pruner may stop it) and when a trial
    ends, finished or stopped or failed, its slot is given the next trial the orchestrator sends, so
    the batch stays full. ``seeds_per_trial`` seeds make a trial several members.
    """
    sweep = job.sweep.load()
    _, args = _target_args(job.sweep)
    cfg, metric = sweep.config, sweep.metrics[0]
    slots: dict[int, _Slot] = {}
    configs, seeds, owners = [], [], []
    for trial in job.trials:  # the first trials build the batch together (one group per shape)
        for seed in trial.seeds:
            configs.append({**args, **trial.params})
            seeds.append(seed)
            owners.append(trial.number)
    batch = sweep.info.batch_class()(configs, seeds, job.budget, sweep.out / "checkpoints" / "batches")
    agents = BatchAgents(batch)

    def make_slot(trial: TrialJob, members: list[int]) -> _Slot:
        piece = sweep.info.piece({**args, **trial.params})
        return _Slot(trial.number, trial.params, members, list(trial.seeds), piece)

    for trial in job.trials:
        slots[trial.number] = make_slot(trial, [m for m, owner in enumerate(owners) if owner == trial.number])

    def admit(trial: TrialJob) -> None:
        """A later trial takes the slots that ended trials freed (a new group if its shape has none)."""
        slots[trial.number] = make_slot(trial, [batch.add({**args, **trial.params}, s) for s in trial.seeds])

    # evaluated: a report that reaches a multiple of ``every``, and any that may end its trial (it
    # trains whole pieces, so one that reaches within a piece of the budget may pass it)
    every = job.evaluate_every
    while slots:
        done = {n: slot.steps for n, slot in slots.items()}
        reach = {n: next_report(d, cfg.budget.interval, job.budget) for n, d in done.items()}
        steps = advance(
            agents,
            {n: s.members for n, s in slots.items()},
            {n: reach[n] - d for n, d in done.items()},
            done,
            metric,
            cfg.aggregate,
            sweep.maximize,
            evaluate=[
                n
                for n, d in done.items()
                if reach[n] + slots[n].piece > job.budget or reach[n] // every > d // every
            ],
        )
        ended: list[tuple[_Slot, TrialOutcome]] = []
        reports = []
        for number, step in steps.items():
            slot = slots[number]
            slot.steps = step.steps
            value = step.metrics.get(metric)
            if value is not None:
                slot.curve.append((step.steps, value))
            if step.failure is not None:
                ended.append((slot, _batch_outcome(sweep, slot, step, TrialState.FAIL, step.failure)))
            else:
                reports.append(Report(step.steps, value, number, dict(step.metrics)))
        # one message for the whole step's reports: a round trip each cost the batch its waits
        pruned = link.ask(reports) if job.report and reports else [False] * len(reports)
        for got, prune in zip(reports, pruned, strict=True):
            assert got.number is not None
            slot, step = slots[got.number], steps[got.number]
            if step.steps >= job.budget:  # a trial that spent its whole budget is finished, not stopped
                ended.append((slot, _batch_outcome(sweep, slot, step, TrialState.COMPLETE)))
            elif prune:
                ended.append((slot, _batch_outcome(sweep, slot, step, TrialState.PRUNED)))
        for slot, outcome in ended:
            for m in slot.members:
                batch.remove(m)
            del slots[slot.number]
            nxt = link.ask(TrialEnd(slot.number, outcome))
            if nxt is not None:
                admit(nxt)


def _batch_outcome(
    sweep: Sweep, slot: _Slot, step: Step, state: TrialState, failure: TrialFailed | None = None
) -> TrialOutcome:
    record = TrialRecord(config=sweep.space.record(slot.params), seeds=slot.seeds)
    if failure is not None:
        record.fail(failure.kind, describe(failure))
    if state == TrialState.COMPLETE:
        values = [v for _, v in slot.curve]
        record.metrics = dict(step.metrics)
        record.metrics[sweep.metrics[0]] = select_value(
            values, sweep.value_spec.select, sweep.value_spec.k, sweep.maximize
        )
        if len(step.per_seed) > 1:
            record.per_seed = step.per_seed
    record.metrics.update(budget=float(step.steps * len(slot.seeds)), wall_s=time.perf_counter() - slot.start)
    final = [record.metrics[m] for m in sweep.metrics] if state == TrialState.COMPLETE else None
    return TrialOutcome(state, record, values=final, message=record.error or "", curve=list(slot.curve))
