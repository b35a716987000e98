"""Write a one-page markdown report comparing methods, with tables, plots and CSVs.

The input is a tidy frame with one final score per (method, task, seed); see :func:`write_report`.
Plots are drawn on ``matplotlib.figure.Figure`` objects (Agg canvas), so no pyplot state or backend
setting leaks into the caller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from autorl.analysis import stats

RefRanges = Mapping[str, tuple[float, float]]

#: Aggregates in the ranking, with whether higher is better.
AGGREGATES: dict[str, tuple[stats.AggregateFn, bool]] = {
    "iqm": (stats.iqm, True),
    "mean": (stats.mean, True),
    "median": (stats.median, True),
    "optimality_gap": (stats.optimality_gap, False),
}
_LABELS = {"iqm": "IQM", "mean": "Mean", "median": "Median", "optimality_gap": "Optimality gap"}


def normalize_frame(results: pd.DataFrame, ref: RefRanges | None) -> tuple[pd.DataFrame, str]:
    """Add a ``normalized`` column to a tidy results frame.

    Args:
        results: Columns ``method``, ``task``, ``seed``, ``score``.
        ref: ``{task: (ref_min, ref_max)}`` for every task. When None, each task is scaled by the lowest
            and highest score any method reached on it, which only ranks methods against each other.

    Returns:
        The frame with the new column, and one sentence saying how scores were normalised.

    Raises:
        ValueError: If ``ref`` lacks a task or has ``ref_max <= ref_min`` for one.
    """
    tasks = sorted(results["task"].unique())
    if ref is not None:
        missing = [t for t in tasks if t not in ref]
        if missing:
            raise ValueError(f"ref must give (min, max) for every task, but lacks {missing}")
        lo = np.array([float(ref[t][0]) for t in tasks])
        hi = np.array([float(ref[t][1]) for t in tasks])
        note = "by the reference (min, max) per task: (score - min) / (max - min)"
    else:
        by_task = results.groupby("task")["score"]
        lo = by_task.min().reindex(tasks).to_numpy(dtype=float)
        hi = by_task.max().reindex(tasks).to_numpy(dtype=float)
        hi = np.where(hi > lo, hi, lo + 1.0)  # a task where every run tied maps to 0 rather than NaN
        note = (
            "by the lowest and highest score observed on each task (no reference given), "
            "so values only compare these methods with each other"
        )
    col = {t: i for i, t in enumerate(tasks)}
    idx = results["task"].map(col).to_numpy()
    # Reuse stats.normalize (and its checks) on the score column seen as one run over many "tasks".
    norm = stats.normalize(results["score"].to_numpy(dtype=float)[None, :], lo[idx], hi[idx])[0]
    return results.assign(normalized=norm), note


def aggregate_table(
    results: pd.DataFrame,
    ref: RefRanges | None,
    reps: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Bootstrap intervals of every aggregate in :data:`AGGREGATES` over normalised scores.

    Returns:
        Long frame with columns ``method``, ``metric``, ``point``, ``low``, ``high``, methods ordered
        best first by IQM (ties broken by mean).
    """
    normed, _ = normalize_frame(results, ref)
    scores = stats.scores_from_frame(normed, value="normalized")
    rows = []
    for metric, (fn, _) in AGGREGATES.items():
        for method, iv in stats.stratified_bootstrap_ci(scores, fn, reps, ci, seed).items():
            rows.append((method, metric, iv.point, iv.low, iv.high))
    table = pd.DataFrame(rows, columns=["method", "metric", "point", "low", "high"])
    order = _rank(table)
    table["method"] = pd.Categorical(table["method"], categories=order, ordered=True)
    table["metric"] = pd.Categorical(table["metric"], categories=list(AGGREGATES), ordered=True)
    table = table.sort_values(["method", "metric"]).reset_index(drop=True)
    return table.astype({"method": str, "metric": str})


def write_report(
    results: pd.DataFrame,
    curves: pd.DataFrame | None,
    out_dir: Path,
    ref: RefRanges | None,
    title: str,
    *,
    reps: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
    notes: Sequence[str] = (),
    unit: str = "budget",
) -> Path:
    """Write ``report.md``, its plots and CSVs into ``out_dir`` and return the path of ``report.md``.

    Files written: ``report.md``, ``results.csv`` (the input plus a ``normalized`` column),
    ``aggregates.csv`` (see :func:`aggregate_table`), ``aggregates.png``, ``profiles.png``, ``poi.png``
    (two or more methods) and ``anytime_<task>.png`` per task (when ``curves`` is given).

    Args:
        results: One final score per run: columns ``method``, ``task``, ``seed``, ``score``; with
            ``tuning_score`` (the tuner's own estimate of its incumbent, same scale) the report has an
            optimism-gap section. Extra columns are kept in ``results.csv``.
        curves: Incumbent traces, columns ``method``, ``task``, ``seed``, ``budget``, ``score`` (see
            :func:`autorl.analysis.stats.anytime_curve`) and optionally ``time`` (wall-clock seconds,
            a second panel), or None to skip the anytime section.
        out_dir: Created if missing; existing files of the same names are overwritten.
        ref: ``{task: (ref_min, ref_max)}`` for normalisation, or None (see :func:`normalize_frame`).
        title: First heading of the report.
        reps, ci, seed: Bootstrap settings for every interval in the report.
        notes: Markdown lines put under the summary (what each method was charged, compute spent).
        unit: What ``budget`` counts, for the anytime plots' axis (``env steps``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    normed, note = normalize_frame(results, ref)
    tasks = sorted(normed["task"].unique())
    raw = stats.scores_from_frame(normed, value="score", tasks=tasks)
    scores = stats.scores_from_frame(normed, value="normalized", tasks=tasks)

    agg = aggregate_table(results, ref, reps, ci, seed)
    order = list(dict.fromkeys(agg["method"]))
    scores = {m: scores[m] for m in order}
    normed.to_csv(out_dir / "results.csv", index=False)
    agg.to_csv(out_dir / "aggregates.csv", index=False)

    pct = f"{100 * ci:g}%"
    lines = [f"# {title}", ""]
    poi = stats.pairwise_probability_of_improvement(scores, reps, ci, seed) if len(order) > 1 else {}
    lines += _headline(agg, poi, order, pct)
    runs = {m: scores[m].shape[0] for m in order}
    lines += [
        "",
        f"{len(order)} methods, {len(tasks)} tasks, {_runs_text(runs)} per task. Scores are normalised "
        f"{note}. Intervals are {pct} stratified percentile bootstrap CIs ({reps} resamples over runs "
        f"within each task, seed {seed}).",
        *(["", *notes] if notes else []),
        "",
        "## Ranking",
        "",
        "Normalised score over all runs and tasks; methods sorted by IQM (interquartile mean). "
        "Optimality gap: how far below 1 the scores fall (lower is better).",
        "",
        *_ranking_table(agg, runs, pct),
        "",
        "![Aggregate scores](aggregates.png)",
    ]
    _plot_aggregates(agg, order, pct, out_dir / "aggregates.png")

    if poi:
        lines += [
            "",
            "## Probability of improvement",
            "",
            "P(row > column): the chance that a run of the row method beats a run of the column method "
            f"on the same task, averaged over tasks (ties count 1/2), with {pct} CI. "
            "Above 0.5 favours the row; a CI that excludes 0.5 is a clear difference.",
            "",
            *_poi_table(poi, order),
            "",
            "![Probability of improvement](poi.png)",
        ]
        _plot_poi(poi, order, pct, out_dir / "poi.png")

    lo = min(0.0, min(float(s.min()) for s in scores.values()))
    hi = max(1.0, max(float(s.max()) for s in scores.values()))
    profiles = stats.performance_profile(scores, np.linspace(lo, hi, 101), reps, ci, seed)
    _plot_profiles(profiles, order, pct, out_dir / "profiles.png")
    lines += [
        "",
        "## Score distributions",
        "",
        "Fraction of runs with normalised score above τ; a curve that lies higher is better everywhere.",
        "",
        "![Performance profiles](profiles.png)",
        "",
        "## Per task",
        "",
        "Raw score, mean ± standard deviation over runs; best mean per task in bold.",
        "",
        *_task_table(raw, tasks, order),
    ]

    if "tuning_score" in results and results["tuning_score"].notna().any():
        lines += ["", *_optimism_section(results, ref, order, reps, ci, seed, pct)]

    if curves is not None:
        anytime = stats.anytime_curve(curves, reps=reps, ci=ci, seed=seed)
        timed = curves.dropna(subset=["time"]) if "time" in curves else curves.iloc[0:0]
        by_time = (
            stats.anytime_curve(timed.assign(budget=timed["time"]), reps=reps, ci=ci, seed=seed)
            if len(timed)
            else None
        )
        lines += [
            "",
            "## Anytime performance",
            "",
            f"IQM over seeds of the best tuning score found so far, with {pct} CI, against {unit} consumed"
            + (" and against the sweep's wall-clock time." if by_time is not None else "."),
        ]
        used: set[str] = set()
        for task, tdf in anytime.groupby("task", sort=True):
            name = f"anytime_{_safe(str(task))}.png"
            if name in used:  # two task names that differ only in characters unsafe in a file name
                name = f"anytime_{_safe(str(task))}_{len(used)}.png"
            used.add(name)
            tt = by_time[by_time["task"] == task] if by_time is not None else None
            methods = [m for m in order if m in set(tdf["method"])]
            _plot_anytime(tdf, tt, str(task), methods, pct, unit, out_dir / name)
            lines += ["", f"![Anytime {task}]({name})"]

    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------------
# Tables


def _rank(table: pd.DataFrame) -> list[str]:
    wide = table.pivot(index="method", columns="metric", values="point")
    return list(wide.sort_values(["iqm", "mean"], ascending=False, kind="stable").index)


def _iv(row: pd.Series) -> str:
    return f"{row['point']:.3f} [{row['low']:.3f}, {row['high']:.3f}]"


def _headline(
    agg: pd.DataFrame, poi: dict[tuple[str, str], stats.Interval], order: list[str], pct: str
) -> list[str]:
    iqm = agg[agg["metric"] == "iqm"].set_index("method")
    best = order[0]
    text = f"**{best}** ranks first by IQM of normalised score: {_iv(iqm.loc[best])}."
    if len(order) > 1:
        second = order[1]
        p = poi[(best, second)]
        clear = iqm.loc[best, "low"] > iqm.loc[second, "high"]
        text += (
            f" Next is **{second}** ({_iv(iqm.loc[second])}); P({best} > {second}) = "
            f"{p.point:.2f} [{p.low:.2f}, {p.high:.2f}]. "
            + (
                "Their IQM intervals do not overlap."
                if clear
                else "Their IQM intervals overlap: the lead is not clear."
            )
        )
        tied = [m for m in order[1:] if iqm.loc[m, "high"] >= iqm.loc[best, "low"]]
        if len(order) > 2:
            text += (
                f" Methods whose IQM interval overlaps {best}'s: {', '.join(tied)}."
                if tied
                else f" No other method's IQM interval overlaps {best}'s."
            )
    return [text]


def _optimism_section(
    results: pd.DataFrame,
    ref: RefRanges | None,
    order: list[str],
    reps: int,
    ci: float,
    seed: int,
    pct: str,
) -> list[str]:
    """The optimism gap of each method: its tuning estimate of the incumbent minus the incumbent's mean
    on the test seeds, both normalised as the ranking is (> 0: the tuner promised more than it gave)."""
    rows = results.dropna(subset=["tuning_score"])
    if ref is not None:
        test, _ = normalize_frame(rows, ref)
        tuned, _ = normalize_frame(rows.assign(score=rows["tuning_score"]), ref)
        gap = tuned["normalized"] - test["normalized"]
    else:  # observed ranges: both scaled by the range of the test scores on each task
        lo = rows.groupby("task")["score"].transform("min")
        hi = rows.groupby("task")["score"].transform("max")
        gap = (rows["tuning_score"] - rows["score"]) / (hi - lo).where(hi > lo, 1.0)
    frame = rows.assign(gap=gap)
    methods = [m for m in order if m in set(frame["method"])]
    tasks = sorted(frame["task"].unique())
    gaps = stats.scores_from_frame(frame, value="gap", tasks=tasks)
    ivs = stats.stratified_bootstrap_ci({m: gaps[m] for m in methods}, stats.mean, reps, ci, seed)
    lines = [
        "## Honest incumbents: the optimism gap",
        "",
        "A tuner's own estimate of its incumbent (its tuning value) minus the same configuration's mean "
        "on the fresh test seeds, in normalised score: above 0, tuning promised more than the incumbent "
        "delivers (the best of many noisy trials is biased upwards); near 0, its estimate can be trusted.",
        "",
        f"| Method | Optimism gap, mean [{pct} CI] | Runs with gap > 0 | Largest gap |",
        "|---|---|---:|---:|",
    ]
    for m in methods:
        g = frame.loc[frame["method"] == m, "gap"]
        iv = ivs[m]
        lines.append(
            f"| {m} | {iv.point:+.3f} [{iv.low:+.3f}, {iv.high:+.3f}] | {int((g > 0).sum())}/{len(g)} "
            f"| {float(g.max()):+.3f} |"
        )
    return lines


def _runs_text(runs: dict[str, int]) -> str:
    counts = sorted(set(runs.values()))
    if len(counts) == 1:
        return f"{counts[0]} runs"
    return "runs " + ", ".join(f"{m}: {n}" for m, n in runs.items())


def _ranking_table(agg: pd.DataFrame, runs: dict[str, int], pct: str) -> list[str]:
    lines = [
        f"| Rank | Method | IQM [{pct} CI] | Mean [{pct} CI] | Optimality gap [{pct} CI] | Runs per task |",
        "|---:|---|---|---|---|---:|",
    ]
    by = agg.set_index(["method", "metric"])
    for rank, method in enumerate(runs, start=1):
        cells = [_iv(by.loc[(method, m)]) for m in ("iqm", "mean", "optimality_gap")]
        lines.append(f"| {rank} | {method} | " + " | ".join(cells) + f" | {runs[method]} |")
    return lines


def _poi_table(poi: dict[tuple[str, str], stats.Interval], order: list[str]) -> list[str]:
    lines = ["| P(row > column) | " + " | ".join(order) + " |", "|---|" + "---|" * len(order)]
    for a in order:
        cells = [
            "—" if a == b else f"{poi[(a, b)].point:.2f} [{poi[(a, b)].low:.2f}, {poi[(a, b)].high:.2f}]"
            for b in order
        ]
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return lines


def _task_table(raw: dict[str, np.ndarray], tasks: Sequence[str], order: list[str]) -> list[str]:
    lines = ["| Task | " + " | ".join(order) + " |", "|---|" + "---:|" * len(order)]
    for j, task in enumerate(tasks):
        means = {m: float(raw[m][:, j].mean()) for m in order}
        best = max(means.values())
        # One precision per row so values line up: about four significant digits on the largest.
        top = max(float(np.abs(raw[m][:, j]).max()) for m in order)
        dec = int(np.clip(3 - np.floor(np.log10(top)), 0, 6)) if top > 0 else 0
        cells = []
        for m in order:
            col = raw[m][:, j]
            # One run has no spread to report; ddof=1 would give NaN.
            cell = (
                f"{means[m]:.{dec}f} ± {col.std(ddof=1):.{dec}f}" if col.size > 1 else f"{means[m]:.{dec}f}"
            )
            cells.append(f"**{cell}**" if means[m] == best else cell)
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return lines


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


# ---------------------------------------------------------------------------------------------------
# Plots


def _colors(order: list[str]) -> dict[str, object]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"] if len(order) <= 10 else colormaps["tab20"]
    return {m: cmap(i % cmap.N) for i, m in enumerate(order)}


def _plot_aggregates(agg: pd.DataFrame, order: list[str], pct: str, path: Path) -> None:
    metrics = ["iqm", "mean", "optimality_gap"]
    fig = Figure(figsize=(3.2 * len(metrics), 0.45 * len(order) + 1.2), layout="constrained")
    axes = fig.subplots(1, len(metrics), sharey=True)
    colors = _colors(order)
    by = agg.set_index(["method", "metric"])
    ys = np.arange(len(order))[::-1]
    for ax, metric in zip(axes, metrics, strict=True):
        for y, m in zip(ys, order, strict=True):
            r = by.loc[(m, metric)]
            ax.plot([r["low"], r["high"]], [y, y], color=colors[m], lw=6, alpha=0.6, solid_capstyle="butt")
            ax.plot([r["point"]], [y], "|", color="black", ms=12)
        ax.set_title(_LABELS[metric])
        ax.set_xlabel("normalised score" + (" (lower is better)" if metric == "optimality_gap" else ""))
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(ys, order)
    fig.suptitle(f"Aggregates with {pct} CIs")
    fig.savefig(path, dpi=110)


def _plot_poi(poi: dict[tuple[str, str], stats.Interval], order: list[str], pct: str, path: Path) -> None:
    pairs = [(a, b) for i, a in enumerate(order) for b in order[i + 1 :]]
    fig = Figure(figsize=(6, 0.4 * len(pairs) + 1.2), layout="constrained")
    ax = fig.subplots()
    ys = np.arange(len(pairs))[::-1]
    for y, pair in zip(ys, pairs, strict=True):
        iv = poi[pair]
        ax.plot([iv.low, iv.high], [y, y], color="tab:blue", lw=6, alpha=0.6, solid_capstyle="butt")
        ax.plot([iv.point], [y], "|", color="black", ms=12)
    ax.axvline(0.5, color="grey", ls="--", lw=1)
    ax.set_yticks(ys, [f"P({a} > {b})" for a, b in pairs])
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel(f"probability of improvement ({pct} CI)")
    fig.savefig(path, dpi=110)


_STYLES = ["-", "--", "-.", ":"]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X"]


def _style(i: int) -> dict[str, Any]:
    """Line style and marker of the ``i``-th method, so that overlapping curves stay distinguishable."""
    return {"ls": _STYLES[i % len(_STYLES)], "marker": _MARKERS[i % len(_MARKERS)], "ms": 4, "markevery": 0.1}


def _band(ax: Any, x: Any, low: Any, high: Any, color: object, step: str | None = None) -> None:
    """A CI band that does not blend into its neighbours: light fill, its edges drawn thin."""
    ax.fill_between(x, low, high, step=step, color=color, alpha=0.12, lw=0)
    drawstyle = "steps-post" if step == "post" else "default"
    for edge in (low, high):
        ax.plot(x, edge, color=color, lw=0.6, alpha=0.7, drawstyle=drawstyle)


def _plot_profiles(profiles: dict[str, stats.Profile], order: list[str], pct: str, path: Path) -> None:
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    colors = _colors(order)
    for i, m in enumerate(order):
        p = profiles[m]
        ax.plot(p.taus, p.point, color=colors[m], label=m, lw=1.6, **_style(i))
        _band(ax, p.taus, p.low, p.high, colors[m])
    ax.set_xlabel("normalised score τ")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_title(f"Performance profiles ({pct} CI)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)


def _plot_anytime(
    tdf: pd.DataFrame,
    by_time: pd.DataFrame | None,
    task: str,
    order: list[str],
    pct: str,
    unit: str,
    path: Path,
) -> None:
    _anytime_figure(tdf, by_time, task, order, pct, unit).savefig(path, dpi=110)


def _anytime_figure(
    tdf: pd.DataFrame, by_time: pd.DataFrame | None, task: str, order: list[str], pct: str, unit: str
) -> Figure:
    """The anytime curve of each method against budget and, when given, against wall time."""
    panels = [(tdf, f"{unit} consumed")] + ([(by_time, "wall-clock time (s)")] if by_time is not None else [])
    fig = Figure(figsize=(6 * len(panels), 4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True))
    colors = _colors(order)
    for ax, (frame, xlabel) in zip(axes, panels, strict=True):
        for i, m in enumerate(order):
            c = frame[frame["method"] == m]
            if c.empty:
                continue
            ax.plot(
                c["budget"], c["iqm"], drawstyle="steps-post", color=colors[m], label=m, lw=1.6, **_style(i)
            )
            _band(ax, c["budget"], c["low"], c["high"], colors[m], step="post")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("incumbent tuning score (IQM over seeds)")
    axes[0].legend(fontsize="small")
    fig.suptitle(f"{task} ({pct} CI)")
    return fig
