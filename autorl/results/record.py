"""The trial record: what every executor writes for a trial, and every reader reads back.

It travels in the Optuna trial's user attribute :data:`ATTR` as plain JSON data, so optuna-dashboard
and other Optuna tools can still read it; :func:`record_of` turns it back into a :class:`TrialRecord`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autorl.errors import FailureKind

ATTR = "autorl"  # the user attribute holding a trial's record
RETRY_OF = "retry_of"  # user attribute of a trial that re-runs an interrupted trial's config
RACE_OF = "race_of"  # user attribute: the configuration (its first trial's number) a race block runs
RACE_BLOCK = "race_block"  # user attribute: the race block's number (1, 2, ...)


def retry_attrs(trial: FrozenTrial) -> dict[str, Any]:
    """The user attributes of a trial queued to run ``trial``'s config again: a race block stays that
    block of its race."""
    kept = {k: trial.user_attrs[k] for k in (RACE_OF, RACE_BLOCK) if k in trial.user_attrs}
    return {RETRY_OF: trial.number, **kept}


@dataclass
class TrialRecord:
    """One trial as autorl records it.

    Attributes:
        config: the configuration on the user's scale, plus each transformed parameter's searched value
            under its search name (``one_minus_gamma``).
        seeds: the training seeds (one per ``seeds_per_trial``).
        metrics: the final metrics; ``budget`` (units actually spent, all seeds) and ``wall_s`` always.
        per_seed: each seed's metrics, when there are several.
        error: ``Type: message`` of a failure; ``traceback`` its last frames.
        interrupted: the sweep itself was stopped (Ctrl-C, SIGTERM, kill, time budget) while it ran:
            not counted as a trial, its configuration is run again on resume.
        exit: how the trial's worker process ended when it died with it (``signal SIGSEGV``,
            ``exit code 3``, ``timeout after 90 s``).
        log: the trial's stdout and stderr, relative to the run directory.
        member: the population member this trial is (population methods).
        schedule: a population member's hyperparameter schedule (``[{"step": 0, ...}, ...]``).
        at_s: the sweep's wall clock (seconds, summed across resumes) when the trial ended: where it
            lies on an anytime curve against wall time.
        failure: why it failed, a :class:`~autorl.errors.FailureKind` value (None: it did not).
    """

    config: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    per_seed: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    traceback: str | None = None
    interrupted: bool = False
    exit: str | None = None
    log: str | None = None
    member: int | None = None
    schedule: list[dict[str, Any]] | None = None
    at_s: float | None = None
    failure: str | None = None

    @property
    def failure_kind(self) -> FailureKind | None:
        """Why the trial failed; for a record written before failures were typed, read off its error."""
        if self.failure is not None:
            return FailureKind(self.failure)
        if self.interrupted:
            return FailureKind.INTERRUPTED
        if not self.error:
            return None
        legacy = {
            "TrialDiverged": "diverged",
            "FloatingPointError": "diverged",
            "MemoryError": "out_of_memory",
        }
        kind = legacy.get(self.error.partition(":")[0], "error")
        if self.error.startswith("WorkerDied"):
            kind = "timeout" if "timeout after" in self.error else "died"
        return FailureKind(kind)

    def fail(self, kind: FailureKind, error: str) -> TrialRecord:
        """This record, failed with ``kind`` and the error ``Type: message``."""
        self.failure, self.error = kind.value, error
        self.interrupted = kind is FailureKind.INTERRUPTED
        return self

    @property
    def budget(self) -> float:
        """Budget units the trial spent (0 when unknown)."""
        return float(self.metrics.get("budget") or 0)

    def to_attr(self) -> dict[str, Any]:
        """The JSON form stored in the trial, without empty fields."""
        return {k: v for k, v in asdict(self).items() if not (v is None or v is False or v == [] or v == {})}

    @classmethod
    def from_attr(cls, data: dict[str, Any] | None) -> TrialRecord:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in names})


def record_of(trial: FrozenTrial) -> TrialRecord:
    """The record of ``trial`` (an empty one for a trial autorl did not write)."""
    return TrialRecord.from_attr(trial.user_attrs.get(ATTR))


def was_interrupted(trial: FrozenTrial) -> bool:
    """A FAIL that the sweep's stop caused (Ctrl-C, kill, time budget), not the target."""
    return trial.state == TrialState.FAIL and bool(trial.user_attrs.get(ATTR, {}).get("interrupted"))


def retried(trials: Iterable[FrozenTrial]) -> set[int]:
    """The numbers of the trials whose config was queued again to run in their place (interrupted, or
    failed by a shared storage's heartbeat): their retries stand for them."""
    return {int(n) for t in trials if (n := t.user_attrs.get(RETRY_OF)) is not None}


def counted(trials: list[FrozenTrial]) -> int:
    """Trials that use up the sweep's trial count: finished ones, failures of the target included.

    A trial the sweep's own stop interrupted, or one whose config was queued again, does not count.
    """
    again = retried(trials)
    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return sum(1 for t in trials if t.state in done and not was_interrupted(t) and t.number not in again)


def consumed(trials: list[FrozenTrial]) -> float:
    """Budget units the finished trials spent (a running trial counts once it ends)."""
    return sum(record_of(t).budget for t in trials if t.state.is_finished() and not was_interrupted(t))


def write_trial(
    study: Any,
    record: TrialRecord,
    state: TrialState,
    values: list[float] | None = None,
    *,
    trial: Any = None,
    params: tuple[dict[str, Any], dict[str, Any]] | None = None,
    curve: dict[int, float] | None = None,
    attrs: dict[str, Any] | None = None,
) -> None:
    """The one way a finished trial is written, with its record (the values only for COMPLETE).

    A running ``trial`` (asked from the study by the trial loop) is ended with ``state``; a trial that
    ran outside the study's ask and tell (a population member) is added whole, with ``params`` (its
    parameters and their distributions, :func:`~autorl.space.to_params`), its ``curve`` and user
    ``attrs`` (a population's race block: :data:`RACE_OF`, :data:`RACE_BLOCK`).
    """
    values = values if state == TrialState.COMPLETE else None
    if trial is not None:
        trial.set_user_attr(ATTR, record.to_attr())
        study.tell(trial, values, state=state)
        return
    chosen, distributions = params or ({}, {})
    study.add_trial(
        optuna.trial.create_trial(
            params=chosen,
            distributions=distributions,
            values=values,
            state=state,
            user_attrs={ATTR: record.to_attr(), **(attrs or {})},
            intermediate_values=curve or {},
        )
    )
