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

import dataclasses
import json
import math
import shutil
import time
import traceback
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import optuna
from optuna.trial import TrialState

from autorl.config import Sweep
from autorl.errors import FailureKind, describe, failure_of
from autorl.executors.sweep import Backend, Clock
from autorl.executors.trial import Link, SweepRef, checkpoint_path
from autorl.executors.workers import EventKind
from autorl.methods import Branch, Change, Copy, Member, Observation, Reconfigure
from autorl.results.population import write_population_outputs
from autorl.results.race import incumbent, race_key
from autorl.results.record import RACE_BLOCK, RACE_OF, TrialRecord, record_of, write_trial
from autorl.results.rundir import write_atomic
from autorl.results.status import SweepStatus
from autorl.results.storage import open_study
from autorl.results.tracking import Tracker
from autorl.space import to_params
from autorl.targets import (
    TARGETS,
    BatchAgents,
    Select,
    Step,
    Trainables,
    TrialContext,
    advance,
    aggregate_seeds,
    next_report,
    select_value,
)

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
    failure: str | None = None  # a FailureKind value
    metrics: dict[str, float] = field(default_factory=dict)  # its latest interval's training metrics
    held: float | None = None  # the last finite value of the training metric decisions read, if any

    def standing(self, decides_on: str | None) -> float | None:
        """What a population method's decisions read: the score, or the last finite value of the
        training metric ``decides_on`` (an interval in which no episode ended reports nan)."""
        return self.score if decides_on is None else self.held

    def view(self, decides_on: str | None = None) -> Member:
        score = self.standing(decides_on)
        return Member(self.index, dict(self.config), self.steps, score, self.failed, dict(self.metrics))

    def fail(self, failure: FailureKind, error: str) -> None:
        self.failed, self.failure, self.error, self.score = True, failure.value, error, None


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
    method_state: dict[str, Any] = field(default_factory=dict)  # the population method's own
    # after each interval: [env steps of all members, the sweep's wall clock in s, best member score]
    timeline: list[list[float]] = field(default_factory=list)
    shards: int | None = None  # a batched population's shards (BatchedHosts.place); None: not placed yet
    deciding: bool = False  # the last interval's decisions are not made yet

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
    steps: int = 0  # what it has trained so far
    was: dict[str, Any] | None = None  # a change in place: the config its checkpoint was saved with
    evaluate: tuple[int, ...] = ()  # a race block instead: its seeds, one per agent; nothing trains or saves

    def reads(self) -> list[str]:
        """Checkpoints the job loads (a backend on several machines sends them to the worker)."""
        return [self.donor[1]] if self.donor is not None else [self.checkpoint] if self.checkpoint else []

    def writes(self) -> list[str]:
        """Checkpoints the job saves (a backend on several machines brings them back)."""
        return [] if self.evaluate else [self.save_to]


@dataclass
class MemberResult:
    """A member's interval or copy: its metrics (``budget``: the units it has trained in all), or why it
    failed."""

    metrics: dict[str, float] = field(default_factory=dict)
    per_seed: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    failure: FailureKind | None = None
    traceback: str | None = None
    bytes: int = 0
    branches: list[dict[str, float]] = field(default_factory=list)  # a Branch's forks' metrics, in order

    @classmethod
    def of(cls, step: Step) -> MemberResult:
        """The runner's step of a member."""
        res = cls(
            {**step.metrics, "budget": float(step.steps)}, step.per_seed if len(step.per_seed) > 1 else []
        )
        if step.failure is not None:
            res.error, res.failure = describe(step.failure), step.failure.kind
        return res

    @classmethod
    def died(cls, what: str, how: str, timed_out: bool) -> MemberResult:
        """A member whose process ended (``how``), or was ended for overrunning trial_timeout."""
        kind = FailureKind.TIMEOUT if timed_out else FailureKind.DIED
        return cls(error=f"WorkerDied: {what} ended ({how})", failure=kind)


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
            agents = _build(sweep, job.member, job.was or job.config)
            if job.checkpoint is not None:
                _load(agents, checkpoint_path(out, job.checkpoint))
        if job.evaluate:  # a race block: the agents as they stand, on the block's seeds
            per_seed = [dict(a.evaluate(seed)) for a, seed in zip(agents, job.evaluate, strict=True)]
            _LIVE[key] = _Live(agents, job.checkpoint or "")
            return _raced(sweep, per_seed, time.perf_counter() - start)
        if job.was is not None:  # Reconfigure: new hyperparameters where it stands, no copy
            for agent in agents:
                agent.reconfigure(job.config)
        result = MemberResult(bytes=copied)
        if job.train:
            seeds = {job.member: list(range(len(agents)))}
            step = advance(
                Trainables(dict(enumerate(agents))),
                seeds,
                {job.member: job.train},
                {job.member: job.steps},
                sweep.metrics[0],
                sweep.config.aggregate,
                sweep.maximize,
            )[job.member]
            if step.failure is not None:
                raise step.failure
            result = MemberResult.of(step)
        target = checkpoint_path(out, job.save_to)
        for i, agent in enumerate(agents):
            agent.save(target / f"seed{i}")
        _LIVE[key] = _Live(agents, job.save_to)
    except (Exception, SystemExit) as exc:  # sys.exit() in a target fails the member, not the worker
        return MemberResult(
            seconds=time.perf_counter() - start,
            error=describe(exc),
            failure=failure_of(exc),
            traceback=traceback.format_exc(limit=-8),
        )
    result.seconds = time.perf_counter() - start
    return result


def _raced(sweep: Sweep, per_seed: list[dict[str, float]], seconds: float = 0.0) -> MemberResult:
    """A member's race block from its agents' evaluations (one per seed), aggregated as its training
    values are."""
    metrics = aggregate_seeds(per_seed, sweep.config.aggregate, sweep.metrics[0], sweep.maximize)
    return MemberResult(metrics, per_seed if len(per_seed) > 1 else [], seconds)


# ------------------------------------------------------------------------------- in the orchestrator
class Hosts(Protocol):
    """Where members live: those in ``units`` train an interval (``members`` is the whole population),
    and the method's decisions are carried out (copies, changes in place)."""

    def train(
        self, members: Sequence[MemberState], units: dict[int, int], judged: Collection[int] | None = None
    ) -> dict[int, MemberResult]:
        """Train each member in ``units`` that many budget units; evaluate those in ``judged`` (None:
        all) after. Separate agents evaluate whenever they train; a batch leaves the others out."""
        ...

    def apply(
        self, decisions: Sequence[Change], members: Sequence[MemberState]
    ) -> dict[int, MemberResult]: ...

    def branch(self, branches: Sequence[Branch], members: Sequence[MemberState]) -> dict[int, MemberResult]:
        """Fork each branching member once per config, train the forks, report their metrics (in
        ``MemberResult.branches``), drop them."""
        ...

    def evaluate(
        self, members: Sequence[MemberState], raced: Sequence[int], seeds: list[int]
    ) -> dict[int, MemberResult]:
        """Evaluate the ``raced`` members as they stand on ``seeds`` (one per seed of a member), training
        nothing: a race block."""
        ...

    @property
    def saved(self) -> bool:
        """The members' checkpoints are those of the last job: population.json may name them."""
        ...

    @property
    def seconds(self) -> dict[str, float]:
        """Where the jobs spent their time, by phase, summed (train, evaluate, checkpoint, ...)."""
        ...

    def place(self, state: PopulationState) -> None:
        """Learn (or record) where the population lives from its state: a resumed run keeps it."""
        ...

    def flush(self, members: Sequence[MemberState]) -> None:
        """Write what the last jobs did not."""
        ...


class ProcessHosts:
    """Members on the backend's workers (member ``i`` prefers worker ``i % size``), copies through
    checkpoints in the run directory, so every member saves after every job."""

    saved = True  # every job writes its checkpoint: population.json may always name it

    def __init__(self, sweep: Sweep, backend: Backend, timeout: float | None) -> None:
        self.sweep, self.backend, self.timeout = sweep, backend, timeout
        self.ref = SweepRef.of(sweep)
        self._serial = 0
        self.seconds: dict[str, float] = {}

    def flush(self, members: Sequence[MemberState]) -> None:
        """Nothing to write: every job saved."""

    def place(self, state: PopulationState) -> None:
        """A member trains on worker ``member mod workers`` (see ``_run``): nothing to place."""

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
                # a member trains on its own worker (where its live agent is), never where one is free:
                # a reloaded SB3 agent does not go on exactly as the live one, so the result would
                # depend on timing
                member = next((m for m in pending if m % size == worker), None)
                if member is None:
                    continue
                log = self.sweep.out / "logs" / f"member-{member}.log"
                job = pending.pop(member)
                running[
                    self.backend.submit(
                        member_step, job, log=log, worker=worker, reads=job.reads(), writes=job.writes()
                    )
                ] = member
            for ev in self.backend.events(timeout=1.0):
                if ev.job not in running:
                    continue
                member = running[ev.job]
                if ev.kind is EventKind.DONE:
                    results[member] = ev.payload
                    self.seconds["members"] = self.seconds.get("members", 0.0) + ev.payload.seconds
                elif ev.kind is EventKind.DIED:
                    late = ev.job in timed_out
                    how = f"timeout after {self.timeout:g} s" if late else str(ev.payload)
                    results[member] = MemberResult.died("the member's process", how, late)
                elif ev.kind is EventKind.ERROR:
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

    def train(
        self, members: Sequence[MemberState], units: dict[int, int], judged: Collection[int] | None = None
    ) -> dict[int, MemberResult]:
        jobs = {
            m.index: MemberJob(
                self.ref,
                m.index,
                m.config,
                units[m.index],
                m.checkpoint,
                self._path(m.index, m.steps + units[m.index]),
                steps=m.steps,
            )
            for m in members
            if m.index in units
        }
        results = self._run(jobs)
        for m in members:
            if m.index in results and results[m.index].error is None:
                m.checkpoint = jobs[m.index].save_to
        return results

    def branch(self, branches: Sequence[Branch], members: Sequence[MemberState]) -> dict[int, MemberResult]:
        raise NotImplementedError(  # refused before the sweep starts: only a target that forks can branch
            "members in separate processes cannot be forked with their envs and random streams"
        )

    def evaluate(
        self, members: Sequence[MemberState], raced: Sequence[int], seeds: list[int]
    ) -> dict[int, MemberResult]:
        by_index = {m.index: m for m in members}
        return self._run(
            {
                i: MemberJob(
                    self.ref,
                    i,
                    by_index[i].config,
                    0,
                    by_index[i].checkpoint,
                    "",
                    steps=by_index[i].steps,
                    evaluate=tuple(seeds),
                )
                for i in raced
            }
        )

    def apply(self, decisions: Sequence[Change], members: Sequence[MemberState]) -> dict[int, MemberResult]:
        by_index = {m.index: m for m in members}
        jobs = {}
        for d in decisions:
            m = by_index[d.member]
            if isinstance(d, Reconfigure):  # the live agent (else rebuilt as it was saved) changes in place
                config = {**m.config, **d.config}
                path = self._path(m.index, m.steps)
                jobs[m.index] = MemberJob(
                    self.ref, m.index, config, 0, m.checkpoint, path, was=dict(m.config)
                )
                continue
            donor = by_index[d.donor]
            assert donor.checkpoint is not None  # a donor is a healthy member: it saved this interval
            jobs[d.member] = MemberJob(
                self.ref,
                d.member,
                d.config,
                0,
                donor.checkpoint,
                self._path(d.member, donor.steps),
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
    computation (a target with a ``batch`` class, the engine), or of one shard of it (``configs``: the
    shard's members); its state is one checkpoint file per shard. A copy whose donor lives in another
    shard brings the donor's agent (``agents``, from that shard's ``export``)."""

    sweep: SweepRef
    configs: dict[int, dict[str, Any]]
    checkpoint: str | None
    save_to: str
    units: dict[int, int] = field(default_factory=dict)
    decisions: tuple[Change, ...] = ()
    branches: tuple[Branch, ...] = ()
    save: bool = True  # write the checkpoint (else only the live batch in the worker moves on)
    steps: dict[int, int] = field(default_factory=dict)  # what each member in ``units`` has trained
    raced: tuple[int, ...] = ()  # a race block of these members, as they stand, on ``race_seeds``
    race_seeds: tuple[int, ...] = ()
    shard: int = 0  # which shard of the population (its live batch in the worker is kept by shard)
    export: tuple[int, ...] = ()  # members whose agents another shard's copies take
    agents: dict[int, list[Any]] = field(default_factory=dict)  # a donor's agents (one per seed)
    judged: tuple[int, ...] | None = None  # members in ``units`` evaluated after training (None: all)

    def reads(self) -> list[str]:
        return [self.checkpoint] if self.checkpoint else []

    def writes(self) -> list[str]:
        return [self.save_to]


_ENGINES: dict[str, tuple[str, Any]] = {}  # run directory#shard -> (the checkpoint it matches, the batch)
ENGINE_FILE = "engine.pt"


@dataclass
class EngineOutcome:
    """An engine job's results (one per member involved) and where its time went."""

    results: dict[int, MemberResult]
    seconds: dict[str, float]
    agents: dict[int, list[Any]] = field(default_factory=dict)  # the exported members' (one per seed)


def engine_step(job: EngineJob, link: Link) -> EngineOutcome:
    """Train or copy members of a batched population in a worker; one result per member involved.

    The shard's members, in order, are the batch's: the n-th with ``seeds_per_trial`` k is engine
    members ``n*k .. n*k+k-1`` (its seeds); a copy copies all of them. The batch stays live in the
    worker between jobs; it is saved when ``job.save``. Each shard is a process of one torch thread
    (two one-thread processes beat one of two threads).
    """
    import torch

    sweep = job.sweep.load()
    out, k = sweep.out, sweep.config.seeds_per_trial
    torch.set_num_threads(int(sweep.config.args.get("threads", 1)))  # one, unless the user asks
    live = f"{out}#{job.shard}"
    cached = _ENGINES.pop(live, None)
    start = time.perf_counter()
    if cached is not None and cached[0] == job.checkpoint:
        batch = cached[1]
    else:
        batch_class = sweep.info.batch_class()
        order = sorted(job.configs)
        configs = [{**sweep.config.args, **job.configs[i]} for i in order for _ in range(k)]
        seeds = [s for i in order for s in sweep.trial_seeds(i)]
        batch = batch_class(configs, seeds, per_member_budget(sweep), out / "checkpoints" / "engine")
        if job.checkpoint is not None:
            path = checkpoint_path(out, job.checkpoint) / ENGINE_FILE
            batch.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))  # any device
    before = dict(batch.seconds)
    results: dict[int, MemberResult] = {}
    at = {i: n * k for n, i in enumerate(sorted(job.configs))}  # member -> its first engine member
    agents = {i: [batch.agent(at[i] + j) for j in range(k)] for i in job.export}
    for d in job.decisions:  # a copy is an index copy (or the donor's agent from another shard)
        for j in range(k):
            if isinstance(d, Copy) and d.donor in job.agents:
                batch.put_agent(at[d.member] + j, job.agents[d.donor][j], d.config)
            elif isinstance(d, Copy):
                batch.copy(at[d.donor] + j, at[d.member] + j, d.config)
            else:
                batch.set_hparams(at[d.member] + j, job.configs[d.member])
        results[d.member] = MemberResult()
    for b in job.branches:  # forks of the member (envs and random streams too): the same next batch
        results[b.member] = MemberResult(
            branches=[_fork_step(sweep, batch, b, config, job, at[b.member]) for config in b.configs]
        )
    if job.units:
        members = {i: [at[i] + j for j in range(k)] for i in job.units}
        steps = advance(
            BatchAgents(batch),
            members,
            job.units,
            job.steps,
            sweep.metrics[0],
            sweep.config.aggregate,
            sweep.maximize,
            evaluate=job.judged,
        )
        results.update({i: MemberResult.of(step) for i, step in steps.items()})
    if job.raced:  # one batched evaluation of every raced member's seeds, each on the block's seed
        evaluated = batch.evaluate({at[i] + j: s for i in job.raced for j, s in enumerate(job.race_seeds)})
        for i in job.raced:
            results[i] = _raced(sweep, [evaluated[at[i] + j] for j in range(k)])
    seconds = time.perf_counter() - start
    for r in results.values():  # they trained together: each one took the whole job's wall time
        r.seconds = seconds
    saving = time.perf_counter()
    if job.save:
        target_dir = checkpoint_path(out, job.save_to)
        target_dir.mkdir(parents=True, exist_ok=True)
        torch.save(batch.state_dict(), target_dir / ENGINE_FILE)
    _ENGINES[live] = (job.save_to, batch)
    phases = {k: v - before.get(k, 0.0) for k, v in batch.seconds.items()}
    phases["checkpoint"] = time.perf_counter() - saving
    phases["other"] = max(0.0, seconds - sum(v for k, v in phases.items() if k != "checkpoint"))
    return EngineOutcome(results, phases, agents)


def _fork_step(
    sweep: Sweep, batch: Any, branch: Branch, config: dict[str, Any], job: EngineJob, at: int
) -> dict[str, float]:
    """Fork ``branch.member`` (each of its seeds, engine members ``at ..``) with ``config``, train the
    forks ``branch.units`` (default: one piece of the target, its next batch), and drop them; their
    metrics."""
    k = sweep.config.seeds_per_trial
    forks = []
    for j in range(k):
        source = at + j
        fork = batch.add(batch.configs[source], seed=0)  # a slot of its shape; the fork overwrites it all
        batch.fork(source, fork, config)
        forks.append(fork)
    units = branch.units or sweep.granularity[1]
    done = job.steps[branch.member]
    step = advance(
        BatchAgents(batch),
        {0: forks},
        {0: units},
        {0: done},
        sweep.metrics[0],
        sweep.config.aggregate,
        sweep.maximize,
    )[0]
    for fork in forks:
        batch.remove(fork)
    return {**step.metrics, "budget": float(step.steps), "failed": float(step.failure is not None)}


class BatchedHosts:
    """A population that trains as one computation (the engine), in ``shards`` parts: member ``i`` lives
    in shard ``i % shards``, a batch in worker ``shard % workers``, each worker a process (or Ray
    actor) of one torch thread. An interval is one job per shard, run at once. A copy inside a shard is
    an index copy; across shards the donor's agent travels through the jobs (a pipe to a worker process,
    Ray's object store to an actor): one round exports it, the next puts it in. Each shard's batch
    stays live in its worker; its checkpoint file is written at most every ``checkpoint_every`` seconds
    and at the end (:meth:`flush`), and population.json only with it, so a kill loses at most that
    time or one interval. A resumed population keeps the shards it started with (:meth:`place`)."""

    def __init__(self, sweep: Sweep, backend: Backend, timeout: float | None) -> None:
        self.sweep, self.backend, self.timeout = sweep, backend, timeout
        self.ref = SweepRef.of(sweep)
        self.shards = backend.size
        self._serial = 0
        self.live: dict[int, str | None] = {}  # the state each shard's batch holds now (saved or not)
        self.unsaved: set[int] = set()  # shards whose last job did not write its checkpoint
        self._last_save = time.monotonic()
        self.seconds: dict[str, float] = {}

    def place(self, state: PopulationState) -> None:
        """A new population takes this run's shards; a resumed one keeps its own (its checkpoints are
        per shard), running shards that share a worker one after the other."""
        if state.shards is None:  # a new population; one saved before shards was one batch
            state.shards = 1 if any(m.checkpoint for m in state.members) else self.shards
        self.shards = state.shards

    @property
    def saved(self) -> bool:
        """Every shard's last job wrote its checkpoint: population.json may name them."""
        return not self.unsaved

    def shard(self, member: int) -> int:
        return member % self.shards

    def _run(
        self,
        members: Sequence[MemberState],
        jobs: dict[int, dict[str, Any]],
        save: bool = False,
        changes: bool = True,
    ) -> tuple[dict[int, MemberResult], dict[int, list[Any]]]:
        """Run one job per shard in ``jobs`` (its fields besides the shard's members' configs), those of
        distinct workers at once; the members' results and the exported agents.

        Jobs that ``changes`` the batches save them when it is time (``checkpoint_every``), every
        unsaved shard then, so that population.json can name a checkpoint for every member; jobs that
        only read them (exports, race blocks) save nothing. A worker whose process dies (or overruns
        trial_timeout) takes the live batches of every shard it held: their members get died results
        (the loop fails them) and go back to their last checkpoint; the other workers go on."""
        save = changes and (save or time.monotonic() - self._last_save >= self.sweep.config.checkpoint_every)
        if save:
            jobs = {**{s: {} for s in self.unsaved}, **jobs}
        specs: dict[int, EngineJob] = {}
        for s, fields in sorted(jobs.items()):
            mine = [m for m in members if self.shard(m.index) == s]
            fields = dict(fields)
            configs = fields.pop("configs", None) or {m.index: m.config for m in mine}
            state = self.live.get(s) or mine[0].checkpoint
            name = self._path(s) if changes else state or self._path(s)
            specs[s] = EngineJob(self.ref, configs, state, name, save=save, shard=s, **fields)
        size = self.backend.size
        waiting = {w: [s for s in specs if s % size == w] for w in range(size)}
        running: dict[int, tuple[int, float]] = {}  # job id -> (shard, started)
        timed_out: set[int] = set()
        results: dict[int, MemberResult] = {}
        agents: dict[int, list[Any]] = {}
        log = self.sweep.out / "logs" / "population.log"
        while any(waiting.values()) or running:
            busy = {s % size for s, _ in running.values()}
            for w, queue in waiting.items():
                if queue and w not in busy:
                    s = queue.pop(0)
                    spec = specs[s]
                    submitted = self.backend.submit(
                        engine_step, spec, log=log, worker=w, reads=spec.reads(), writes=spec.writes()
                    )
                    running[submitted] = (
                        s,
                        time.monotonic(),
                    )
            for ev in self.backend.events(timeout=1.0):
                if ev.job not in running:
                    continue
                s, began = running.pop(ev.job)
                spec = specs[s]
                if ev.kind is EventKind.DONE:
                    outcome: EngineOutcome = ev.payload
                    if changes:
                        self.live[s] = spec.save_to
                        (self.unsaved.discard if spec.save else self.unsaved.add)(s)
                    if spec.save:
                        for m in members:
                            if self.shard(m.index) == s:
                                m.checkpoint = spec.save_to
                    for phase, seconds in outcome.seconds.items():
                        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds
                    results.update(outcome.results)
                    agents.update(outcome.agents)
                elif ev.kind is EventKind.ERROR:
                    raise RuntimeError(f"autorl failed while running the population (a bug):\n{ev.payload}")
                elif ev.kind is EventKind.DIED:
                    late = ev.job in timed_out
                    how = f"timeout after {self.timeout:g} s" if late else str(ev.payload)
                    died = MemberResult.died("the population's process", how, late)
                    for lost in (x for x in range(self.shards) if x % size == s % size):
                        self.live[lost] = None  # its live batch died with the process: from its checkpoint
                        self.unsaved.discard(lost)
                        results.update({m.index: died for m in members if self.shard(m.index) == lost})
                else:
                    running[ev.job] = (s, began)
            if self.timeout is not None:
                for job_id, (s, started) in running.items():
                    if time.monotonic() - started > self.timeout and job_id not in timed_out:
                        timed_out.add(job_id)
                        self.backend.kill(s % size)
        if save:
            self._last_save = time.monotonic()
        return results, agents

    def _each(self, by_member: dict[int, Any]) -> dict[int, dict[int, Any]]:
        """``by_member`` split by shard."""
        out: dict[int, dict[int, Any]] = {}
        for i, value in by_member.items():
            out.setdefault(self.shard(i), {})[i] = value
        return out

    def _path(self, shard: int) -> str:
        self._serial += 1
        return f"{CHECKPOINTS}/engine-{shard}/{time.time_ns()}-{self._serial}"  # a shard's own folder

    def train(
        self, members: Sequence[MemberState], units: dict[int, int], judged: Collection[int] | None = None
    ) -> dict[int, MemberResult]:
        steps = {m.index: m.steps for m in members}
        jobs: dict[int, dict[str, Any]] = {
            s: {"units": mine, "steps": {i: steps[i] for i in mine}} for s, mine in self._each(units).items()
        }
        if judged is not None:
            for s, fields in jobs.items():
                fields["judged"] = tuple(i for i in sorted(judged) if self.shard(i) == s)
        return self._run(members, jobs)[0]

    def branch(self, branches: Sequence[Branch], members: Sequence[MemberState]) -> dict[int, MemberResult]:
        steps = {m.index: m.steps for m in members}
        jobs = {
            s: {"branches": tuple(mine.values()), "steps": {i: steps[i] for i in mine}}
            for s, mine in self._each({b.member: b for b in branches}).items()
        }
        return self._run(members, jobs)[0]

    def evaluate(
        self, members: Sequence[MemberState], raced: Sequence[int], seeds: list[int]
    ) -> dict[int, MemberResult]:
        jobs = {
            s: {"raced": tuple(mine), "race_seeds": tuple(seeds)}
            for s, mine in self._each(dict.fromkeys(raced)).items()
        }
        return self._run(members, jobs, changes=False)[0]

    def apply(self, decisions: Sequence[Change], members: Sequence[MemberState]) -> dict[int, MemberResult]:
        configs = {m.index: m.config for m in members}
        for d in decisions:
            configs[d.member] = (
                {**configs[d.member], **d.config} if isinstance(d, Reconfigure) else dict(d.config)
            )
        # copies from another shard: first the donors' shards export their agents
        copies = [d for d in decisions if isinstance(d, Copy)]
        donors = {d.donor for d in copies if self.shard(d.donor) != self.shard(d.member)}
        agents: dict[int, list[Any]] = {}
        lost: dict[int, MemberResult] = {}  # donors whose shard died exporting: their copies fail so
        if donors:
            export = {s: {"export": tuple(mine)} for s, mine in self._each(dict.fromkeys(donors)).items()}
            exported, agents = self._run(members, export, changes=False)
            lost = {i: r for i, r in exported.items() if r.error is not None}
        todo = [d for d in decisions if not (isinstance(d, Copy) and d.donor in lost)]
        jobs = {}
        for s, mine in self._each({d.member: d for d in todo}).items():
            needed = {
                d.donor: agents[d.donor] for d in mine.values() if isinstance(d, Copy) and d.donor in agents
            }
            jobs[s] = {
                "configs": {i: c for i, c in configs.items() if self.shard(i) == s},
                "decisions": tuple(mine.values()),
                "agents": needed,
            }
        results = self._run(members, jobs)[0] if jobs else {}
        results.update(lost)  # a donor's shard died exporting: its members (the donor too) failed
        results.update({d.member: lost[d.donor] for d in copies if d.donor in lost})
        return results

    def flush(self, members: Sequence[MemberState]) -> None:
        """Write the live batches' checkpoints where the last jobs did not."""
        if self.unsaved:
            self._run(members, {s: {} for s in sorted(self.unsaved)}, save=True)


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
    sweep: Sweep,
    hosts: Hosts,
    resume: bool = False,
    progress: Progress | None = None,
    plots: bool = True,
    tracker: Tracker | None = None,
) -> optuna.Study:
    """Run (or resume) a population sweep; returns the study with one trial per member (``plots``: draw
    population_schedules.png; ``tracker``: each member's intervals and hyperparameters go to it)."""
    tracker = tracker or Tracker([])
    began = time.perf_counter()
    out = sweep.out
    plan = sweep.population
    study = open_study(sweep)
    state = PopulationState.load(out) if resume and (out / STATE_FILE).is_file() else _new_state(sweep)
    plan.method.load_state_dict(state.method_state)
    hosts.place(state)
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
    key = decides_on(sweep)
    every = evaluates_every_interval(sweep, bool(tracker))
    args = sweep.config.args

    def last(m: MemberState, units: int) -> bool:
        return m.steps + units + sweep.info.piece({**args, **m.config}) > budget

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

    def finished() -> bool:
        return all(m.failed or m.steps >= budget for m in state.members)

    def decide() -> None:
        _decide(sweep, hosts, state, rng)
        state.rng, state.deciding = dict(rng.bit_generator.state), False
        if hosts.saved:
            state.save(out)
            clean_checkpoints(out, state)
        clock.save()

    try:
        while not state.done:
            if state.deciding and not finished():  # stopped between an interval and its decisions
                decide()
            active = [m for m in state.members if not m.failed and m.steps < budget]
            if not active or clock.left <= 0:
                break
            units = {m.index: next_report(m.steps, interval, budget) - m.steps for m in active}
            judged = None if every else {m.index for m in active if last(m, units[m.index])}
            results = hosts.train(state.members, units, judged)
            for m in active:
                _apply_interval(m, results[m.index], sweep, state, sign, key)
            _fail_lost(state, results, set(units))
            _track(tracker, sweep, active)
            state.intervals += 1
            scores = [m.score for m in state.members if m.score is not None]
            if scores:
                top = max(scores, key=lambda v: sign * v)
                state.timeline.append([state.total_steps, round(clock.elapsed, 3), top])
            state.deciding = True  # a resume from here makes this interval's decisions first
            if hosts.saved:  # population.json names only checkpoints that exist
                state.save(out)
            standings = [v for m in state.members if (v := m.standing(key)) is not None and math.isfinite(v)]
            best = f"{max(standings, key=lambda v: sign * v):.6g}" if standings else "-"
            report(f"interval {state.intervals}: best {key or sweep.metrics[0]} {best}")
            if finished():
                break
            decide()
        # a population that budget.time stopped is final too: recorded as it stands after its last interval
        hosts.flush(state.members)
        state.done = True
        state.save(out)
        clean_checkpoints(out, state)
        _record(sweep, study, state)
        for m in state.members:
            final = {sweep.metrics[0]: m.score} if m.score is not None else {}
            tracker.end(f"member-{m.index}", "fail" if m.failed else "complete", final, m.config)
        winner = _race(sweep, hosts, study, state, report)
    finally:
        clock.save(force=True)
    phases = {**hosts.seconds}
    phases["orchestration"] = max(0.0, time.perf_counter() - began - sum(phases.values()))
    write_population_outputs(
        out, sweep, state.members, state.lineage, _summary(state, out, phases), plots=plots, best=winner
    )
    report(f"population done: {state.exploits} copies, {state.failures} failures")
    return study


def evaluates_every_interval(sweep: Sweep, tracked: bool) -> bool:
    """Whether a batched population evaluates every member after every interval. It does where
    something reads those evaluations: decisions on a metric the target's training does not report
    (``train_return`` is reported by every interval; the sweep's own metric, where it is one, too), a
    ``value`` other than the last, or a tracker; and under a time budget, which may end any interval.
    Otherwise a member is evaluated only after the interval that may be its last (whole pieces: one
    that reaches within a piece of the budget may pass it), for its value."""
    read = decides_on(sweep) or sweep.metrics[0]
    return (
        read not in sweep.info.training_metrics
        or tracked
        or sweep.value_spec.select is not Select.LAST
        or sweep.config.budget.time is not None
    )


def decides_on(sweep: Sweep) -> str | None:
    """The training metric a population's decisions read (the plan's ``decides_on``), or None where
    they read the sweep's own metric."""
    key = sweep.population.decides_on
    return None if key == sweep.metrics[0] else key


def _apply_interval(
    m: MemberState, res: MemberResult, sweep: Sweep, state: PopulationState, sign: float, key: str | None
) -> None:
    """Take in a member's interval: its steps, metrics and (where evaluated) score; the history's
    observation is the change in what the decisions read. A training metric that is nan in an interval
    (no episode ended in it) leaves what the decisions read at its last value, and no observation; the
    sweep's own metric, where it is a training metric, keeps its last value as the score too."""
    m.seconds += res.seconds
    if res.error is not None:
        _fail(state, m, res.failure or FailureKind.ERROR, res.error)
        return
    before = m.steps
    m.steps = int(res.metrics["budget"])  # what the runner counted (whole rollouts may overshoot)
    state.total_steps += (m.steps - before) * len(sweep.trial_seeds(m.index))
    before_value = m.standing(key)
    m.metrics = {k: v for k, v in res.metrics.items() if k != "budget"}
    value = math.nan
    if key is not None:
        ended = _ended(res, key)
        value = float(np.mean(ended)) if ended else m.metrics.get(key, math.nan)
        if math.isfinite(value):
            m.held = value
    own = sweep.metrics[0]
    training = own in sweep.info.training_metrics
    if own in res.metrics:  # evaluated, or a training metric the interval reports
        if training:  # as decide_on reads it, but aggregated as the sweep's value is
            ended = _ended(res, own)
            score = sweep.config.aggregate(ended, sweep.maximize) if ended else float(res.metrics[own])
        else:
            score = float(res.metrics[own])
        if key is None:
            value = score
        if math.isfinite(score) or not training:  # nan (no episode ended): the last value stands
            m.score = score
            m.curve[m.steps] = score
    done = m.steps >= per_member_budget(sweep)
    if done and own not in res.metrics:  # a bug: the target trained past what its pieces say
        why = f"finished at {m.steps} {sweep.info.unit} unevaluated: its pieces are larger than it declares"
        _fail(state, m, FailureKind.ERROR, why)
        return
    if done and training and m.score is None:
        _fail(state, m, FailureKind.ERROR, f"no training episode ended in its whole run: it has no {own}")
        return
    if math.isfinite(value):  # what the interval changed (nothing is known of one without a value)
        known = before_value if before_value is not None and math.isfinite(before_value) else value
        delta = value - known
        state.history.append([m.steps, dict(m.config), sign * delta])


def _ended(res: MemberResult, name: str) -> list[float]:
    """A training metric's values from the seeds whose episodes ended in the interval (a seed without
    any reports nan, which would make their mean nan)."""
    return [s[name] for s in res.per_seed if math.isfinite(s.get(name, math.nan))]


def _fail(state: PopulationState, m: MemberState, failure: FailureKind, error: str) -> None:
    """Fail ``m``, counted and in the lineage."""
    m.fail(failure, error)
    state.failures += 1
    state.lineage.append(
        {"step": m.steps, "member": m.index, "event": "failed", "failure": m.failure, "error": error}
    )


def _track(tracker: Tracker, sweep: Sweep, members: Sequence[MemberState]) -> None:
    """Each member's interval to the trackers: its training metrics, its score where the interval was
    evaluated, and its hyperparameters as they stand (a schedule)."""
    for m in members:
        if m.failed:
            continue
        metrics = dict(m.metrics)
        if m.steps in m.curve:  # evaluated after this interval
            metrics[sweep.metrics[0]] = m.curve[m.steps]
        tracker.step(f"member-{m.index}", m.steps, metrics, m.config, schedule=True)


def _decide(sweep: Sweep, hosts: Hosts, state: PopulationState, rng: np.random.Generator) -> None:
    """The method's decisions after an interval, carried out: copies (exploits) and changes of
    hyperparameters in place; the method's own state is kept with the population's."""
    method, key = sweep.population.method, decides_on(sweep)
    observations = [Observation(int(h[0]), h[1], float(h[2])) for h in state.history]
    views = [m.view(key) for m in state.members]
    decisions = method.decide(views, observations, rng)
    branches = [d for d in decisions if isinstance(d, Branch)]
    if branches:  # the forks train, the method sees what they reported, and decides again
        forked = hosts.branch(branches, state.members)
        _fail_lost(state, forked, set())
        reported = {i: r.branches for i, r in forked.items()}
        for b in branches:
            scores = [r.get(sweep.metrics[0]) for r in reported.get(b.member, [])]
            state.lineage.append({"step": by_steps(state, b.member), "member": b.member, "event": "branch",
                                  "configs": list(b.configs), "scores": scores})  # fmt: skip
        views = [dataclasses.replace(v, branches=tuple(reported.get(v.index, []))) for v in views]
        decisions = method.decide(views, observations, rng)
        if any(isinstance(d, Branch) for d in decisions):
            raise RuntimeError(
                f"method {sweep.method!r} decided Branch twice after one interval (a bug in it)"
            )
    state.method_state = method.state_dict()
    changes = [d for d in decisions if not isinstance(d, Branch)]
    if not changes:
        return
    start = time.perf_counter()
    results = hosts.apply(changes, state.members)
    by_index = {m.index: m for m in state.members}
    for d in changes:
        m, res = by_index[d.member], results[d.member]
        event = "exploit" if isinstance(d, Copy) else "reconfigure"
        if res.error is not None:  # the decision failed: the member stays as it was, marked failed
            m.fail(res.failure or FailureKind.ERROR, res.error)
            failed = {"event": f"{event} failed", "failure": m.failure, "error": res.error}
            state.lineage.append({"step": m.steps, "member": m.index, **failed})
            continue
        if isinstance(d, Reconfigure):
            state.lineage.append(
                {"step": m.steps, "member": m.index, "event": event, "config": dict(d.config)}
            )
            m.config = {**m.config, **d.config}
            m.schedule.append({"step": m.steps, **m.config})
            continue
        donor = by_index[d.donor]
        state.lineage.append(
            {
                "step": m.steps,
                "member": m.index,
                "event": event,
                "donor": donor.index,
                "donor_score": donor.standing(key),
                "member_score": m.standing(key),
                "config": dict(d.config),
            }
        )
        state.exploits += 1
        state.exploit_bytes += res.bytes
        m.config, m.steps, m.score = dict(d.config), donor.steps, donor.score
        m.failed, m.error, m.failure, m.metrics = False, None, None, dict(donor.metrics)
        m.held = donor.held
        # the weights carry the donor's past: so does the schedule (what a replay must follow)
        m.schedule = [dict(s) for s in donor.schedule] + [{"step": m.steps, **d.config}]
    _fail_lost(state, results, {d.member for d in changes})
    state.exploit_seconds += time.perf_counter() - start


def _fail_lost(state: PopulationState, results: dict[int, MemberResult], handled: set[int]) -> None:
    """Fail the members that a job reports lost although it was not theirs (``handled``: those whose
    results the caller took in): a dead worker takes every agent it held with it."""
    for m in state.members:
        res = results.get(m.index)
        if m.index in handled or m.failed or res is None or res.error is None:
            continue
        _fail(state, m, res.failure or FailureKind.DIED, res.error)


def by_steps(state: PopulationState, member: int) -> int:
    """A member's steps so far."""
    return next(m.steps for m in state.members if m.index == member)


def _summary(state: PopulationState, out: Path, phases: dict[str, float]) -> dict[str, Any]:
    """population_summary.json; ``phases``: where this run of the sweep spent its time (seconds; a
    resumed run counts from its resume; the process's start-up and the export are not in it)."""
    return {
        "phases": {k: round(v, 3) for k, v in phases.items()},
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


def _race(
    sweep: Sweep,
    hosts: Hosts,
    study: optuna.Study,
    state: PopulationState,
    report: Callable[[str], None],
) -> int | None:
    """PBT's and PB2's final race: the top ``race.share`` of the members (at least two) by their value,
    each evaluated as it stands, training nothing, on ``race.seeds`` race blocks (the sweep's race seeds,
    common to all and never a training seed). Each block is a trial of its member's configuration
    (:mod:`autorl.results.race`), so trials.csv, best.yaml and ``show`` name the member the race found
    best, with its seeds, mean, IQM and CI. A resumed race runs only the blocks not yet recorded.
    Returns the race's incumbent member (None without a race)."""
    race = sweep.config.race
    if race is None:
        return None
    trials = study.get_trials(deepcopy=False)
    sign = 1.0 if sweep.maximize else -1.0
    entrants = [t for t in trials if race_key(t) is None and t.state == TrialState.COMPLETE and t.values]
    entrants.sort(key=lambda t: -sign * t.values[0])
    top = entrants[: max(2, math.ceil(race.share * len(state.members)))]
    member = {t.number: int(record_of(t).member or 0) for t in top}  # a population's trials name theirs
    done = {race_key(t) for t in trials}
    for block in range(1, race.seeds + 1):
        todo = [t for t in top if (t.number, block) not in done]
        if not todo:
            continue
        seeds = sweep.race_seeds(block)
        results = hosts.evaluate(state.members, [member[t.number] for t in todo], seeds)
        died = [member[t.number] for t in todo if results[member[t.number]].failure in _LOST]
        if died:  # a worker lost under the block is no fault of its members: once more, from checkpoints
            results.update(hosts.evaluate(state.members, died, seeds))
        for t in todo:
            _record_block(sweep, study, t, block, seeds, results[member[t.number]])
        report(f"race block {block} of {race.seeds}: {len(todo)} members")
    inc, _ = incumbent(study.get_trials(deepcopy=False), sweep.maximize, raced=True)
    return record_of(inc).member if inc is not None else None


_LOST = (FailureKind.DIED, FailureKind.TIMEOUT)


def _record_block(
    sweep: Sweep, study: optuna.Study, first: Any, block: int, seeds: list[int], res: MemberResult
) -> None:
    """A member's race block as a trial of its configuration: its value, or failed (an error, or a
    value that is not finite)."""
    value = res.metrics.get(sweep.metrics[0])
    ok = res.error is None and value is not None and math.isfinite(value)
    error = res.error or (None if ok else f"{sweep.metrics[0]} is {value}")
    record = TrialRecord(
        config=record_of(first).config,
        seeds=seeds,
        metrics={**res.metrics, "budget": 0.0},  # evaluation trains nothing
        error=error,
        failure=(res.failure or FailureKind.DIVERGED).value if not ok else None,
    )
    write_trial(
        study,
        record,
        TrialState.COMPLETE if ok else TrialState.FAIL,
        [float(value)] if ok and value is not None else None,
        params=(first.params, first.distributions),
        attrs={RACE_OF: first.number, RACE_BLOCK: block},
    )


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
            failure=m.failure if m.failed else None,
            member=m.index,
            schedule=m.schedule,
            log=f"logs/member-{m.index}.log",
        )
        ended = TrialState.COMPLETE if value is not None else TrialState.FAIL
        write_trial(
            study,
            record,
            ended,
            [value] if value is not None else None,
            params=(params, dists),
            curve=m.curve,
        )
