"""PNG plots of a sweep: optimisation history, parameter importances, learning curves."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import pandas as pd

from autorl.config import Sweep
from autorl.plotting import pyplot, save_figure
from autorl.targets import Select

if TYPE_CHECKING:
    from matplotlib.figure import Figure

plt = pyplot()


def write_plots(trials: pd.DataFrame, curves: pd.DataFrame, sweep: Sweep, study: optuna.Study) -> list[Path]:
    """Write history.png, importances.png (when computable) and curves.png under ``out/plots``."""
    out = sweep.out / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written = [save_figure(history_figure(trials, sweep, curves), out / "history.png")]
    imp = importances_figure(study, sweep)
    if imp is not None:
        written.append(save_figure(imp, out / "importances.png"))
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
    blocks = done.iloc[:0]
    if "race_of" in done:  # a racing sweep: its race blocks apart, the best so far over configurations
        blocks, done = done[done["race_of"].notna()], done[done["race_of"].isna()]
    ax.scatter(done["trial"], done[col], s=16, color="C0", label=f"complete ({len(done)})", zorder=3)
    if len(blocks):
        ax.scatter(
            blocks["trial"], blocks[col], s=16, marker="s", color="C2", label=f"race blocks ({len(blocks)})"
        )
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
        label = "best tuning value so far" if len(blocks) else "best so far"
        ax.step(done["trial"], best, where="post", color="C1", lw=1.5, label=label, zorder=2)
    incumbent = df[df["incumbent"].eq(True)] if "incumbent" in df else df.iloc[:0]
    if len(incumbent):
        row = incumbent.iloc[0]
        ax.axhline(
            row["race_mean"],
            color="C3",
            lw=1.2,
            ls="--",
            label=f"incumbent (trial {row['trial']}): race mean over {int(row['race_seeds'])} seeds",
        )
    ax.set_xlabel("trial")
    ax.set_ylabel(sweep.metrics[0])
    ax.set_title(f"{sweep.study_name}: optimisation history ({sweep.method})")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig


MIN_IMPORTANCE_TRIALS = 10  # and twice the searched parameters: fANOVA's forest on fewer is noise


def importances_figure(study: optuna.Study, sweep: Sweep) -> Figure | None:
    """fANOVA importances where they can mean something, else a note saying why not (None: nothing is
    searched): the figure of importances.png, not yet saved."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    searched = [p for p in sweep.space.values() if p.type.value != "fixed"]
    if not searched:
        return None
    values = [t.values[0] for t in complete]
    needed = max(MIN_IMPORTANCE_TRIALS, 2 * len(searched))
    why = ""
    if sweep.spec.population:
        why = (
            "population members change their hyperparameters while they train:\n"
            "the importance of their final values is not measured"
        )
    elif len(complete) < needed:
        why = (
            f"{len(complete)} complete trials: importances need at least {needed}\n"
            f"(10, and twice the {len(searched)} searched parameters)"
        )
    elif len(set(values)) < 3:
        n = len(set(values))
        why = f"the {len(complete)} complete trials took {n} distinct value(s): nothing to explain"
    imp: dict[str, float] = {}
    if not why:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                imp = optuna.importance.get_param_importances(study, target=lambda t: t.values[0])
        except (ValueError, RuntimeError) as exc:
            why = f"fANOVA could not be computed: {exc}"
    if why or not imp:
        fig, ax = plt.subplots(figsize=(6, 1.8))
        ax.axis("off")
        ax.set_title(f"{sweep.study_name}: no parameter importances")
        ax.text(0.5, 0.5, why or "fANOVA returned nothing", ha="center", va="center", wrap=True)
        return fig
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(imp) + 1.2))
    names = list(imp)[::-1]
    ax.barh(names, [imp[n] for n in names])
    ax.set_xlabel(f"importance for {sweep.metrics[0]} (fANOVA)")
    ax.set_title(
        f"{sweep.study_name}: parameter importances from {len(complete)} complete trials", fontsize=10
    )
    return fig


def _value_rule(sweep: Sweep) -> str:
    """How a trial's value comes from its reports, in a few words."""
    spec = sweep.value_spec
    if spec.select is Select.BEST:
        return "its best report"
    if spec.select is Select.MEAN_LAST:
        return f"mean of its last {spec.k} reports"
    return "its last report"


def curves_figure(curves: pd.DataFrame, trials: pd.DataFrame, sweep: Sweep) -> Figure:
    """Every trial's intermediate values over budget: complete trials coloured by their value, the best
    one bold and named, pruned ones as grey crosses on top; a trial with one report is a point, not
    lost. The figure of curves.png, not yet saved."""
    import matplotlib as mpl

    state = dict(zip(trials["trial"], trials["state"], strict=True))
    col = "value" if "value" in trials else f"value_{sweep.metrics[0]}"
    value = {
        t: v for t, v, s in zip(trials["trial"], trials[col], trials["state"], strict=True) if s == "COMPLETE"
    }
    fig, ax = plt.subplots(figsize=(7.2, 3.8))
    groups = list(curves.groupby("trial"))
    pruned = [g for t, g in groups if state.get(t) == "PRUNED"]
    best = None
    if value:
        best = (max if sweep.maximize else min)(value, key=lambda t: value[t])
    raced = trials[trials["incumbent"].eq(True)] if "incumbent" in trials else trials.iloc[:0]
    if len(raced):  # a racing sweep's best is its race's incumbent, judged by its race
        best = int(raced["trial"].iloc[0])
    cmap = mpl.colormaps["viridis"] if sweep.maximize else mpl.colormaps["viridis_r"]
    lo, hi = (min(value.values()), max(value.values())) if value else (0.0, 1.0)
    norm = mpl.colors.Normalize(lo, hi if hi > lo else lo + 1.0)
    for t, grp in groups:
        if state.get(t) == "PRUNED" or t == best:
            continue
        color = cmap(norm(value[t])) if t in value else "0.7"  # failed or cut off: no value
        ax.plot(grp["step"], grp["value"], color=color, lw=1.1, marker="o", ms=2.5, alpha=0.9, zorder=2)
    if best is not None:
        grp = dict(groups)[best]
        who = "member" if sweep.spec.population else "trial"
        label = f"best: {who} {best}, {sweep.metrics[0]} {value[best]:.4g}"
        if len(raced):
            row = raced.iloc[0]
            label = (
                f"incumbent: trial {best}, {sweep.metrics[0]} {value[best]:.4g}, race mean "
                f"{row['race_mean']:.4g} over {int(row['race_seeds'])} seeds"
            )
        ax.plot(grp["step"], grp["value"], color="C3", lw=2.6, marker="o", ms=4, zorder=2.5, label=label)
        ax.legend(loc="best", fontsize=8)
    for grp in pruned:  # on top, as crosses: many end at the first rung, under the others' first points
        ax.plot(grp["step"], grp["value"], color="0.45", lw=0.8, marker="x", ms=5, alpha=0.9, zorder=3)
    if value:
        bar = fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.02)
        bar.set_label(f"the trial's value ({_value_rule(sweep)})", fontsize=8)
    n_pruned = len(pruned)
    ax.set_xlabel(f"budget ({sweep.info.unit})")
    ax.set_ylabel(sweep.metrics[0])
    what = "population members" if sweep.spec.population else "learning curves"
    note = f", grey: pruned ({n_pruned})" if n_pruned else ""
    ax.set_title(f"{sweep.study_name}: {what} of {curves['trial'].nunique()} trials{note}", fontsize=10)
    ax.grid(alpha=0.3)
    return fig
