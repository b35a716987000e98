"""The Ray backend: the same trial and population loops, with workers as Ray actors, on a local Ray
instance or a cluster (``ray_address``).

Only the workers move: the orchestrator (sampler, pruner, population decisions, the study) stays in
the ``autorl`` process, so every method, ``budget.total``, ``budget.time``, timeouts and resume behave as
with the embedded executor. Each actor runs one job at a time in a thread and streams its messages
back (an intermediate report waits for the orchestrator's answer); an actor that dies is replaced and
its job recorded FAIL. Files never travel through a path another node cannot see: an actor works in
a directory of its own, a job's input checkpoints are sent to it through Ray's object store and the
checkpoints it writes come back the same way into the run directory. A job's stdout and stderr come
back with its result and land in the run directory's ``logs/``.

Measured here (benchmarks/pbt_overhead.py): an orchestrated job costs milliseconds on actors, where
Ray Tune's trial machinery cost about 0.4 s per PBT member-interval, so Ray Tune is not used.

Security: a local instance is bound to 127.0.0.1 and keeps Ray's token authentication (on by default
for local clusters since Ray 2.59); autorl never turns authentication off.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import queue
import sys
import tarfile
import tempfile
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autorl.config import Sweep
from autorl.errors import ConfigError
from autorl.executors.carry import registrations
from autorl.executors.process import THREAD_VARS, keep_freed_memory
from autorl.executors.trial import SweepRef, checkpoint_path
from autorl.executors.workers import Event, EventKind, _output_to

LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": a local node uses 127.0.0.1, not a LAN address


def _on_loopback(address: str | None) -> bool:
    """No address (a local instance), or one of this host's loopback addresses."""
    if not address:
        return True
    host = address.removeprefix("ray://").rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def init_ray(sweep: Sweep) -> bool:
    """Connect to ``ray_address`` or start a local Ray on loopback; True when this call started it."""
    loopback = _on_loopback(sweep.config.ray_address)
    if loopback:
        # Ray resolves 127.0.0.1 to the host's network address unless its "cluster mode" is off: a
        # local instance then binds its servers to all interfaces, and a client cannot reach a head
        # that listens on loopback. Off, everything stays on 127.0.0.1 (the user may say otherwise).
        os.environ.setdefault(LOOPBACK_ENV, "0")
    import ray
    from ray._private import ray_constants

    if loopback and os.environ.get(LOOPBACK_ENV) == "0":
        ray_constants.ENABLE_RAY_CLUSTER = False  # read at import: ray may have been imported before
    if ray.is_initialized():
        return False
    if sweep.config.ray_address:
        ray.init(address=sweep.config.ray_address, log_to_driver=False)
    else:
        ray.init(
            address="local",
            num_cpus=os.cpu_count(),
            include_dashboard=False,
            log_to_driver=False,
            _node_ip_address="127.0.0.1",
        )
    return True


def _pack(root: Path, relative: str) -> bytes:
    """A checkpoint directory as tar bytes (paths relative to ``root``)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(checkpoint_path(root, relative), arcname=relative)
    return buf.getvalue()


def _unpack(root: Path, data: bytes) -> None:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            checkpoint_path(root, member.name)  # refuses a name that would land outside root
        tar.extractall(root, filter="data")


def _keep_only(path: Path) -> None:
    """Remove the siblings of ``path`` (a member's earlier checkpoints)."""
    import shutil

    if path.parent.is_dir():
        for other in path.parent.iterdir():
            if other != path:
                shutil.rmtree(other, ignore_errors=True)


class _Actor:
    """One Ray worker: runs a job in a thread, queues its messages for the orchestrator."""

    def __init__(self, path: list[str], carried: bytes) -> None:
        from autorl.executors.carry import adopt

        for var in THREAD_VARS:
            os.environ.setdefault(var, "1")
        keep_freed_memory()
        for entry in path:
            if entry not in sys.path:
                sys.path.append(entry)
        adopt(carried)
        self.home = Path(tempfile.mkdtemp(prefix="autorl-actor-"))
        self.outbox: queue.Queue[tuple[str, int, Any]] = queue.Queue()
        self.inbox: dict[int, queue.Queue[Any]] = {}

    def start(self, job: int, fn: Any, arg: Any, files: list[bytes], writes: list[str]) -> None:
        for data in files:
            _unpack(self.home, data)
        if isinstance(getattr(arg, "sweep", None), SweepRef):  # the run directory is this actor's own
            arg = dataclasses.replace(
                arg, sweep=SweepRef(arg.sweep.data_json, arg.sweep.source, str(self.home))
            )
        self.inbox[job] = queue.Queue()
        threading.Thread(target=self._run, args=(job, fn, arg, writes), daemon=True).start()

    def _run(self, job: int, fn: Any, arg: Any, writes: list[str]) -> None:
        actor = self

        class _Link:
            def ask(self, message: Any) -> Any:
                actor.outbox.put((EventKind.ASK.value, job, message))
                return actor.inbox[job].get()

        log = self.home / f"job-{job}.log"
        try:
            with _output_to(str(log)):
                result = fn(arg, _Link())
            produced = [_pack(self.home, w) for w in writes if (self.home / w).exists()]
            for w in writes:  # a member's older checkpoints here are never read again
                _keep_only(self.home / w)
            self.outbox.put((EventKind.DONE.value, job, (result, produced, log.read_text(errors="replace"))))
        except BaseException:
            self.outbox.put((EventKind.ERROR.value, job, traceback.format_exc()))
        finally:
            with contextlib.suppress(OSError):
                log.unlink()

    def next(self) -> tuple[str, int, Any]:
        return self.outbox.get()

    def ready(self) -> bool:
        """Answers once the actor is placed and started."""
        return True

    def answer(self, job: int, value: Any) -> None:
        self.inbox[job].put(value)


@dataclasses.dataclass
class _Slot:
    actor: Any
    pending: Any  # the outstanding next() call
    job: int | None = None
    started: float = 0.0
    log: Path | None = None
    killed: bool = False
    placing: Any = None  # a replacement actor's ready() call, until the actor is placed
    place_by: float = 0.0  # when placing must be done (monotonic seconds)
    died: Event | None = None  # the dead actor's event, said once its replacement is placed


class RayPool:
    """``size`` Ray actors (one CPU each), with the interface of
    :class:`~autorl.executors.workers.ProcessPool`."""

    def __init__(self, sweep: Sweep, size: int) -> None:
        self.sweep = sweep
        self.started = init_ray(sweep)
        import ray

        cpus = int(ray.cluster_resources().get("CPU", 0))
        if size > cpus:
            self.close()
            raise ConfigError(
                f"workers <= {cpus} (the Ray cluster's CPUs) must hold, got {size}", "workers", sweep.source
            )
        # threaded: next() waits for a message while the job runs (Ray's stubs lack max_concurrency)
        self._cls = ray.remote(num_cpus=1, max_concurrency=4)(_Actor)  # type: ignore[call-overload]
        self._path = [p for p in sys.path if p not in ("", os.getcwd())]
        self._carried = registrations()
        self._slots = [self._start() for _ in range(size)]
        self._next_job = 0
        self._made_by: dict[str, int] = {}  # checkpoint -> the worker that wrote it (it has the files)

    def _start(self) -> _Slot:
        actor = self._cls.remote(self._path, self._carried)
        return _Slot(actor, actor.next.remote())

    @property
    def size(self) -> int:
        return len(self._slots)

    def idle(self) -> list[int]:
        return [i for i, s in enumerate(self._slots) if s.job is None]

    def busy(self) -> dict[int, tuple[int, float]]:
        """Running jobs; not the job of an actor that died, whose worker waits for its replacement."""
        now = time.monotonic()
        return {
            s.job: (i, now - s.started)
            for i, s in enumerate(self._slots)
            if s.job is not None and s.died is None
        }

    def submit(
        self,
        fn: Any,
        arg: Any,
        log: Any = None,
        worker: int | None = None,
        reads: Sequence[str] = (),
        writes: Sequence[str] = (),
    ) -> int:
        i = self.idle()[0] if worker is None else worker
        slot = self._slots[i]
        out = self.sweep.out
        files = [
            _pack(out, r)
            for r in reads
            if self._made_by.get(r) != i and checkpoint_path(out, r).exists()  # not where it was written
        ]
        writes = list(writes)
        job, self._next_job = self._next_job, self._next_job + 1
        slot.actor.start.remote(job, fn, arg, files, writes)
        slot.job, slot.started, slot.log, slot.killed = (
            job,
            time.monotonic(),
            Path(log) if log else None,
            False,
        )
        for w in writes:
            self._made_by[w] = i
        return job

    def answer(self, worker: int, job: int, value: Any) -> None:
        self._slots[worker].actor.answer.remote(job, value)

    def events(self, timeout: float | None = None) -> list[Event]:
        import ray

        out: list[Event] = []
        self._check_placing(out)  # before anything is read: a stop here loses no event
        placing = {s.placing: s for s in self._slots if s.placing is not None}
        if placing:  # wake up by the first placement deadline, to say it in time
            due = min(s.place_by for s in placing.values()) - time.monotonic()
            timeout = max(0.0, due if timeout is None else min(timeout, due))
        if out:  # a death to say already: look, but do not wait
            timeout = 0.0
        refs = [s.pending for s in self._slots]
        ready, _ = ray.wait([*refs, *placing], num_returns=1, timeout=timeout)
        for ref in ready:
            if ref in placing:
                out.extend(self._on_placed(placing.pop(ref)))
                continue
            i = refs.index(ref)
            slot = self._slots[i]
            try:
                kind, job, payload = ray.get(ref)
            except (
                ray.exceptions.RayActorError,
                ray.exceptions.ActorDiedError,
                ray.exceptions.RayTaskError,
                ray.exceptions.ObjectLostError,  # its reply was lost with its node's object store
            ) as exc:
                if isinstance(exc, ray.exceptions.ObjectLostError):  # the actor went with it, surely
                    with contextlib.suppress(ray.exceptions.RayError):
                        ray.kill(slot.actor, no_restart=True)
                how = "killed" if slot.killed else f"the Ray actor died: {type(exc).__name__}"
                new = self._slots[i] = self._start()
                new.job, new.placing = slot.job, new.actor.ready.remote()
                # a replacement that died unplaced keeps the first death and its deadline
                new.died = slot.died or (
                    Event(EventKind.DIED, i, slot.job, how) if slot.job is not None else None
                )
                new.place_by = (
                    slot.place_by
                    if slot.placing is not None
                    else time.monotonic() + self.sweep.config.ray_place_timeout
                )
                self._made_by = {k: v for k, v in self._made_by.items() if v != i}
                continue
            slot.pending = slot.actor.next.remote()
            kind = EventKind(kind)
            if kind is EventKind.DONE:
                result, produced, log_text = payload
                for data in produced:
                    _unpack(self.sweep.out, data)
                if slot.log is not None:
                    slot.log.parent.mkdir(parents=True, exist_ok=True)
                    with open(slot.log, "a") as f:
                        f.write(log_text)
                payload = result
            if kind in (EventKind.DONE, EventKind.ERROR):
                slot.job = None
            out.append(Event(kind, i, job, payload))
        return out

    @staticmethod
    def _on_placed(slot: _Slot) -> list[Event]:
        """The replacement of a dead actor is placed: the death is said now, so the job it lost is
        handled (a failed trial, a population's failed members) only where a worker can go on. A job
        given to the replacement while it waited (its worker had none) runs from now."""
        died, slot.placing, slot.died = slot.died, None, None
        if died is not None:
            slot.job = None
            return [died]
        if slot.job is not None:
            slot.started = time.monotonic()
        return []

    def _check_placing(self, out: list[Event]) -> None:
        """A replacement actor must be placed within ``ray_place_timeout``; the other workers go on
        meanwhile. A cluster that no longer has a CPU for it (a node was lost) would leave the worker
        waiting for ever: that is said in one line instead, with the workers a resume can have, before
        the lost job is handled (what has finished is kept; a population loses at most its last
        interval, and its resume gives what an uninterrupted run gives)."""
        import ray

        now = time.monotonic()
        for slot in self._slots:
            if slot.placing is None or now < slot.place_by:
                continue
            if ray.wait([slot.placing], timeout=0)[0]:  # placed just now
                out.extend(self._on_placed(slot))
                continue
            wait = self.sweep.config.ray_place_timeout
            cpus = int(ray.cluster_resources().get("CPU", 0))
            raise ConfigError(
                f"a worker's Ray actor died and none could start in its place within {wait:g} s "
                f"(the cluster has {cpus} CPUs for {self.size} workers: was a node lost?); resume with "
                f"--resume --set workers={max(1, cpus)}, or give a new node longer with ray_place_timeout",
                "workers",
                self.sweep.source,
            )

    def kill(self, worker: int) -> None:
        if self._slots[worker].died is not None:  # its job died already; its replacement waits for a CPU
            return
        import ray

        self._slots[worker].killed = True
        ray.kill(self._slots[worker].actor, no_restart=True)

    def close(self) -> None:
        import ray

        for s in getattr(self, "_slots", []):
            with contextlib.suppress(Exception):
                ray.kill(s.actor, no_restart=True)
        if self.started:
            ray.shutdown()
