"""Errors: bad input (:class:`ConfigError`, naming the file, the key and the rule broken), and the
taxonomy of why a trial or population member failed (:class:`FailureKind`)."""

from __future__ import annotations

import enum


class ConfigError(ValueError):
    """A configuration value breaks a rule.

    The message reads ``FILE: KEY: RULE`` so the user can find and fix it without a traceback.
    """

    def __init__(self, rule: str, key: str | None = None, file: str | None = None) -> None:
        self.rule = rule
        self.key = key
        self.file = file
        super().__init__(self._format())

    def _format(self) -> str:
        parts = [p for p in (self.file, self.key) if p]
        return ": ".join([*parts, self.rule])

    def at(self, key: str | None = None, file: str | None = None) -> ConfigError:
        """Return a copy located at ``key`` (prefixed to any inner key) in ``file``."""
        full_key = ".".join(k for k in (key, self.key) if k) or None
        return ConfigError(self.rule, full_key, file or self.file)


class TrialPruned(Exception):
    """Raised inside a trial when the method decides to stop it early."""


class FailureKind(enum.Enum):
    """Why a trial (or a population member) failed. It is recorded with the trial: trials.csv's
    ``failure`` column, ``autorl show`` and the comparison reports count them."""

    DIVERGED = "diverged"  # a metric came back NaN or infinite
    ERROR = "error"  # the target raised an exception
    OUT_OF_MEMORY = "out_of_memory"  # MemoryError: past trial_memory, or the machine's memory
    DIED = "died"  # its process ended under it (a signal, an exit code)
    TIMEOUT = "timeout"  # it ran past trial_timeout and its process was ended
    NO_PROGRESS = "no_progress"  # train(n) trained nothing
    INTERRUPTED = "interrupted"  # the sweep was stopped (Ctrl-C, SIGTERM, budget.time, kill): rerun


class TrialFailed(RuntimeError):
    """A trial or member failed for a reason autorl found (not an exception the target raised)."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class TrialDiverged(TrialFailed):
    """A trial produced a non-finite metric (NaN or infinity)."""

    def __init__(self, message: str) -> None:
        super().__init__(FailureKind.DIVERGED, message)


class NoProgress(TrialFailed):
    """``train(n)`` trained nothing: a target that cannot go on."""

    def __init__(self, message: str) -> None:
        super().__init__(FailureKind.NO_PROGRESS, message)


def describe(exc: BaseException) -> str:
    """``Type: message``: how a trial's error is recorded."""
    return f"{type(exc).__name__}: {exc}"


def failure_of(exc: BaseException) -> FailureKind:
    """The kind of failure an exception from a target means."""
    if isinstance(exc, TrialFailed):
        return exc.kind
    if isinstance(exc, MemoryError):
        return FailureKind.OUT_OF_MEMORY
    if isinstance(exc, FloatingPointError):  # numpy and torch checks of non-finite values
        return FailureKind.DIVERGED
    return FailureKind.ERROR
