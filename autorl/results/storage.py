"""Optuna storages: opening them, keeping their credentials out of files and messages, and the
bookkeeping that makes a killed sweep resumable."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autorl.errors import ConfigError
from autorl.results.record import ATTR, RETRY_OF, retry_attrs, was_interrupted
from autorl.urls import check_storage_url, redact, redact_text

if TYPE_CHECKING:
    from autorl.config import Sweep

HEARTBEAT_S = int(os.environ.get("AUTORL_HEARTBEAT_S", "10"))  # a shared storage's trials beat this often
GRACE_S = int(os.environ.get("AUTORL_GRACE_S", "60"))  # and count as dead after this long without a beat


def _repair_journal(path: str) -> None:
    """Cut a journal's unfinished last line (a write cut off by a power loss or a full disk): Optuna
    would read past it, but a later append would glue onto it and make the journal unreadable."""
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        f.truncate(f.read().rfind(b"\n") + 1)


def _requeue_stale(study: optuna.Study, trial: FrozenTrial) -> None:
    """A shared storage's trial whose process stopped beating: run its config again."""
    study.enqueue_trial(trial.params, user_attrs=retry_attrs(trial), skip_if_exists=False)


def make_storage(url: str, shared: bool = False) -> optuna.storages.BaseStorage:
    """An Optuna storage from a URL: any SQLAlchemy URL, or ``journal:PATH`` for a journal file.

    ``shared``: other processes (maybe on other machines) use it too; trials then send heartbeats and
    a trial whose process died is failed after a grace period and its config queued again. Errors from
    the database name the URL without its password.
    """
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = url.removeprefix("journal:")
        _repair_journal(path)
        return optuna.storages.JournalStorage(JournalFileBackend(path))
    check_storage_url(url)
    beat: dict[str, Any] = (
        {
            "heartbeat_interval": HEARTBEAT_S,
            "grace_period": GRACE_S,
            "heartbeat_stale_trial_callback": _requeue_stale,
        }
        if shared
        else {}
    )
    try:
        if not url.startswith("sqlite"):
            return _rdb_storage(url, **beat)
        from sqlalchemy import event

        # Several processes may write to one file: wait for locks rather than fail, and use SQLite's
        # write-ahead log with synchronous=NORMAL, which survives a killed process (not a power cut)
        # and makes a commit a write instead of an fsync: ~8 ms against ~1 ms a trial here.
        storage = _rdb_storage(url, engine_kwargs={"connect_args": {"timeout": 60}}, **beat)
        event.listen(storage.engine, "connect", _sqlite_pragmas)
        storage.engine.dispose()  # connections opened while creating the tables lack the pragmas
        return storage
    except Exception as exc:  # a database error: one line, without the password
        message = redact_text(f"{type(exc).__name__}: {exc}", url).splitlines()[0]
        raise ConfigError(f"cannot open the storage {redact(url)}: {message}", "storage") from None


def _rdb_storage(url: str, attempts: int = 5, **kwargs: Any) -> optuna.storages.RDBStorage:
    """``RDBStorage(url)``, retried when another process created the schema at the same moment.

    Optuna creates the tables with check-then-create, so two processes opening a fresh database
    together can both try, and one fails with "table ... already exists"; the retry finds them made.
    """
    from sqlalchemy import exc

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, **kwargs)
        except (exc.OperationalError, exc.ProgrammingError, exc.IntegrityError) as err:
            raced = "already exists" in str(err) or "UNIQUE constraint" in str(err)
            if not raced or attempt == attempts - 1:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def open_study(sweep: Sweep, sampler: Any = None, pruner: Any = None) -> optuna.Study:
    """Create or load the sweep's study in its storage."""
    storage = make_storage(sweep.storage_url, shared=sweep.shared_storage)
    return optuna.create_study(
        storage=storage,
        study_name=sweep.study_name,
        directions=list(sweep.directions),
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )


def recover(study: optuna.Study, stale_running: bool) -> int:
    """Mark trials cut off by a dead sweep as failed-interrupted and queue their configs again.

    ``stale_running``: every RUNNING trial belongs to a dead process (true for a private storage; a
    shared storage relies on heartbeats instead). Returns how many configs were queued again.
    """
    storage = study._storage
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(RETRY_OF) for t in trials}
    requeued = 0
    for t in trials:
        if t.state == TrialState.RUNNING and stale_running:
            storage.set_trial_user_attr(
                t._trial_id, ATTR, {**t.user_attrs.get(ATTR, {}), "interrupted": True}
            )
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            t = storage.get_trial(t._trial_id)
        if was_interrupted(t) and t.number not in retried:
            study.enqueue_trial(t.params, user_attrs=retry_attrs(t), skip_if_exists=False)
            requeued += 1
    return requeued
