"""Supervised worker processes: where the embedded executor runs trials and population members.

Each worker is a persistent process (started once, so torch and the target are imported once) that
runs jobs sent over a socket. It is a fresh interpreter that imports autorl, not a copy of the caller:
the script that called ``autorl.api.sweep`` is never run again in it, so no ``__main__`` guard is
needed; what that script registered travels to it (:mod:`autorl.executors.carry`).

A job is a function ``f(arg, link)``: ``link.ask(message)`` sends a message to the orchestrator and
waits for its answer (an intermediate report and "prune?"). The supervisor notices a worker that dies
(segfault, OOM kill, ``os._exit``) through its process sentinel, reports which job it took down with
which signal or exit code, and starts a replacement.

A worker:

- dies with the orchestrator (Linux ``PR_SET_PDEATHSIG``), so a killed sweep leaves nothing behind;
- ignores Ctrl-C: the orchestrator decides what an interrupt does to the trials it runs;
- may be capped in memory (``RLIMIT_AS``: the address space, so an allocation past it fails in the
  worker with MemoryError, and the OOM killer never has to choose the orchestrator);
- writes each job's stdout and stderr to the job's log file;
- runs torch and BLAS with one thread unless the environment says otherwise.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from autorl.executors.process import WorkerProcess, keep_freed_memory, spawn, take_spare, warm_module
from autorl.executors.trial import JobFunction


class EventKind(enum.Enum):
    """What a worker did (the wire messages carry the value)."""

    ASK = "ask"  # a message from a job, awaiting the orchestrator's answer
    DONE = "done"  # a job's result
    ERROR = "error"  # a bug outside the target: the traceback
    DIED = "died"  # the process ended: how (a signal, an exit code)


@dataclass(frozen=True)
class Event:
    """Something a worker did, with the job it concerns and its payload."""

    kind: EventKind
    worker: int
    job: int | None
    payload: Any = None


def describe_exit(code: int | None) -> str:
    """``signal SIGSEGV`` for a negative exit code, else ``exit code N``."""
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


class _Link:
    def __init__(self, conn: Connection, job: int) -> None:
        self.conn, self.job = conn, job

    def ask(self, message: Any) -> Any:
        self.conn.send((EventKind.ASK.value, self.job, message))
        kind, job, answer = self.conn.recv()
        assert kind == "answer" and job == self.job, (kind, job)
        return answer


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Have Linux send this process ``sig`` when its parent dies (elsewhere: nothing)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # 1 = PR_SET_PDEATHSIG


@contextlib.contextmanager
def _output_to(log: str | None) -> Any:
    """Send this process's stdout and stderr (file descriptors 1 and 2) to ``log`` while a job runs."""
    if log is None:
        yield
        return
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "ab") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def worker_main(conn_fd: int, sentinel_fd: int, warm: list[str] | None = None) -> None:
    """Entry point of a worker process: import ``warm`` (what its first job will need, while the
    orchestrator is still reading its config), take over the orchestrator's registrations, then serve."""
    import importlib

    from autorl.executors.carry import adopt

    del sentinel_fd  # held open, never used: the orchestrator sees it close when this process ends
    conn = Connection(conn_fd)
    for entry in warm or ():
        with contextlib.suppress(Exception):  # the job imports it again and reports what fails
            if (name := warm_module(entry)) is not None:
                importlib.import_module(name)
    memory, carried = conn.recv()
    adopt(carried)
    _serve(conn, memory)
    # Done: skip the interpreter's teardown, which only frees memory; with torch loaded it took 0.8 s
    # of a 33 s two-worker sweep (profiled), which waited for it at its end.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _serve(conn: Connection, memory: int | None) -> None:
    """A worker's main loop: run jobs until told to stop (None) or the pipe closes."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if memory is not None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    else:  # kept memory would count against a cap
        keep_freed_memory()
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        job, fn, arg, log = msg
        try:
            with _output_to(log):
                result = fn(arg, _Link(conn, job))
        except BaseException:
            conn.send((EventKind.ERROR.value, job, traceback.format_exc()))
        else:
            conn.send((EventKind.DONE.value, job, result))


@dataclass
class _Worker:
    process: WorkerProcess
    conn: Connection
    job: int | None = None
    started: float = 0.0


class ProcessPool:
    """``size`` supervised worker processes on this machine."""

    def __init__(self, size: int, memory: int | None = None) -> None:
        from autorl.executors.carry import registrations

        self.memory = memory
        self._carried = registrations()
        self._workers: list[_Worker] = [self._start() for _ in range(size)]
        self._next_job = 0

    @property
    def size(self) -> int:
        return len(self._workers)

    def _start(self) -> _Worker:
        spare = take_spare() if self.memory is None else None  # a spare imported before any cap
        proc, conn = spare or spawn()
        conn.send((self.memory, self._carried))
        return _Worker(proc, conn)

    def idle(self) -> list[int]:
        """Workers with no job."""
        return [i for i, w in enumerate(self._workers) if w.job is None]

    def busy(self) -> dict[int, tuple[int, float]]:
        """job -> (worker, seconds it has run) for every running job."""
        now = time.monotonic()
        return {w.job: (i, now - w.started) for i, w in enumerate(self._workers) if w.job is not None}

    def submit(
        self,
        fn: JobFunction,
        arg: Any,
        log: str | Path | None = None,
        worker: int | None = None,
        reads: Sequence[str] = (),
        writes: Sequence[str] = (),
    ) -> int:
        """Start ``fn(arg, link)`` on ``worker`` (default: the first idle one); returns the job id. The
        workers share the run directory, so the checkpoints a job ``reads`` and ``writes`` stay put."""
        idle = self.idle()
        i = idle[0] if worker is None else worker
        w = self._workers[i]
        if w.job is not None:
            raise RuntimeError(f"worker {i} is busy with job {w.job}")
        job, self._next_job = self._next_job, self._next_job + 1
        w.conn.send((job, fn, arg, str(log) if log is not None else None))
        w.job, w.started = job, time.monotonic()
        return job

    def answer(self, worker: int, job: int, value: Any) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self._workers[worker].conn.send(("answer", job, value))

    def events(self, timeout: float | None = None) -> list[Event]:
        """What happened since the last call, waiting up to ``timeout`` seconds for something."""
        handles: dict[Any, tuple[int, str]] = {}
        for i, w in enumerate(self._workers):
            handles[w.conn] = (i, "conn")
            handles[w.process.sentinel] = (i, "sentinel")
        ready = wait(list(handles), timeout)
        out: list[Event] = []
        dead: set[int] = set()
        for h in ready:
            i, what = handles[h]
            w = self._workers[i]
            if what == "conn":
                try:
                    while w.conn.poll():
                        kind, job, payload = w.conn.recv()
                        out.append(Event(EventKind(kind), i, job, payload))
                        if kind in (EventKind.DONE.value, EventKind.ERROR.value):
                            w.job = None
                except (EOFError, OSError):
                    dead.add(i)
            else:
                dead.add(i)
        for i in sorted(dead):
            w = self._workers[i]
            w.process.join(5)
            out.append(Event(EventKind.DIED, i, w.job, describe_exit(w.process.exitcode)))
            w.conn.close()
            self._workers[i] = self._start()
        return out

    def kill(self, worker: int) -> None:
        """End ``worker`` now (a timeout); its death comes back as a ``died`` event."""
        with contextlib.suppress(ProcessLookupError):
            self._workers[worker].process.kill()

    def close(self, grace: float = 5.0) -> None:
        """Stop every worker: idle ones are asked to exit, busy ones killed."""
        for w in self._workers:
            if w.job is None:
                with contextlib.suppress(OSError, BrokenPipeError):
                    w.conn.send(None)
            else:
                w.process.kill()
        deadline = time.monotonic() + grace
        for w in self._workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join()
            w.conn.close()

    def __enter__(self) -> ProcessPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
