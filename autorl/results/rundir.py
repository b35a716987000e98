"""The run directory: who owns it, whether a run may go into it, and the files that describe it.

One process owns a run directory at a time: an OS lock (``fcntl.flock`` on ``.autorl.lock``, released
by the kernel when the process dies, even by ``kill -9``) with the owner's pid and host in the file
for the message a second process gets. Before anything is written, a directory is checked: it must
be empty or hold an autorl run; a new sweep into a used one is refused, and a resume must describe
the same sweep (only :data:`~autorl.config.RESUMABLE_CHANGES` may differ).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from autorl.config import RESUMABLE_CHANGES, Sweep
from autorl.errors import ConfigError
from autorl.results.storage import redact
from autorl.yamlio import dump_yaml, load_yaml

FORMAT = 2  # run.json's "format": 1 (no field) is autorl 0.1's layout
LOCK = ".autorl.lock"
RUN_FILE = "run.json"
PACKAGES = ("autorl", "optuna", "torch", "stable-baselines3", "gymnasium", "ray", "numpy", "pandas")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


class DirectoryLock:
    """An exclusive lock on a directory, held while the object lives (or until the process dies)."""

    def __init__(self, directory: Path, what: str = "run") -> None:
        self.path = directory / LOCK
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> DirectoryLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ConfigError(
                f"{self.path.parent} is in use by {holder}: one process owns a {self.what} directory; "
                "wait for it, or use another --out (out= in Python; processes that share a study each "
                "have their own --out and one --storage)",
                "out",
            ) from None
        os.ftruncate(fd, 0)
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {since}".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def check_directory(directory: Path, marker: str, what: str = "run") -> bool:
    """Refuse a directory that holds anything but an autorl run (identified by ``marker``).

    Returns whether it already holds one."""
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory} is a file, not a directory", "out")
    if (directory / marker).is_file():
        return True
    # the lock, and what an atomic write killed halfway leaves (see write_atomic), are autorl's own
    others = (
        sorted(p.name for p in directory.iterdir() if p.name != LOCK and not _ATOMIC_TMP.match(p.name))
        if directory.is_dir()
        else []
    )
    if others:
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        raise ConfigError(
            f"{directory} is not empty and holds no autorl {what} ({shown}): autorl writes only into an "
            "empty directory or one of its own runs; choose another --out (out= in Python)",
            "out",
        )
    return False


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data and prefix not in ("args", "space", "method"):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: data}


def differences(
    old: dict[str, Any], new: dict[str, Any], allowed: tuple[str, ...] = RESUMABLE_CHANGES
) -> list[str]:
    """What differs between two resolved configs, outside the keys a resume may change."""
    a, b = _flat(old), _flat(new)
    # budget.exact changes nothing but the marks it rounds, which are compared themselves (a racing
    # sweep records its choice, runs before it recorded none)
    skip = {*allowed, "out", "name", "storage", "budget.exact"}  # the storage is compared as its URL
    keys = sorted(
        k
        for k in set(a) | set(b)
        if k not in skip and k.partition(".")[0] not in skip and a.get(k) != b.get(k)
    )
    return [f"{k} ({_short(b.get(k))}, was {_short(a.get(k))})" for k in keys]


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def check_run_dir(sweep: Sweep, resume: bool, trials: Callable[[], int]) -> None:
    """Refuse a sweep that may not go into ``sweep.out``. Nothing is written here; ``trials`` (the
    count of trials in the sweep's storage) is called only once the directory holds this sweep."""
    out = sweep.out
    if not check_directory(out, RUN_FILE):
        return
    run = json.loads((out / RUN_FILE).read_text())
    if run.get("incomplete"):  # killed while writing its run files: no trial ran, start it afresh
        return
    fmt = int(run.get("format", 1))
    if fmt != FORMAT:
        raise ConfigError(
            f"{out} was written by autorl {run.get('versions', {}).get('autorl', '0.1')} (run format {fmt}); "
            f"this autorl writes format {FORMAT} and cannot continue it: `autorl show` still reads it; "
            "start a new sweep with another --out (out= in Python)",
            "out",
        )
    old = load_yaml(out / "config.yaml") if (out / "config.yaml").is_file() else {}
    diff = differences(old, sweep.resolved())
    moved = bool(run.get("own_storage")) and not sweep.shared_storage  # a copied or moved run directory
    if not moved and run.get("storage") != redact(sweep.storage_url):
        diff.append(f"storage ({redact(sweep.storage_url)}, was {run.get('storage')})")
    if diff:
        written_before = (
            old.get("race") is not None
            and (old.get("budget") or {}).get("exact") is None
            and sweep.config.budget.exact
        )
        raise ConfigError(
            f"{out} holds a different sweep: {'; '.join(diff)}. A resume may only change "
            f"{', '.join(RESUMABLE_CHANGES)}; use another --out (out= in Python) for a new sweep"
            + (
                ". This run was written before a racing sweep trained exact budgets by default: add "
                "budget.exact: false to its config to resume it as it was"
                if written_before
                else ""
            ),
            "out",
        )
    if not resume and not sweep.shared_storage and (n := trials()):
        raise ConfigError(
            f"{out} already holds this sweep's {n} trials: resume it (--resume; resume=True in Python) "
            "or write elsewhere (--out DIR; out=DIR)",
            "out",
        )


def write_run_files(sweep: Sweep, argv: list[str] | None = None, **extra: Any) -> None:
    """Write what describes the run before any trial starts (config.yaml, space.yaml, run.json)."""
    sweep.out.mkdir(parents=True, exist_ok=True)
    if not (sweep.out / RUN_FILE).is_file():  # marks the directory as this run's before anything else
        write_atomic(sweep.out / RUN_FILE, json.dumps({"format": FORMAT, "incomplete": True}))
    dump_yaml(sweep.resolved(), sweep.out / "config.yaml")
    dump_yaml(sweep.space.to_dict(), sweep.out / "space.yaml")
    info = {
        "format": FORMAT,
        "source": sweep.source,
        "seed": sweep.config.seed,
        "storage": redact(sweep.storage_url),
        "own_storage": not sweep.shared_storage,  # the journal inside the run directory, wherever it moves
        "study_name": sweep.study_name,
        "command": [redact(a) for a in (argv or sys.argv)],
        "versions": versions(),
        **extra,
    }
    write_atomic(sweep.out / RUN_FILE, json.dumps(info, indent=2))


def note_run(out: Path, **fields: Any) -> None:
    """Add ``fields`` to ``run.json`` (what a run learns once it started, e.g. its random stream)."""
    path = out / RUN_FILE
    info = json.loads(path.read_text()) if path.is_file() else {}
    write_atomic(path, json.dumps({**info, **fields}, indent=2))


_ATOMIC_TMP = re.compile(r"^\..+\.\d+\.tmp$")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` so that a reader (or a crash) sees the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


@contextlib.contextmanager
def owned_run(sweep: Sweep, resume: bool, trials: Callable[[], int]) -> Iterator[DirectoryLock]:
    """Lock ``sweep.out``, check it may take this sweep, and write its run files; unlock at the end.

    ``trials`` counts the trials already in the sweep's storage (called only for a directory that
    holds this sweep, so nothing is created in a directory that is refused).
    """
    # before a lock file is created in someone else's folder, or in a directory a typo in --out named
    if not check_directory(sweep.out, RUN_FILE) and resume and not sweep.shared_storage:
        raise ConfigError(
            f"{sweep.out} holds no sweep to resume: check --out (out= in Python), or leave out --resume "
            "(resume=True) to start a new sweep there",
            "out",
        )
    with DirectoryLock(sweep.out) as lock:
        check_run_dir(sweep, resume, trials)
        write_run_files(sweep)
        yield lock
