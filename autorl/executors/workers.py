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
import json
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from autorl.executors.trial import JobFunction

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


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


# A worker's first lines: the orchestrator's sys.path, then this module's main (argv: the socket's and
# the sentinel's file descriptors). SIGINT is ignored before anything else: Ctrl-C reaches the whole
# process group, and the orchestrator decides what it does to the trials.
_BOOT = (
    "import signal, sys, json; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "sys.path[:] = json.loads(sys.argv[1]); "
    "from autorl.executors.workers import worker_main; worker_main(int(sys.argv[2]), int(sys.argv[3]))"
)


class _Process:
    """A worker process started with :data:`_BOOT`: a fresh interpreter that imports autorl, never the
    caller's ``__main__``. ``sentinel`` turns readable when it ends (as multiprocessing's does)."""

    def __init__(self, conn_fd: int) -> None:
        self.sentinel, keep = os.pipe()  # the worker holds the write end until it exits
        env = {**os.environ, **{var: os.environ.get(var, "1") for var in THREAD_VARS}}
        self._popen = subprocess.Popen(
            [sys.executable, "-c", _BOOT, json.dumps(sys.path), str(conn_fd), str(keep)],
            pass_fds=(conn_fd, keep),
            stdin=subprocess.DEVNULL,
            env=env,
        )
        os.close(keep)

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def exitcode(self) -> int | None:
        return self._popen.poll()

    def is_alive(self) -> bool:
        return self._popen.poll() is None

    def join(self, timeout: float | None = None) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout)
        if self._popen.returncode is not None and self.sentinel >= 0:
            os.close(self.sentinel)
            self.sentinel = -1

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._popen.kill()


def worker_main(conn_fd: int, sentinel_fd: int) -> None:
    """Entry point of a worker process: take over the orchestrator's registrations, then serve."""
    from autorl.executors.carry import adopt

    del sentinel_fd  # held open, never used: the orchestrator sees it close when this process ends
    conn = Connection(conn_fd)
    memory, carried = conn.recv()
    adopt(carried)
    _serve(conn, memory)


def _serve(conn: Connection, memory: int | None) -> None:
    """A worker's main loop: run jobs until told to stop (None) or the pipe closes."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if memory is not None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
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
    process: _Process
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
        ours, theirs = socket.socketpair()
        proc = _Process(theirs.fileno())
        theirs.close()
        conn = Connection(ours.detach())
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
        self, fn: JobFunction, arg: Any, log: str | Path | None = None, worker: int | None = None
    ) -> int:
        """Start ``fn(arg, link)`` on ``worker`` (default: the first idle one); returns the job id."""
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
