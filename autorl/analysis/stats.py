"""Aggregate statistics for comparing methods over runs and tasks, after rliable (Agarwal et al., 2021).

One data shape throughout: a **score dict** ``{method: array}`` where each array has shape
``(runs, tasks)``, one final score per run (seed) per task, the tasks in the same order for every
method. Methods may have different numbers of runs. Higher scores are better.

Every bootstrap takes an explicit ``seed`` and draws from a fresh ``numpy.random.Generator`` per
method (or per pair), so a method's interval does not depend on which other methods are compared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as _sps

from autorl.targets import iqm as iqm  # the one interquartile mean: of a trial's seeds, of runs

ScoreDict = Mapping[str, np.ndarray]
AggregateFn = Callable[[np.ndarray], float]

TIDY_COLUMNS = ("method", "task", "seed")
CURVE_COLUMNS = ("method", "task", "seed", "budget", "score")


@dataclass(frozen=True)
class Interval:
    """A point estimate with the bounds of its confidence interval."""

    point: float
    low: float
    high: float


@dataclass(frozen=True)
class Profile:
    """A performance profile: for each threshold ``tau``, the fraction of runs scoring above it."""

    taus: np.ndarray
    point: np.ndarray
    low: np.ndarray
    high: np.ndarray


# ---------------------------------------------------------------------------------------------------
# Normalisation and point aggregates


def normalize(
    scores: np.ndarray, ref_min: float | Sequence[float], ref_max: float | Sequence[float]
) -> np.ndarray:
    """Map raw scores to ``(x - ref_min) / (ref_max - ref_min)`` per task.

    Args:
        scores: Array of shape ``(runs, tasks)``.
        ref_min: Reference score per task that maps to 0 (e.g. a random policy); a scalar applies to all.
        ref_max: Reference score per task that maps to 1 (e.g. a known good result or the task's
            maximum return).

    Raises:
        ValueError: If the references do not match the number of tasks or ``ref_max <= ref_min``.
    """
    x = _as_runs_by_tasks(scores, "scores")
    lo = _per_task(ref_min, x.shape[1])
    hi = _per_task(ref_max, x.shape[1])
    if lo.shape != (x.shape[1],) or hi.shape != (x.shape[1],):
        raise ValueError(
            f"one reference min and max per task must be given ({x.shape[1]} tasks), "
            f"but got ref_min shape {lo.shape} and ref_max shape {hi.shape}"
        )
    bad = np.flatnonzero(~(hi > lo))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"ref_max > ref_min must hold per task, but got (ref_min={lo[i]}, ref_max={hi[i]}) "
            f"for task index {i}"
        )
    return (x - lo) / (hi - lo)


def mean(x: np.ndarray) -> float:
    """Mean of all runs and tasks pooled."""
    return float(np.mean(x))


def median(x: np.ndarray) -> float:
    """Median of all runs and tasks pooled."""
    return float(np.median(x))


def optimality_gap(x: np.ndarray, gamma: float = 1.0) -> float:
    """How far scores fall short of ``gamma``: ``gamma - mean(min(x, gamma))``; lower is better.

    Scores above ``gamma`` count as ``gamma``, so exceeding the target on one task cannot make up for
    missing it on another.
    """
    return float(gamma - np.mean(np.minimum(np.asarray(x, dtype=float), gamma)))


# ---------------------------------------------------------------------------------------------------
# Stratified bootstrap


def stratified_bootstrap_ci(
    score_dict: ScoreDict,
    aggregate_fn: AggregateFn,
    reps: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval]:
    """Point estimate and percentile bootstrap confidence interval of an aggregate, per method.

    Each bootstrap replicate resamples the runs of every task with replacement, independently per task
    (stratified by task), so every replicate keeps all tasks with their original number of runs.

    Args:
        score_dict: ``{method: (runs, tasks) array}``.
        aggregate_fn: Maps a ``(runs, tasks)`` array to one number, e.g. :func:`iqm`.
        reps: Number of bootstrap replicates.
        ci: Coverage of the interval, e.g. 0.95 for the 2.5th to 97.5th percentiles.
        seed: Seeds one fresh generator per method.

    Returns:
        ``{method: Interval}`` with ``point = aggregate_fn(scores)``.
    """
    _check_bootstrap_args(reps, ci)
    out = {}
    for name, scores in score_dict.items():
        x = _as_runs_by_tasks(scores, f"scores of method {name!r}")
        rng = np.random.default_rng(seed)
        boot = np.array([aggregate_fn(sample) for sample in _resamples(x, reps, rng)], dtype=float)
        low, high = _percentiles(boot, ci)
        out[name] = Interval(float(aggregate_fn(x)), float(low), float(high))
    return out


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """``P(X > Y)`` for a random run of X and a random run of Y on the same task, averaged over tasks.

    Per task this is the Mann-Whitney U statistic of X over Y divided by ``n_x * n_y``: every pair of
    runs with ``x > y`` counts 1 and every tie counts 1/2.

    Args:
        x: Scores of method X, shape ``(runs_x, tasks)``.
        y: Scores of method Y, shape ``(runs_y, tasks)``; same tasks in the same order.
    """
    x = _as_runs_by_tasks(x, "x")
    y = _as_runs_by_tasks(y, "y")
    _check_same_tasks(x, y)
    return _poi(x, y)


def probability_of_improvement_ci(
    x: np.ndarray, y: np.ndarray, reps: int = 2000, ci: float = 0.95, seed: int = 0
) -> Interval:
    """:func:`probability_of_improvement` with a stratified percentile bootstrap interval.

    Runs of X and of Y are resampled independently within each task.
    """
    _check_bootstrap_args(reps, ci)
    x = _as_runs_by_tasks(x, "x")
    y = _as_runs_by_tasks(y, "y")
    _check_same_tasks(x, y)
    rng = np.random.default_rng(seed)
    boot = np.array(
        [_poi(bx, by) for bx, by in zip(_resamples(x, reps, rng), _resamples(y, reps, rng), strict=True)]
    )
    low, high = _percentiles(boot, ci)
    return Interval(_poi(x, y), float(low), float(high))


def pairwise_probability_of_improvement(
    score_dict: ScoreDict, reps: int = 2000, ci: float = 0.95, seed: int = 0
) -> dict[tuple[str, str], Interval]:
    """``{(X, Y): Interval of P(X > Y)}`` for every ordered pair of distinct methods."""
    names = list(score_dict)
    return {
        (a, b): probability_of_improvement_ci(score_dict[a], score_dict[b], reps, ci, seed)
        for a in names
        for b in names
        if a != b
    }


def performance_profile(
    score_dict: ScoreDict,
    taus: Sequence[float] | np.ndarray,
    reps: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
) -> dict[str, Profile]:
    """Score distribution per method: the fraction of runs with score ``> tau``, for each ``tau``.

    The fraction is taken per task and then averaged over tasks, so each task weighs the same; with
    equal runs per task this is the fraction of all runs. Intervals come from the stratified bootstrap.

    Args:
        score_dict: ``{method: (runs, tasks) array}``, normalised so thresholds mean the same on every task.
        taus: Thresholds, 1-D.
    """
    _check_bootstrap_args(reps, ci)
    t = np.asarray(taus, dtype=float)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"taus must be a non-empty 1-D sequence, but got shape {t.shape}")
    out = {}
    for name, scores in score_dict.items():
        x = _as_runs_by_tasks(scores, f"scores of method {name!r}")
        rng = np.random.default_rng(seed)
        boot = np.stack([_fraction_above(sample, t) for sample in _resamples(x, reps, rng)])
        low, high = _percentiles(boot, ci)
        out[name] = Profile(t, _fraction_above(x, t), low, high)
    return out


# ---------------------------------------------------------------------------------------------------
# Tidy data


def scores_from_frame(
    df: pd.DataFrame, value: str = "score", tasks: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Turn a tidy frame with one row per (method, task, seed) into a score dict.

    Within a task the runs are ordered by seed; runs of different tasks are not paired (the bootstrap
    resamples each task on its own), so tasks may use different seeds.

    Args:
        df: Columns ``method``, ``task``, ``seed`` and ``value``.
        value: The column holding the score.
        tasks: Task order of the columns; default the sorted task names.

    Returns:
        ``{method: (runs, tasks) array}`` with methods in order of first appearance.

    Raises:
        ValueError: On missing columns, a duplicated (method, task, seed), non-finite scores, a method
            missing a task, or a method with a different number of runs on different tasks.
    """
    _check_columns(df, (*TIDY_COLUMNS, value))
    dup = df.duplicated(list(TIDY_COLUMNS))
    if dup.any():
        row = df.loc[dup, list(TIDY_COLUMNS)].iloc[0].to_dict()
        raise ValueError(f"each (method, task, seed) must appear once, but got a duplicate {row}")
    if not np.all(np.isfinite(df[value].to_numpy(dtype=float))):
        raise ValueError(f"scores must be finite, but column {value!r} holds NaN or infinity")
    order = list(tasks) if tasks is not None else sorted(df["task"].unique())
    out = {}
    for name, group in df.groupby("method", sort=False):
        cols = []
        for task in order:
            vals = group.loc[group["task"] == task].sort_values("seed")[value].to_numpy(dtype=float)
            if vals.size == 0:
                raise ValueError(
                    f"every method must have runs on every task, but {name!r} has none on {task!r}"
                )
            cols.append(vals)
        sizes = {len(c) for c in cols}
        if len(sizes) != 1:
            counts = dict(zip(order, (len(c) for c in cols), strict=True))
            raise ValueError(
                f"a method must have the same number of runs on every task, but {name!r} has {counts}"
            )
        out[str(name)] = np.column_stack(cols)
    return out


def anytime_curve(
    df: pd.DataFrame,
    budgets: Sequence[float] | None = None,
    n_points: int = 50,
    reps: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
    maximize: bool = True,
) -> pd.DataFrame:
    """IQM over seeds of the incumbent score at a common budget grid, per method and task.

    Each run's incumbent is a step function: at budget ``b`` it is the best score reported at a budget
    ``<= b`` (forward fill of the running best). Before a run's first report it is undefined, and so
    is the aggregate at any grid point where some run of that method and task is undefined.

    Args:
        df: Columns ``method``, ``task``, ``seed``, ``budget`` (consumed so far), ``score``.
        budgets: Grid used for every task; default ``n_points`` evenly spaced from the first budget
            reported on the task to the largest (a method is undefined until all its runs report).
        n_points: Grid size when ``budgets`` is not given.
        reps, ci, seed: Bootstrap over seeds at each grid point, as in :func:`stratified_bootstrap_ci`.
        maximize: If False the incumbent is the running minimum (e.g. for a loss).

    Returns:
        Columns ``method``, ``task``, ``budget``, ``iqm``, ``low``, ``high``, ``runs``.
    """
    _check_columns(df, CURVE_COLUMNS)
    _check_bootstrap_args(reps, ci)
    if budgets is None and n_points < 1:
        raise ValueError(f"n_points >= 1 must hold, but got {n_points}")
    rows = []
    for task, tdf in df.groupby("task", sort=True):
        grid = np.asarray(budgets, dtype=float) if budgets is not None else _default_grid(tdf, n_points)
        for method, mdf in tdf.groupby("method", sort=False):
            steps = np.stack(
                [_incumbent_at(sdf, grid, maximize) for _, sdf in mdf.groupby("seed", sort=True)]
            )
            point, low, high = _iqm_over_runs(steps, reps, ci, np.random.default_rng(seed))
            for j, b in enumerate(grid):
                rows.append((method, task, float(b), point[j], low[j], high[j], steps.shape[0]))
    return pd.DataFrame(rows, columns=["method", "task", "budget", "iqm", "low", "high", "runs"])


# ---------------------------------------------------------------------------------------------------
# Helpers


def _as_runs_by_tasks(a: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(a, dtype=float)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{what} must have shape (runs, tasks) with at least one of each, but got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} must be finite, but got NaN or infinity")
    return x


def _per_task(ref: float | Sequence[float], tasks: int) -> np.ndarray:
    r = np.asarray(ref, dtype=float)
    return np.full(tasks, float(r)) if r.ndim == 0 else r


def _check_same_tasks(x: np.ndarray, y: np.ndarray) -> None:
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must cover the same tasks, but got {x.shape[1]} and {y.shape[1]} tasks")


def _check_bootstrap_args(reps: int, ci: float) -> None:
    if reps < 1:
        raise ValueError(f"reps >= 1 must hold, but got {reps}")
    if not 0.0 < ci < 1.0:
        raise ValueError(f"0 < ci < 1 must hold, but got {ci}")


def _check_columns(df: pd.DataFrame, needed: Iterable[str]) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"the frame must have columns {list(needed)}, but lacks {missing}")


def _resamples(x: np.ndarray, reps: int, rng: np.random.Generator) -> Iterable[np.ndarray]:
    runs, tasks = x.shape
    cols = np.arange(tasks)
    for _ in range(reps):
        yield x[rng.integers(0, runs, size=(runs, tasks)), cols]


def _percentiles(boot: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = (1.0 - ci) / 2.0
    return np.quantile(boot, alpha, axis=0), np.quantile(boot, 1.0 - alpha, axis=0)


def _poi(x: np.ndarray, y: np.ndarray) -> float:
    # Pairwise comparison is the U statistic itself; runs are few, so the (n_x, n_y, tasks) array is small.
    diff = x[:, None, :] - y[None, :, :]
    per_task = (diff > 0).mean(axis=(0, 1)) + 0.5 * (diff == 0).mean(axis=(0, 1))
    return float(per_task.mean())


def _fraction_above(x: np.ndarray, taus: np.ndarray) -> np.ndarray:
    return (x[:, :, None] > taus[None, None, :]).mean(axis=0).mean(axis=0)


def _default_grid(tdf: pd.DataFrame, n_points: int) -> np.ndarray:
    """From the task's first report to its last: a method whose runs report late (a batch that ends
    together, a baseline trained once) is undefined until they do, and hides no other method's start."""
    return np.linspace(float(tdf["budget"].min()), float(tdf["budget"].max()), n_points)


def _incumbent_at(sdf: pd.DataFrame, grid: np.ndarray, maximize: bool) -> np.ndarray:
    sdf = sdf.sort_values("budget", kind="stable")
    b = sdf["budget"].to_numpy(dtype=float)
    s = sdf["score"].to_numpy(dtype=float)
    # fmax/fmin skip a NaN report (a failed evaluation) instead of letting it wipe out the incumbent.
    best = np.fmax.accumulate(s) if maximize else np.fmin.accumulate(s)
    idx = np.searchsorted(b, grid, side="right") - 1  # last report at a budget <= grid point
    out = np.full(grid.shape, np.nan)
    seen = idx >= 0
    out[seen] = best[idx[seen]]
    return out


def _iqm_over_runs(
    steps: np.ndarray, reps: int, ci: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IQM over axis 0 of a (runs, grid) array, with a bootstrap over runs; NaN where any run is NaN."""
    runs = steps.shape[0]
    defined = ~np.isnan(steps).any(axis=0)
    point = np.full(steps.shape[1], np.nan)
    low, high = point.copy(), point.copy()
    if defined.any():
        y = steps[:, defined]
        point[defined] = _sps.trim_mean(y, 0.25, axis=0)
        boot = _sps.trim_mean(y[rng.integers(0, runs, size=(reps, runs))], 0.25, axis=1)
        low[defined], high[defined] = _percentiles(boot, ci)
    return point, low, high
