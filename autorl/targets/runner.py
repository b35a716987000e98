"""The one interval runner: every way of training a configuration goes through :func:`advance`.

A *configuration* (a trial, a member of a batch, a population member) is trained on one agent per seed.
:func:`advance` trains any set of configurations by an interval each, on live agents that are either
separate Trainables (:class:`Trainables`) or members of one computation (:class:`BatchAgents`, the
engine), aggregates each configuration's seeds (:func:`aggregate_seeds`, the one aggregation) and
classifies what failed (:class:`~autorl.errors.FailureKind`). The driver of a single trial, the batch of
trials and the population loop all call it; none of them trains, aggregates or classifies on its own.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np

from autorl.errors import NoProgress, TrialDiverged, TrialFailed

K = TypeVar("K", bound=Hashable)


def iqm(values: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of ``values`` (``int(0.25 * n)`` cut from each end,
    as ``scipy.stats.trim_mean(x, 0.25)`` and rliable do)."""
    v = np.sort(np.asarray(values, dtype=float), axis=None)
    cut = int(0.25 * v.size)
    return float(v[cut : v.size - cut].mean())


class Aggregate(enum.Enum):
    """How the values of one configuration on several seeds are combined.

    ``lcb`` and ``q25`` are pessimistic, so they need the objective's direction: ``lcb`` is the mean one
    standard error towards the worse side (mean - s / sqrt(n) when maximising), ``q25`` the quantile a
    quarter of the seeds do worse than (the 25th percentile when maximising, the 75th when minimising).
    A configuration judged by them is rewarded for holding on every seed, not for a lucky one.
    """

    MEAN = "mean"
    MEDIAN = "median"
    IQM = "iqm"
    LCB = "lcb"
    Q25 = "q25"

    @property
    def pessimistic(self) -> bool:
        """It leans towards the worse side of the objective (other metrics get the mean)."""
        return self in (Aggregate.LCB, Aggregate.Q25)

    def __call__(self, values: Sequence[float], maximize: bool = True) -> float:
        arr = np.asarray(values, dtype=float)
        if self is Aggregate.MEAN:
            return float(arr.mean())
        if self is Aggregate.MEDIAN:
            return float(np.median(arr))
        if self is Aggregate.LCB:
            sem = float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else 0.0
            return float(arr.mean()) - sem if maximize else float(arr.mean()) + sem
        if self is Aggregate.Q25:
            return float(np.quantile(arr, 0.25 if maximize else 0.75))
        return iqm(arr)


class Select(enum.Enum):
    """Which evaluation of a trainable becomes the trial's value."""

    LAST = "last"
    BEST = "best"
    MEAN_LAST = "mean_last"


def select_value(values: list[float], select: Select, k: int, maximize: bool) -> float:
    """The trial's value from its evaluations: the last, the best, or the mean of the last ``k``."""
    if select is Select.LAST:
        return values[-1]
    if select is Select.BEST:
        return max(values) if maximize else min(values)
    return float(np.mean(values[-k:]))


def next_report(done: int, interval: int, budget: int) -> int:
    """Where the next report falls for a run that has trained ``done`` units: the next multiple of
    ``interval`` (or ``budget`` at the end). Every run asks to train up to it, however far its last
    piece overshot the previous one, so runs of different granularity report at the same points and
    overshoot by less than one piece (:attr:`~autorl.targets.base.TargetInfo.granularity`), never more."""
    return min((done // interval + 1) * interval, budget)


def aggregate_seeds(
    per_seed: Sequence[Mapping[str, float]],
    aggregate: Aggregate,
    objective: str | None = None,
    maximize: bool = True,
) -> dict[str, float]:
    """One configuration's metrics from its seeds' (those every seed returned, ``budget`` excepted: the
    runner counts steps itself). A pessimistic aggregate leans against the ``objective`` (``maximize``
    says which side is worse); the other metrics, whose direction is unknown, get the mean."""
    if len(per_seed) == 1:
        return {k: v for k, v in per_seed[0].items() if k != "budget"}
    keys = set.intersection(*(set(m) for m in per_seed)) - {"budget"}
    out = {}
    for key in sorted(keys):
        values = [m[key] for m in per_seed]
        if key == objective or not aggregate.pessimistic:
            out[key] = aggregate(values, maximize)
        else:
            out[key] = Aggregate.MEAN(values)
    return out


class Agents(Protocol):
    """Live agents, by number, that train on request."""

    def train(
        self, units: Mapping[int, int], evaluate: Collection[int] | None = None
    ) -> dict[int, Mapping[str, float]]:
        """Train agent ``a`` ``units[a]`` more budget units (at least; whole pieces); its metrics after,
        with ``budget``: the units it has trained in all. Agents not in ``evaluate`` (None: all) may
        leave out what only an evaluation gives, the optimised metric included."""
        ...


@dataclass
class Trainables:
    """Separate Trainable instances (one per seed of a trial, or of a population member); each
    evaluates whenever its ``train`` does."""

    agents: dict[int, Any]

    def train(
        self, units: Mapping[int, int], evaluate: Collection[int] | None = None
    ) -> dict[int, Mapping[str, float]]:
        return {a: self.agents[a].train(u) for a, u in units.items()}


@dataclass
class BatchAgents:
    """The members of one computation (a target's ``batch``, the engine): those asked for the same units
    train in one call, and only those in ``evaluate`` are evaluated after it."""

    batch: Any

    def train(
        self, units: Mapping[int, int], evaluate: Collection[int] | None = None
    ) -> dict[int, Mapping[str, float]]:
        by_units: dict[int, list[int]] = {}
        for a, u in units.items():
            by_units.setdefault(u, []).append(a)
        out: dict[int, Mapping[str, float]] = {}
        for u, members in by_units.items():  # ``evaluate`` only where given (a population evaluates all)
            if evaluate is None:
                out.update(self.batch.train(u, members))
            else:
                out.update(self.batch.train(u, members, evaluate=evaluate))
        return out


@dataclass
class Step:
    """One configuration after an interval.

    Attributes:
        metrics: its seeds' metrics, aggregated (:func:`aggregate_seeds`).
        per_seed: each seed's metrics, ``budget`` included.
        steps: the budget units each seed has trained in all.
        failure: why it cannot go on (diverged, no progress), or None.
    """

    metrics: dict[str, float]
    per_seed: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    failure: TrialFailed | None = None


def advance(
    agents: Agents,
    configs: Mapping[K, Sequence[int]],
    units: Mapping[K, int],
    done: Mapping[K, int],
    metric: str,
    aggregate: Aggregate = Aggregate.MEAN,
    maximize: bool = True,
    evaluate: Collection[K] | None = None,
) -> dict[K, Step]:
    """Train each configuration's agents (``configs[k]``: one per seed) ``units[k]`` more, from ``done[k]``;
    evaluate those in ``evaluate`` (None: all) after.

    A configuration fails as DIVERGED when a seed's ``metric`` is not finite, and as NO_PROGRESS when
    its agents trained nothing. A target that does not return ``metric`` where it evaluated is a bug in
    the target: KeyError, raised. Where it did not, the step's metrics may lack it (a step without a
    value: nothing to report or prune on).
    """
    judged = None if evaluate is None else [a for k in evaluate for a in configs[k]]
    rows = agents.train({a: units[k] for k, ids in configs.items() for a in ids}, judged)
    out: dict[K, Step] = {}
    for k, ids in configs.items():
        per_seed = [{str(n): float(v) for n, v in rows[a].items()} for a in ids]
        missing = [m for m in per_seed if metric not in m]
        if missing and (evaluate is None or k in evaluate):
            raise KeyError(
                f"target returned metrics {sorted(missing[0])} without the optimised metric {metric!r}"
            )
        steps = max(int(m.get("budget", done[k] + units[k])) for m in per_seed)
        for m in per_seed:  # a target that does not count its steps trained what it was asked
            m.setdefault("budget", float(steps))
        step = Step(aggregate_seeds(per_seed, aggregate, metric, maximize), per_seed, steps)
        bad = [m[metric] for m in per_seed if not math.isfinite(m.get(metric, 0.0))]
        if bad:
            step.failure = TrialDiverged(f"{metric} is {bad[0]} (diverged)")
        elif steps <= done[k]:
            step.failure = NoProgress(
                f"the target made no progress: train({units[k]}) left it at {done[k]} units"
            )
        out[k] = step
    return out
