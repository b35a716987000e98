"""The population loop of PBT-style methods: train every member one interval, let the method decide
who copies whom, carry the copies out, repeat; record one trial per member at the end.

The loop is synchronous per interval, as in the PBT paper: every member reaches the interval before
the method decides. It talks to members through *hosts*: :class:`ProcessHosts` spreads them over the
backend's workers (local processes or Ray actors), one live Trainable per member kept in its worker
between intervals, with a copy made through the donor's checkpoint in the run directory. Everything
the loop knows is in ``population.json``, written atomically after each interval and each round of
copies, so a killed run resumes from its last completed interval.
"""

from __future__ import annotations

import json
import math
import shutil
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import optuna
from optuna.trial import TrialState

from autorl.config import Sweep
from autorl.executors.sweep import Backend, Clock
from autorl.executors.trial import Link, SweepRef, checkpoint_path
from autorl.methods import Copy, Member
from autorl.results.population import write_population_outputs
from autorl.results.record import TrialRecord, record_of
from autorl.results.rundir import write_atomic
from autorl.results.status import SweepStatus
from autorl.results.storage import open_study
from autorl.space import to_params
from autorl.targets import TARGETS, TrialContext, next_report
from autorl.targets.driver import select_value

STATE_FILE = "population.json"
CHECKPOINTS = "checkpoints"
Progress = Callable[[SweepStatus], None]


@dataclass
class MemberState:
    """One member as the loop persists it."""

    index: int
    config: dict[str, Any]
    steps: int = 0
    score: float | None = None
    failed: bool = False
    error: str | None = None
    checkpoint: str | None = None  # relative to the run directory
    curve: dict[int, float] = field(default_factory=dict)
    schedule: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def view(self) -> Member:
        return Member(self.index, dict(self.config), self.steps, self.score, self.failed)


@dataclass
class PopulationState:
    members: list[MemberState]
    rng: dict[str, Any]
    lineage: list[dict[str, Any]] = field(default_factory=list)
    history: list[list[Any]] = field(default_factory=list)
    intervals: int = 0
    total_steps: int = 0
    exploits: int = 0
    exploit_bytes: int = 0
    exploit_seconds: float = 0.0
    failures: int = 0
    done: bool = False
    # after each interval: [env steps of all members, the sweep's wall clock in s, best member score]
    timeline: list[list[float]] = field(default_factory=list)

    def save(self, out: Path) -> None:
        write_atomic(out / STATE_FILE, json.dumps(asdict(self), default=float))

    @classmethod
    def load(cls, out: Path) -> PopulationState:
        data = json.loads((out / STATE_FILE).read_text())
        members = [
            MemberState(**{**m, "curve": {int(k): v for k, v in m["curve"].items()}})
            for m in data.pop("members")
        ]
        return cls(members=members, **data)


# ----------------------------------------------------------------------------------- in the worker
@dataclass(frozen=True)
class MemberJob:
    """Train member ``member`` ``train`` units and save it under ``save_to``.

    Its state is the live object in the worker if that one was saved to ``checkpoint``, else it is
    rebuilt from ``checkpoint`` (a resume, another worker, a replaced one). With ``donor`` set, the job
    is a copy instead: build from the donor's config and checkpoint, then ``reconfigure(config)``.
    """

    sweep: SweepRef
    member: int
    config: dict[str, Any]
    train: int
    checkpoint: str | None
    save_to: str
    donor: tuple[dict[str, Any], str] | None = None  # (donor's config, donor's checkpoint)

    def reads(self) -> list[str]:
        """Checkpoints the job loads (a backend on several machines sends them to the worker)."""
        return [self.donor[1]] if self.donor is not None else [self.checkpoint] if self.checkpoint else []

    def writes(self) -> list[str]:
        """Checkpoints the job saves (a backend on several machines brings them back)."""
        return [self.save_to]


@dataclass
class MemberResult:
    metrics: dict[str, float] = field(default_factory=dict)
    per_seed: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    traceback: str | None = None
    bytes: int = 0


@dataclass
class _Live:
    agents: list[Any]
    checkpoint: str


_LIVE: dict[tuple[str, int], _Live] = {}


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def _build(sweep: Sweep, member: int, config: dict[str, Any]) -> list[Any]:
    cls = TARGETS.get(sweep.config.target)
    full = {**sweep.config.args, **config}
    return [
        cls(
            full,
            TrialContext(seed=s, budget=sweep.config.budget.steps, number=member, metric=sweep.metrics[0]),
        )
        for s in sweep.trial_seeds(member)
    ]


def _load(agents: list[Any], path: Path) -> None:
    for i, agent in enumerate(agents):
        agent.load(path / f"seed{i}")


def member_step(job: MemberJob, link: Link) -> MemberResult:
    """A member's interval (or a copy), run in a worker. The target's failures come back in the result."""
    sweep = job.sweep.load()
    out = sweep.out
    key = (str(out), job.member)
    start = time.perf_counter()
    try:
        live = _LIVE.pop(key, None)
        copied = 0
        if job.donor is not None:
            donor_config, donor_checkpoint = job.donor
            agents = _build(sweep, job.member, donor_config)
            source = checkpoint_path(out, donor_checkpoint)
            _load(agents, source)
            copied = _dir_bytes(source)
            for agent in agents:  # after the load, so the restore cannot undo the explored values
                agent.reconfigure(job.config)
        elif live is not None and live.checkpoint == job.checkpoint:
            agents = live.agents
        else:
            agents = _build(sweep, job.member, job.config)
            if job.checkpoint is not None:
                _load(agents, checkpoint_path(out, job.checkpoint))
        result = MemberResult(bytes=copied)
        if job.train:
            per_seed = [dict(agent.train(job.train)) for agent in agents]
            result.per_seed = [{k: float(v) for k, v in m.items()} for m in per_seed]
            result.metrics = _aggregate(sweep, result.per_seed)
            value = result.metrics.get(sweep.metrics[0], float("nan"))
            if not np.isfinite(value):
                raise FloatingPointError(f"{sweep.metrics[0]} is {value} (diverged)")
        target = checkpoint_path(out, job.save_to)
        for i, agent in enumerate(agents):
            agent.save(target / f"seed{i}")
        _LIVE[key] = _Live(agents, job.save_to)
    except (Exception, SystemExit) as exc:  # sys.exit() in a target fails the member, not the worker
        return MemberResult(
            seconds=time.perf_counter() - start,
            error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(limit=-8),
        )
    result.seconds = time.perf_counter() - start
    return result


def _aggregate(sweep: Sweep, per_seed: list[dict[str, float]]) -> dict[str, float]:
    keys = set.intersection(*(set(m) for m in per_seed))
    metrics = {k: sweep.config.aggregate([m[k] for m in per_seed]) for k in keys}
    if any("budget" in m for m in per_seed):  # a member's steps (each seed), where the target counts them
        metrics["budget"] = max(m.get("budget", 0.0) for m in per_seed)
    return metrics


# ------------------------------------------------------------------------------- in the orchestrator
class Hosts(Protocol):
    """Where members live: those in ``units`` train an interval (``members`` is the whole population),
    and members copy one another."""

    def train(self, members: Sequence[MemberState], units: dict[int, int]) -> dict[int, MemberResult]: ...

    def copy(self, copies: Sequence[Copy], members: Sequence[MemberState]) -> dict[int, MemberResult]: ...


class ProcessHosts:
    """Members on the backend's workers (member ``i`` prefers worker ``i % size``), copies through
    checkpoints in the run directory."""

    def __init__(self, sweep: Sweep, backend: Backend, timeout: float | None) -> None:
        self.sweep, self.backend, self.timeout = sweep, backend, timeout
        self.ref = SweepRef.of(sweep)
        self._serial = 0

    def _path(self, member: int, steps: int) -> str:
        self._serial += 1
        return f"{CHECKPOINTS}/member{member}/{steps}-{time.time_ns()}-{self._serial}"

    def _run(self, jobs: dict[int, MemberJob]) -> dict[int, MemberResult]:
        """Run one job per member; a member whose worker dies or overruns gets a failed result."""
        pending = dict(sorted(jobs.items()))
        running: dict[int, int] = {}  # job id -> member
        timed_out: set[int] = set()
        results: dict[int, MemberResult] = {}
        size = self.backend.size
        while pending or running:
            for worker in self.backend.idle():
                if not pending:
                    break
                member = next((m for m in pending if m % size == worker), next(iter(pending)))
                log = self.sweep.out / "logs" / f"member-{member}.log"
                running[self.backend.submit(member_step, pending.pop(member), log=log, worker=worker)] = (
                    member
                )
            for ev in self.backend.events(timeout=1.0):
                if ev.job not in running:
                    continue
                member = running[ev.job]
                if ev.kind == "done":
                    results[member] = ev.payload
                elif ev.kind == "died":
                    how = f"timeout after {self.timeout:g} s" if ev.job in timed_out else str(ev.payload)
                    results[member] = MemberResult(error=f"WorkerDied: the member's process ended ({how})")
                elif ev.kind == "error":
                    raise RuntimeError(f"autorl failed while running member {member} (a bug):\n{ev.payload}")
                else:
                    self.backend.answer(ev.worker, ev.job, False)
                    continue
                del running[ev.job]
            if self.timeout is not None:
                for job_id, (worker, age) in self.backend.busy().items():
                    if job_id in running and age > self.timeout and job_id not in timed_out:
                        timed_out.add(job_id)
                        self.backend.kill(worker)
        return results

    def train(self, members: Sequence[MemberState], units: dict[int, int]) -> dict[int, MemberResult]:
        jobs = {
            m.index: MemberJob(
                self.ref,
                m.index,
                m.config,
                units[m.index],
                m.checkpoint,
                self._path(m.index, m.steps + units[m.index]),
            )
            for m in members
            if m.index in units
        }
        results = self._run(jobs)
        for m in members:
            if m.index in results and results[m.index].error is None:
                m.checkpoint = jobs[m.index].save_to
        return results

    def copy(self, copies: Sequence[Copy], members: Sequence[MemberState]) -> dict[int, MemberResult]:
        by_index = {m.index: m for m in members}
        jobs = {}
        for c in copies:
            donor = by_index[c.donor]
            assert donor.checkpoint is not None  # a donor is a healthy member: it saved this interval
            jobs[c.member] = MemberJob(
                self.ref,
                c.member,
                c.config,
                0,
                donor.checkpoint,
                self._path(c.member, donor.steps),
                donor=(donor.config, donor.checkpoint),
            )
        results = self._run(jobs)
        for member, res in results.items():
            if res.error is None:
                by_index[member].checkpoint = jobs[member].save_to
        return results


@dataclass(frozen=True)
class EngineJob:
    """An interval (``units`` per member) or a round of copies of a population that trains as one
    computation (a target with a ``batch`` class, the engine); its state is one checkpoint file."""

    sweep: SweepRef
    configs: dict[int, dict[str, Any]]
    checkpoint: str | None
    save_to: str
    units: dict[int, int] = field(default_factory=dict)
    copies: tuple[Copy, ...] = ()

    def reads(self) -> list[str]:
        return [self.checkpoint] if self.checkpoint else []

    def writes(self) -> list[str]:
        return [self.save_to]


_ENGINES: dict[str, tuple[str, Any]] = {}  # run directory -> (the checkpoint it matches, the live batch)
ENGINE_FILE = "engine.pt"


def engine_step(job: EngineJob, link: Link) -> dict[int, MemberResult]:
    """Train or copy members of a batched population in a worker; one result per member involved.

    Member ``i`` with ``seeds_per_trial`` k is engine members ``i*k .. i*k+k-1`` (its seeds); a copy
    copies all of them. The batch stays live in the worker between jobs, and is saved after each.
    """
    import torch

    sweep = job.sweep.load()
    out, k = sweep.out, sweep.config.seeds_per_trial
    torch.set_num_threads(max(1, sweep.config.workers))  # the population's cores: one process, threads
    cached = _ENGINES.pop(str(out), None)
    start = time.perf_counter()
    if cached is not None and cached[0] == job.checkpoint:
        batch = cached[1]
    else:
        target = TARGETS.get(sweep.config.target)
        order = sorted(job.configs)
        configs = [{**sweep.config.args, **job.configs[i]} for i in order for _ in range(k)]
        seeds = [s for i in order for s in sweep.trial_seeds(i)]
        batch = target.batch(configs, seeds, per_member_budget(sweep), out / "checkpoints" / "engine")
        if job.checkpoint is not None:
            path = checkpoint_path(out, job.checkpoint) / ENGINE_FILE
            batch.load_state_dict(torch.load(path, weights_only=True))
    results: dict[int, MemberResult] = {}
    for c in job.copies:
        for j in range(k):
            batch.copy(c.donor * k + j, c.member * k + j, c.config)
        results[c.member] = MemberResult()
    for units in sorted(set(job.units.values())):
        members = [i for i, u in job.units.items() if u == units]
        rows = batch.train(units, [i * k + j for i in members for j in range(k)])
        for i in members:
            per_seed = [rows[i * k + j] for j in range(k)]
            metrics = _aggregate(sweep, per_seed)
            value = metrics.get(sweep.metrics[0], float("nan"))
            error = (
                None
                if np.isfinite(value)
                else f"FloatingPointError: {sweep.metrics[0]} is {value} (diverged)"
            )
            results[i] = MemberResult(metrics=metrics, per_seed=per_seed if k > 1 else [], error=error)
    seconds = time.perf_counter() - start
    for r in results.values():  # they trained together: each one took the whole job's wall time
        r.seconds = seconds
    target_dir = checkpoint_path(out, job.save_to)
    target_dir.mkdir(parents=True, exist_ok=True)
    torch.save(batch.state_dict(), target_dir / ENGINE_FILE)
    _ENGINES[str(out)] = (job.save_to, batch)
    return results


class BatchedHosts:
    """A population that trains as one computation (the engine) in one worker: an interval is one job,
    a copy an index copy inside it; one checkpoint file for all members, written after each job (so a
    kill loses at most the interval in progress)."""

    def __init__(self, sweep: Sweep, backend: Backend, timeout: float | None) -> None:
        self.sweep, self.backend, self.timeout = sweep, backend, timeout
        self.ref = SweepRef.of(sweep)
        self._serial = 0

    def _run(self, job: EngineJob, members: Sequence[MemberState]) -> dict[int, MemberResult]:
        job_id = self.backend.submit(
            engine_step, job, log=self.sweep.out / "logs" / "population.log", worker=0
        )
        started, timed_out = time.monotonic(), False
        while True:
            for ev in self.backend.events(timeout=1.0):
                if ev.job != job_id:
                    continue
                if ev.kind == "done":
                    for m in members:
                        m.checkpoint = job.save_to
                    return dict(ev.payload)
                if ev.kind == "error":
                    raise RuntimeError(f"autorl failed while running the population (a bug):\n{ev.payload}")
                if ev.kind == "died":
                    how = f"timeout after {self.timeout:g} s" if timed_out else str(ev.payload)
                    return {
                        i: MemberResult(error=f"WorkerDied: the population's process ended ({how})")
                        for i in job.configs
                    }
            if not timed_out and self.timeout is not None and time.monotonic() - started > self.timeout:
                timed_out = True
                self.backend.kill(0)

    def _path(self) -> str:
        self._serial += 1
        return f"{CHECKPOINTS}/engine/{time.time_ns()}-{self._serial}"

    def train(self, members: Sequence[MemberState], units: dict[int, int]) -> dict[int, MemberResult]:
        configs = {m.index: m.config for m in members}
        job = EngineJob(self.ref, configs, members[0].checkpoint, self._path(), units=dict(units))
        return self._run(job, members)

    def copy(self, copies: Sequence[Copy], members: Sequence[MemberState]) -> dict[int, MemberResult]:
        configs = {m.index: m.config for m in members}
        for c in copies:
            configs[c.member] = dict(c.config)
        job = EngineJob(self.ref, configs, members[0].checkpoint, self._path(), copies=tuple(copies))
        return self._run(job, members)


def _new_state(sweep: Sweep) -> PopulationState:
    plan = sweep.population
    rng = np.random.default_rng(sweep.config.seed)
    members = [MemberState(i, c) for i, c in enumerate(plan.method.initial(plan.size, rng))]
    for m in members:
        m.schedule.append({"step": 0, **m.config})
    return PopulationState(members, dict(rng.bit_generator.state))


def per_member_budget(sweep: Sweep) -> int:
    """``budget.total`` split over the members (so a population spends what other methods spend),
    else ``budget.max`` each."""
    total = sweep.config.budget.total
    return total // sweep.population.size if total is not None else sweep.config.budget.steps


def clean_checkpoints(out: Path, state: PopulationState) -> None:
    """Delete every checkpoint the state does not name (older ones, and orphans of a killed run)."""
    keep = {m.checkpoint for m in state.members if m.checkpoint}
    root = out / CHECKPOINTS
    if not root.is_dir():
        return
    for member_dir in root.iterdir():
        for ckpt in member_dir.iterdir() if member_dir.is_dir() else []:
            if f"{CHECKPOINTS}/{member_dir.name}/{ckpt.name}" not in keep:
                shutil.rmtree(ckpt, ignore_errors=True)


def run_population(
    sweep: Sweep, hosts: Hosts, resume: bool = False, progress: Progress | None = None
) -> optuna.Study:
    """Run (or resume) a population sweep; returns the study with one trial per member."""
    out = sweep.out
    plan = sweep.population
    study = open_study(sweep)
    state = PopulationState.load(out) if resume and (out / STATE_FILE).is_file() else _new_state(sweep)
    clean_checkpoints(out, state)
    rng = np.random.default_rng()
    rng.bit_generator.state = state.rng
    budget = per_member_budget(sweep)
    interval = min(plan.interval, budget)
    sign = 1.0 if sweep.maximize else -1.0
    clock = Clock(study, sweep.config.budget.time)
    per = math.ceil(budget / interval)
    status = SweepStatus("population", total=plan.size * per, unit=sweep.info.unit)
    seeds = sweep.config.seeds_per_trial
    start_steps = sum(m.steps for m in state.members)

    def report(line: str) -> None:
        if not progress:
            return
        status.done = sum(
            per if m.failed or m.steps >= budget else min(per, m.steps // interval) for m in state.members
        )
        status.units_done = (sum(m.steps for m in state.members) - start_steps) * seeds
        status.units_left = sum(max(0, budget - m.steps) for m in state.members if not m.failed) * seeds
        status.states = (
            {"failed": sum(m.failed for m in state.members)} if any(m.failed for m in state.members) else {}
        )
        for m in state.members:
            status.offer(m.score, sweep.maximize)
        status.line = line
        progress(status)

    try:
        while not state.done:
            active = [m for m in state.members if not m.failed and m.steps < budget]
            if not active or clock.left <= 0:
                break
            units = {m.index: next_report(m.steps, interval, budget) - m.steps for m in active}
            results = hosts.train(state.members, units)
            for m in active:
                _apply_interval(m, results[m.index], units[m.index], sweep, state, sign)
            state.intervals += 1
            scores = [m.score for m in state.members if m.score is not None]
            if scores:
                top = max(scores, key=lambda v: sign * v)
                state.timeline.append([state.total_steps, round(clock.elapsed, 3), top])
            state.save(out)
            best = f"{top:.6g}" if scores else "-"
            report(f"interval {state.intervals}: best {sweep.metrics[0]} {best}")
            if all(m.failed or m.steps >= budget for m in state.members):
                break
            _exploit(sweep, hosts, state, rng)
            state.rng = rng.bit_generator.state
            state.save(out)
            clean_checkpoints(out, state)
            clock.save()
        # a population that budget.time stopped is final too: recorded as it stands after its last interval
        state.done = True
        state.save(out)
        clean_checkpoints(out, state)
    finally:
        clock.save(force=True)
    _record(sweep, study, state)
    write_population_outputs(out, sweep, state.members, state.lineage, _summary(state, out))
    report(f"population done: {state.exploits} copies, {state.failures} failures")
    return study


def _apply_interval(
    m: MemberState, res: MemberResult, units: int, sweep: Sweep, state: PopulationState, sign: float
) -> None:
    m.seconds += res.seconds
    if res.error is None and int(res.metrics.get("budget", m.steps + units)) <= m.steps:
        res.error = f"NoProgress: train({units}) left the member at {m.steps} {sweep.info.unit}"
    if res.error is not None:
        m.failed, m.error, m.score = True, res.error, None
        state.failures += 1
        state.lineage.append({"step": m.steps, "member": m.index, "event": "failed", "error": res.error})
        return
    before = m.steps
    m.steps = int(res.metrics.get("budget", m.steps + units))  # a target may overshoot (whole rollouts)
    state.total_steps += (m.steps - before) * len(sweep.trial_seeds(m.index))
    score = float(res.metrics[sweep.metrics[0]])
    delta = score - (m.score if m.score is not None else score)
    m.score = score
    m.curve[m.steps] = score
    state.history.append([m.steps, dict(m.config), sign * delta])


def _exploit(sweep: Sweep, hosts: Hosts, state: PopulationState, rng: np.random.Generator) -> None:
    plan = sweep.population
    observations = [(int(h[0]), h[1], float(h[2])) for h in state.history]
    copies = plan.method.decide([m.view() for m in state.members], observations, rng)
    if not copies:
        return
    start = time.perf_counter()
    results = hosts.copy(copies, state.members)
    by_index = {m.index: m for m in state.members}
    for c in copies:
        m, donor, res = by_index[c.member], by_index[c.donor], results[c.member]
        if res.error is not None:  # the copy itself failed: the member stays as it was, marked failed
            m.failed, m.error = True, res.error
            state.lineage.append(
                {"step": m.steps, "member": m.index, "event": "copy failed", "error": res.error}
            )
            continue
        state.lineage.append(
            {
                "step": m.steps,
                "member": m.index,
                "event": "exploit",
                "donor": donor.index,
                "donor_score": donor.score,
                "member_score": m.score,
                "config": dict(c.config),
            }
        )
        state.exploits += 1
        state.exploit_bytes += res.bytes
        m.config, m.steps, m.score, m.failed, m.error = dict(c.config), donor.steps, donor.score, False, None
        # the weights carry the donor's past: so does the schedule (what a replay must follow)
        m.schedule = [dict(s) for s in donor.schedule] + [{"step": m.steps, **c.config}]
    state.exploit_seconds += time.perf_counter() - start


def _summary(state: PopulationState, out: Path) -> dict[str, Any]:
    return {
        "total_steps": state.total_steps,
        "intervals": state.intervals,
        "exploits": state.exploits,
        "exploit_bytes": state.exploit_bytes,
        "exploit_seconds": round(state.exploit_seconds, 3),
        "failures": state.failures,
        "checkpoint_bytes": _dir_bytes(out / CHECKPOINTS),
        "finished": state.done,
        "timeline": state.timeline,
    }


def _record(sweep: Sweep, study: optuna.Study, state: PopulationState) -> None:
    """One trial per member, each written once (a resume after a kill while recording adds the rest)."""
    recorded = {record_of(t).member for t in study.get_trials(deepcopy=False)}
    select, k = sweep.value_spec.select, sweep.value_spec.k
    for m in state.members:
        if m.index in recorded:
            continue
        params, dists = to_params(sweep.space, m.config)
        values = [v for _, v in sorted(m.curve.items())]
        value = select_value(values, select, k, sweep.maximize) if values and not m.failed else None
        record = TrialRecord(
            config=sweep.space.record(m.config),
            seeds=sweep.trial_seeds(m.index),
            metrics={
                **({sweep.metrics[0]: value} if value is not None else {}),
                "budget": float(m.steps * len(sweep.trial_seeds(m.index))),
                "population_steps": float(state.total_steps),
                "wall_s": round(m.seconds, 3),
            },
            error=m.error if m.failed else None,
            member=m.index,
            schedule=m.schedule,
            log=f"logs/member-{m.index}.log",
        )
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=dists,
                values=[value] if value is not None else None,
                state=TrialState.COMPLETE if value is not None else TrialState.FAIL,
                user_attrs={"autorl": record.to_attr()},
                intermediate_values=m.curve,
            )
        )
