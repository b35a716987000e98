"""PNG plots of a sweep: optimisation history, parameter importances, learning curves."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pandas as pd

from autorl.config import Sweep
from autorl.plotting import pyplot, save_figure

plt = pyplot()


def write_plots(trials: pd.DataFrame, curves: pd.DataFrame, sweep: Sweep, study: optuna.Study) -> list[Path]:
    """Write history.png, importances.png (when computable) and curves.png under ``out/plots``."""
    out = sweep.out / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written = [_history(trials, sweep, out / "history.png")]
    imp = _importances(study, sweep, out / "importances.png")
    if imp:
        written.append(imp)
    if len(curves):
        written.append(_curves(curves, trials, sweep, out / "curves.png"))
    return written


def _history(df: pd.DataFrame, sweep: Sweep, path: Path) -> Path:
    col = "value" if "value" in df else f"value_{sweep.metrics[0]}"
    done = df[df["state"] == "COMPLETE"].sort_values("trial")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.scatter(done["trial"], done[col], s=14, label="complete")
    if len(done):
        best = done[col].cummax() if sweep.directions[0] == "maximize" else done[col].cummin()
        ax.step(done["trial"], best, where="post", color="C3", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(sweep.metrics[0])
    ax.set_title(f"{sweep.study_name}: optimisation history")
    ax.legend(loc="best", fontsize=8)
    return save_figure(fig, path)


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


def _curves(curves: pd.DataFrame, trials: pd.DataFrame, sweep: Sweep, path: Path) -> Path:
    state = dict(zip(trials["trial"], trials["state"], strict=True))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for trial, grp in curves.groupby("trial"):
        pruned = state.get(trial) == "PRUNED"
        ax.plot(grp["step"], grp["value"], color="0.7" if pruned else "C0", lw=0.8 if pruned else 1.2)
    ax.set_xlabel(f"budget ({sweep.info.unit})")
    ax.set_ylabel(sweep.metrics[0])
    ax.set_title("learning curves (grey: pruned)")
    return save_figure(fig, path)
