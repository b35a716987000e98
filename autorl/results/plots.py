"""PNG plots of a sweep: optimisation history, parameter importances, learning curves."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import pandas as pd

from autorl.config import Sweep
from autorl.plotting import pyplot, save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

plt = pyplot()


def write_plots(trials: pd.DataFrame, curves: pd.DataFrame, sweep: Sweep, study: optuna.Study) -> list[Path]:
    """Write history.png, importances.png (when computable) and curves.png under ``out/plots``."""
    out = sweep.out / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written = [save_figure(history_figure(trials, sweep, curves), out / "history.png")]
    imp = _importances(study, sweep, out / "importances.png")
    if imp:
        written.append(imp)
    if len(curves):
        written.append(save_figure(curves_figure(curves, trials, sweep), out / "curves.png"))
    return written


def _last_reports(curves: pd.DataFrame) -> dict[int, float]:
    """Each trial's last intermediate value (what a pruned trial reached before it was stopped)."""
    if not len(curves):
        return {}
    last = curves.sort_values("step").groupby("trial")["value"].last()
    return {int(k): float(v) for k, v in last.items()}


def history_figure(df: pd.DataFrame, sweep: Sweep, curves: pd.DataFrame | None = None) -> Figure:
    """Every trial's value in order (pruned ones at their last report, failed ones marked at the
    bottom), and the best so far: the figure of history.png, not yet saved."""
    col = "value" if "value" in df else f"value_{sweep.metrics[0]}"
    df = df.sort_values("trial")
    done = df[df["state"] == "COMPLETE"]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ax.scatter(done["trial"], done[col], s=16, color="C0", label=f"complete ({len(done)})", zorder=3)
    last = _last_reports(curves if curves is not None else pd.DataFrame())
    pruned = df[df["state"] == "PRUNED"]
    px = [t for t in pruned["trial"] if t in last]
    if px:
        ax.scatter(
            px,
            [last[t] for t in px],
            s=18,
            marker="x",
            color="0.55",
            label=f"pruned, last report ({len(px)})",
        )
    failed = df[df["state"] == "FAIL"]
    if len(failed):
        values = [*done[col], *(last[t] for t in px)]
        floor = min(values) if values else 0.0
        ax.scatter(
            failed["trial"],
            [floor] * len(failed),
            s=22,
            marker="v",
            color="C3",
            label=f"failed ({len(failed)})",
        )
    if len(done):
        best = done[col].cummax() if sweep.maximize else done[col].cummin()
        ax.step(done["trial"], best, where="post", color="C1", lw=1.5, label="best so far", zorder=2)
    ax.set_xlabel("trial")
    ax.set_ylabel(sweep.metrics[0])
    ax.set_title(f"{sweep.study_name}: optimisation history ({sweep.method})")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig


def _importances(study: optuna.Study, sweep: Sweep, path: Path) -> Path | None:
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 3 or not complete[0].params:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imp = optuna.importance.get_param_importances(study, target=lambda t: t.values[0])
    except (ValueError, RuntimeError):
        return None
    if not imp:
        return None
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(imp) + 1))
    names = list(imp)[::-1]
    ax.barh(names, [imp[n] for n in names])
    ax.set_xlabel(f"importance for {sweep.metrics[0]} (fANOVA)")
    return save_figure(fig, path)


def curves_figure(curves: pd.DataFrame, trials: pd.DataFrame, sweep: Sweep) -> Figure:
    """Every trial's intermediate values over budget; a trial with one report is a point, not lost: the
    figure of curves.png, not yet saved."""
    state = dict(zip(trials["trial"], trials["state"], strict=True))
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    groups = list(curves.groupby("trial"))
    pruned = [g for t, g in groups if state.get(t) == "PRUNED"]
    for _, grp in (g for g in groups if state.get(g[0]) != "PRUNED"):
        ax.plot(grp["step"], grp["value"], color="C0", lw=1.2, marker="o", ms=2.5, alpha=0.85)
    for grp in pruned:  # on top, as crosses: many end at the first rung, under the others' first points
        ax.plot(grp["step"], grp["value"], color="0.45", lw=0.8, marker="x", ms=5, alpha=0.9, zorder=3)
    n_pruned = len(pruned)
    ax.set_xlabel(f"budget ({sweep.info.unit})")
    ax.set_ylabel(sweep.metrics[0])
    what = "population members" if sweep.spec.population else "learning curves"
    note = f", grey: pruned ({n_pruned})" if n_pruned else ""
    ax.set_title(f"{sweep.study_name}: {what} of {curves['trial'].nunique()} trials{note}")
    ax.grid(alpha=0.3)
    return fig
