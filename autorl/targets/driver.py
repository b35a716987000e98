"""Run one trial of any target form and turn what it returns into metrics."""

from __future__ import annotations

import enum
import inspect
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from autorl.errors import ConfigError, TrialDiverged
from autorl.targets.base import TrialContext
from autorl.targets.runner import (
    Aggregate,
    Select,
    Step,
    Trainables,
    advance,
    aggregate_seeds,
    next_report,
    select_value,
)


class TargetKind(enum.Enum):
    FUNCTION = "function"
    FUNCTION_WITH_CONTEXT = "function_with_context"
    TRAINABLE = "trainable"


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
        result = _run_functions(target, kind, config, ctx, seeds, aggregate, maximize)
    result.metrics["wall_s"] = time.perf_counter() - start
    result.metrics["budget"] = float(result.budget_used)  # total over all seeds
    return result


def _run_functions(
    target: Callable[..., Any],
    kind: TargetKind,
    config: dict[str, Any],
    ctx: TrialContext,
    seeds: list[int],
    aggregate: Aggregate,
    maximize: bool,
) -> TrialResult:
    per_seed: list[dict[str, float]] = []
    for seed in seeds:
        # With one seed the trial's own context reports (and can be pruned); with several, each seed
        # records its own curve and only the aggregate counts.
        sub = ctx if len(seeds) == 1 else replace(ctx, seed=seed, should_prune=None, curve=[])
        sub.seed = seed
        out = target(config) if kind is TargetKind.FUNCTION else target(config, sub)
        per_seed.append(_as_metrics(out, ctx.metric))
    metrics = aggregate_seeds(per_seed, aggregate, ctx.metric, maximize)
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
    """One agent per seed, trained in lock-step by the runner: each interval's aggregate is reported (and
    may be pruned); a failure the runner finds is raised as :class:`~autorl.errors.TrialFailed`."""
    agents = [cls(config, replace(ctx, seed=s, curve=[])) for s in seeds]
    return train_agents(agents, ctx, select, k, maximize, aggregate)


def train_agents(
    agents: Sequence[Any],
    ctx: TrialContext,
    select: Select,
    k: int,
    maximize: bool,
    aggregate: Aggregate,
    used: int = 0,
) -> TrialResult:
    """Train one configuration's ``agents`` (one per seed) from ``used`` budget units to ``ctx.budget``,
    reporting every interval through ``ctx.report``; ``ctx.curve`` holds what came before (a restored
    trial's), so the value is selected over the whole curve."""
    live = Trainables(dict(enumerate(agents)))
    trial = {0: list(range(len(agents)))}
    history = [v for _, v in ctx.curve]
    step = Step({})
    while used < ctx.budget:
        units = next_report(used, ctx.interval, ctx.budget) - used
        step = advance(live, trial, {0: units}, {0: used}, ctx.metric, aggregate, maximize)[0]
        if step.failure is not None:
            raise step.failure
        used = step.steps
        history.append(step.metrics[ctx.metric])
        ctx.report(history[-1], used, step.metrics)
    metrics = dict(step.metrics)
    metrics[ctx.metric] = select_value(history, select, k, maximize)
    n = len(agents)
    return TrialResult(metrics, list(ctx.curve), used * n, step.per_seed if n > 1 else [])
