"""A worker's process, and a spare one started early.

The command line calls :func:`warm_start_file` first thing, and the sweep's process :func:`warm_start`
once the config's keys are valid and before the target is resolved (where the first started none), to
start its workers then, so that the workers' imports (autorl's executors, torch,
the target) run while the orchestrator resolves the config and opens the study, not after.
:class:`~autorl.executors.workers.ProcessPool` takes the spares as its workers. This module
imports only the standard library (and yaml to read a config file, the target registry when it warms).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autorl.config import SweepConfig

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt options (malloc.h)
_MALLOPT = {_M_MMAP_THRESHOLD: 32 << 20, _M_TRIM_THRESHOLD: 256 << 20, _M_TOP_PAD: 64 << 20}


def keep_freed_memory() -> bool:
    """In a worker process without a memory cap: let glibc's malloc keep freed memory for the next
    allocation (allocations up to 32 MiB from the heap, the heap trimmed only past 256 MiB free, grown
    64 MiB at a time) instead of handing it back to the kernel and faulting it in again.

    A training step allocates and frees many tensors of a few MiB together. Training 32 engine members
    in one process (benchmarks/engine_kernels.py), the defaults faulted 336-4,315 pages in per rollout
    and this 9-85; the env steps per second stayed within the runs' noise there. True where it was
    set; elsewhere (not glibc) nothing changes.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(option, value) == 1 for option, value in _MALLOPT.items())


# A worker's first lines: the orchestrator's sys.path, then the workers module's main (argv: the
# socket's and the sentinel's file descriptors, the modules to import first). SIGINT is ignored before
# anything else: Ctrl-C reaches the whole process group, and the orchestrator decides what it does to
# the trials.
_BOOT = (
    "import signal, sys, json; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "sys.path[:] = json.loads(sys.argv[1]); "
    "from autorl.executors.workers import worker_main; "
    "worker_main(int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4]))"
)


class WorkerProcess:
    """A worker process started with :data:`_BOOT`: a fresh interpreter that imports autorl, never the
    caller's ``__main__``. ``sentinel`` turns readable when it ends (as multiprocessing's does)."""

    def __init__(self, conn_fd: int, warm: Sequence[str] = ()) -> None:
        self.sentinel, keep = os.pipe()  # the worker holds the write end until it exits
        env = {**os.environ, **{var: os.environ.get(var, "1") for var in THREAD_VARS}}
        argv = [json.dumps(sys.path), str(conn_fd), str(keep), json.dumps(list(warm))]
        self._popen = subprocess.Popen(
            [sys.executable, "-c", _BOOT, *argv],
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


_SPARES: list[tuple[WorkerProcess, Connection]] = []


def spawn(warm: Sequence[str] = ()) -> tuple[WorkerProcess, Connection]:
    """A new worker process, importing ``warm`` first, and the orchestrator's end of its socket."""
    ours, theirs = socket.socketpair()
    proc = WorkerProcess(theirs.fileno(), warm)
    theirs.close()
    return proc, Connection(ours.detach())


def prestart(warm: Sequence[str] = ()) -> None:
    """Start one worker process now, importing ``warm``, for the next pool to take (or
    :func:`discard_spares` to end)."""
    _SPARES.append(spawn(warm))


def take_spare() -> tuple[WorkerProcess, Connection] | None:
    """A started spare worker and its connection, if one is alive."""
    while _SPARES:
        proc, conn = _SPARES.pop(0)
        if proc.is_alive():
            return proc, conn
        proc.join()
        conn.close()
    return None


@atexit.register
def discard_spares() -> None:
    """End the spare workers no pool took (a config refused, an executor that is not this one)."""
    while _SPARES:
        proc, conn = _SPARES.pop()
        proc.kill()
        proc.join()
        with contextlib.suppress(OSError):
            conn.close()


def warm_start(cfg: SweepConfig) -> None:
    """Once a sweep's keys are valid and before its target is resolved: start its workers (``workers``,
    or a population's size where it names a smaller one), which import the target's module meanwhile.
    Only for the embedded executor without ``trial_memory`` (a worker's imports must stay under its
    memory cap). Nothing where :func:`warm_start_file` started them already."""
    if _SPARES:
        return
    warm = [module] if (module := _target_module(cfg.target)) else []
    _warm(cfg.executor, cfg.trial_memory, cfg.method, cfg.workers, warm)


# the keys warm_start reads; an override of any of them leaves the start to warm_start
_READS = frozenset({"executor", "trial_memory", "method", "method.population", "workers", "target"})
TARGET = "target:"  # a warm entry naming a target: the worker imports that target's module


def warm_start_file(path: Path, overrides: Sequence[str] = ()) -> None:
    """The command line's start of a sweep's workers, as :func:`warm_start` would start them, from the
    config file as written: before autorl's config, its methods and optuna are imported (about 0.3 s
    sooner here). The workers resolve the target themselves. Nothing where ``overrides``
    (``KEY=VALUE``) change what it reads, or where the file does not read as a mapping with a target;
    the config's own checks then run as always, and :func:`warm_start` after them."""
    if _SPARES or any(o.partition("=")[0] in _READS for o in overrides):
        return
    from autorl.yamlio import config_path, load_yaml

    try:
        raw = load_yaml(config_path(path))  # a shipped example by its name too, as the sweep reads it
    except Exception:  # the config's own check says what is wrong with it, in one line
        return
    if not isinstance(raw, dict) or not isinstance(raw.get("target"), str):
        return
    workers = raw.get("workers", 1)
    if not isinstance(workers, int) or not 1 <= workers <= (os.cpu_count() or 1):
        return  # not a count the config's checks would let run here
    method = raw.get("method")
    _warm(raw.get("executor", "embedded"), raw.get("trial_memory"), method, workers, [TARGET + raw["target"]])


def _warm(executor: object, trial_memory: object, method: object, workers: int, warm: list[str]) -> None:
    if executor != "embedded" or trial_memory is not None:
        return
    size = method.get("population") if isinstance(method, dict) else None
    count = min(workers, size) if isinstance(size, int) and size >= 1 else workers
    for _ in range(count):
        prestart(warm)


def warm_module(name: str) -> str | None:
    """The module a warm entry names: itself, or for a :data:`TARGET` entry that target's module."""
    return _target_module(name.removeprefix(TARGET)) if name.startswith(TARGET) else name


def _target_module(target: str) -> str | None:
    """The module a target's jobs import (a registered target's lazy reference, or ``module:attr``);
    None for a file or an object defined in ``__main__``."""
    from autorl.targets.base import TARGETS

    ref: object = TARGETS.entry(target).target if target in TARGETS else target
    name = ref.partition(":")[0] if isinstance(ref, str) and ":" in ref else getattr(ref, "__module__", None)
    if not isinstance(name, str) or name == "__main__" or name.endswith(".py"):
        return None
    return name
