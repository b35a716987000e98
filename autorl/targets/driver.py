"""Run one trial of any target form and turn what it returns into metrics."""

from __future__ import annotations

import enum
import inspect
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from autorl.errors import ConfigError, TrialDiverged
from autorl.targets.base import TrialContext


class TargetKind(enum.Enum):
    FUNCTION = "function"
    FUNCTION_WITH_CONTEXT = "function_with_context"
    TRAINABLE = "trainable"


class Select(enum.Enum):
    """Which evaluation of a trainable becomes the trial's value."""

    LAST = "last"
    BEST = "best"
    MEAN_LAST = "mean_last"


class Aggregate(enum.Enum):
    """How the values of one configuration on several seeds are combined."""

    MEAN = "mean"
    MEDIAN = "median"
    IQM = "iqm"

    def __call__(self, values: Sequence[float]) -> float:
        arr = np.asarray(values, dtype=float)
        if self is Aggregate.MEAN:
            return float(arr.mean())
        if self is Aggregate.MEDIAN:
            return float(np.median(arr))
        cut = int(0.25 * len(arr))  # the interquartile mean: 25 % trimmed from each end
        return float(np.sort(arr)[cut : len(arr) - cut].mean())


@dataclass
class TrialResult:
    """Outcome of one trial: final metrics, the reported curve and the budget consumed.

    ``per_seed`` holds the metrics of each seed when a configuration was run on several.
    """

    metrics: dict[str, float]
    curve: list[tuple[int, float]] = field(default_factory=list)
    budget_used: int = 0
    per_seed: list[dict[str, float]] = field(default_factory=list)


def target_kind(target: Any) -> TargetKind:
    """Classify ``target`` as a plain function, a function taking a context, or a Trainable class."""
    if inspect.isclass(target):
        missing = [m for m in ("train", "save", "load") if not callable(getattr(target, m, None))]
        if missing:
            raise ConfigError(f"target class {target.__name__} lacks {', '.join(missing)}(); see Trainable")
        return TargetKind.TRAINABLE
    if not callable(target):
        raise ConfigError(f"target {target!r} is neither a function nor a Trainable class")
    params = [
        p
        for p in inspect.signature(target).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if len(params) == 1:
        return TargetKind.FUNCTION
    if len(params) == 2:
        return TargetKind.FUNCTION_WITH_CONTEXT
    raise ConfigError(
        f"target function {getattr(target, '__name__', target)} must take (config) or (config, ctx)"
    )


def _as_metrics(out: Any, metric: str) -> dict[str, float]:
    if isinstance(out, Mapping):
        metrics = {str(k): float(v) for k, v in out.items()}
    else:
        metrics = {metric: float(out)}
    if metric not in metrics:
        raise KeyError(f"target returned metrics {sorted(metrics)} without the optimised metric {metric!r}")
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    if metric in bad:
        raise TrialDiverged(f"{metric} is {bad[metric]} (diverged)")
    return metrics


def next_report(done: int, interval: int, budget: int) -> int:
    """Where the next report falls for a run that has trained ``done`` units: the next multiple of
    ``interval`` (or ``budget`` at the end). Every run asks to train up to it, however far its last
    piece overshot the previous one, so runs of different granularity report at the same points and
    overshoot by less than one piece (:attr:`~autorl.targets.base.TargetInfo.granularity`), never more."""
    return min((done // interval + 1) * interval, budget)


def select_value(values: list[float], select: Select, k: int, maximize: bool) -> float:
    """The trial's value from its evaluations: the last, the best, or the mean of the last ``k``."""
    if select is Select.LAST:
        return values[-1]
    if select is Select.BEST:
        return max(values) if maximize else min(values)
    return float(np.mean(values[-k:]))


def run_target(
    target: Any,
    config: dict[str, Any],
    ctx: TrialContext,
    *,
    select: Select = Select.LAST,
    k: int = 3,
    maximize: bool = True,
    seeds: Sequence[int] | None = None,
    aggregate: Aggregate = Aggregate.MEAN,
) -> TrialResult:
    """Run ``target`` on ``config`` within ``ctx.budget`` and return its metrics.

    With several ``seeds`` the configuration runs once per seed; Trainables are trained in lock-step
    so the aggregate can be reported (and pruned) at every interval, functions run one after another
    and only their final values are aggregated. ``wall_s`` and ``budget`` are always added to the metrics.
    """
    seeds = list(seeds) if seeds else [ctx.seed]
    kind = target_kind(target)
    start = time.perf_counter()
    if kind is TargetKind.TRAINABLE:
        result = _run_trainables(target, config, ctx, seeds, select, k, maximize, aggregate)
    else:
        result = _run_functions(target, kind, config, ctx, seeds, aggregate)
    result.metrics["wall_s"] = time.perf_counter() - start
    result.metrics["budget"] = float(result.budget_used)  # total over all seeds
    return result


def _combine(per_seed: list[dict[str, float]], aggregate: Aggregate) -> dict[str, float]:
    if len(per_seed) == 1:
        return dict(per_seed[0])
    keys = set.intersection(*(set(m) for m in per_seed))
    return {key: aggregate([m[key] for m in per_seed]) for key in sorted(keys)}


def _run_functions(
    target: Callable[..., Any],
    kind: TargetKind,
    config: dict[str, Any],
    ctx: TrialContext,
    seeds: list[int],
    aggregate: Aggregate,
) -> TrialResult:
    per_seed: list[dict[str, float]] = []
    for seed in seeds:
        # With one seed the trial's own context reports (and can be pruned); with several, each seed
        # records its own curve and only the aggregate counts.
        sub = ctx if len(seeds) == 1 else replace(ctx, seed=seed, should_prune=None, curve=[])
        sub.seed = seed
        out = target(config) if kind is TargetKind.FUNCTION else target(config, sub)
        per_seed.append(_as_metrics(out, ctx.metric))
    metrics = _combine(per_seed, aggregate)
    used = sum(int(m.get("budget", ctx.budget)) for m in per_seed)
    return TrialResult(metrics, list(ctx.curve), used, per_seed if len(seeds) > 1 else [])


def _run_trainables(
    cls: type,
    config: dict[str, Any],
    ctx: TrialContext,
    seeds: list[int],
    select: Select,
    k: int,
    maximize: bool,
    aggregate: Aggregate,
) -> TrialResult:
    members = [cls(config, replace(ctx, seed=s, curve=[])) for s in seeds]
    used, stalls = 0, 0
    history: list[float] = []
    last: list[dict[str, float]] = []
    while used < ctx.budget:
        step = next_report(used, ctx.interval, ctx.budget) - used
        last = [_as_metrics(m.train(step), ctx.metric) for m in members]
        # A target may overshoot a request (SB3 collects whole rollouts); it says so in "budget". One
        # that made no progress reports nothing new (a step is reported once).
        now = max(int(m.get("budget", used + step)) for m in last)
        if now <= used:
            stalls += 1
            if stalls > 3:
                raise RuntimeError(f"the target made no progress in 4 calls of train({step}) at {used}")
            continue
        used, stalls = now, 0
        value = aggregate([m[ctx.metric] for m in last])
        history.append(value)
        ctx.report(value, used)
    metrics = _combine(last, aggregate)
    metrics[ctx.metric] = select_value(history, select, k, maximize)
    if len(seeds) > 1:
        for s_metrics in last:
            s_metrics.setdefault("budget", float(used))
    total = sum(int(m.get("budget", used)) for m in last)
    return TrialResult(metrics, list(ctx.curve), total, last if len(seeds) > 1 else [])
