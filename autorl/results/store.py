"""The run directory: self-describing files written at the start and the end of a sweep.

``config.yaml`` (resolved config), ``space.yaml``, ``run.json`` (seeds, versions, command),
``trials.csv`` (one row per trial), ``curves.csv`` (intermediate values), ``best.yaml`` (the best
configuration, ready for ``autorl train``), ``pareto.csv`` for several objectives, and ``plots/``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autorl.config import Sweep
from autorl.errors import ConfigError
from autorl.results.race import incumbent, race_columns, race_report
from autorl.results.record import record_of
from autorl.results.storage import make_storage
from autorl.urls import STORAGE_ENV, redact
from autorl.yamlio import dump_yaml, load_yaml

if TYPE_CHECKING:
    import pandas as pd


def _value_columns(metrics: tuple[str, ...]) -> list[str]:
    return ["value"] if len(metrics) == 1 else [f"value_{m}" for m in metrics]


def trials_frame(
    trials: list[FrozenTrial], metrics: tuple[str, ...] = ("value",), maximize: bool = True
) -> pd.DataFrame:
    """One row per trial: trial, state, value(s), budget, wall_s, seed, one column per parameter, and for
    a failed one its failure (a :class:`~autorl.errors.FailureKind` value) and error. A racing sweep's
    rows say which are race blocks (``race_of``, ``race_block``) and, for a raced configuration's first
    trial, its race so far (``race_seeds``, ``race_mean``; ``incumbent``)."""
    rows = []
    vcols = _value_columns(metrics)
    raced = race_columns(trials, maximize) if len(metrics) == 1 else {}
    for t in trials:
        rec = record_of(t)
        m = rec.metrics
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name}
        values = t.values or [None] * len(vcols)
        row.update(zip(vcols, values, strict=False))
        row["budget"] = m.get("budget")
        row["wall_s"] = m.get("wall_s")
        seeds = rec.seeds
        row["seed"] = seeds[0] if len(seeds) == 1 else (" ".join(map(str, seeds)) if seeds else None)
        row.update(rec.config or t.params)
        for name, v in m.items():
            if name not in ("budget", "wall_s") and name not in metrics:
                row[f"metric_{name}"] = v
        for i, s in enumerate(rec.per_seed):
            for name in metrics:
                if name in s:
                    row[f"{name}_seed{i}"] = s[name]
        if rec.member is not None:
            row["member"] = rec.member
        kind = rec.failure_kind
        row["failure"] = kind.value if kind is not None else None
        row["error"] = rec.error
        row["exit"] = rec.exit
        row["log"] = rec.log
        row["interrupted"] = rec.interrupted
        row.update(raced.get(t.number, {}))
        rows.append(row)
    import pandas as pd  # here, not at import: a worker records trials without the tables (0.3 s)

    return pd.DataFrame(rows)


def curves_frame(trials: list[FrozenTrial]) -> pd.DataFrame:
    rows = [
        {"trial": t.number, "step": step, "value": v}
        for t in trials
        for step, v in sorted(t.intermediate_values.items())
    ]
    import pandas as pd

    return pd.DataFrame(rows, columns=["trial", "step", "value"])


def best_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The best trial, or the Pareto front for several objectives (empty if nothing completed)."""
    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return []
    return study.best_trials if len(study.directions) > 1 else [study.best_trial]


def best_record(
    sweep: Sweep, trial: FrozenTrial, study_trials: list[FrozenTrial] | None = None
) -> dict[str, Any]:
    """The best configuration in the form ``autorl train`` reads; a racing sweep's (given the study's
    trials) is judged by its race: ``value`` is its mean on the race's seeds, ``race`` the details."""
    rec = record_of(trial)
    params = {k: v for k, v in (rec.config or trial.params).items() if k in sweep.space}
    values = dict(zip(sweep.metrics, trial.values, strict=True))
    race = None
    if sweep.config.race is not None:
        race = race_report(study_trials, sweep.maximize, sweep.race_seeds) if study_trials else None
        if race is not None:  # the incumbent is judged by its race, not by its tuning seed
            values = {sweep.metrics[0]: race["mean"]}
    args = sweep.trial_args()
    record = {
        "target": sweep.config.target,
        "args": args,  # the method's too: a PLR or meta-gradient trial retrains as one
        "params": params,
        "metric": list(sweep.metrics) if len(sweep.metrics) > 1 else sweep.metrics[0],
        "direction": list(sweep.directions) if len(sweep.directions) > 1 else sweep.directions[0],
        "value": values if len(values) > 1 else values[sweep.metrics[0]],
        "trial": trial.number,
        "seeds": rec.seeds,
        "budget": {"max": sweep.config.budget.steps, "report_every": sweep.config.budget.interval},
        "sweep": str(sweep.out),
    }
    if race is not None:
        record["race"] = race
    handed: dict[str, Any] = {}
    for to in sweep.info.handover:  # the same configuration as another target trains it
        try:
            handed[to] = sweep.info.hand_over(to, {**args, **params})
        except ConfigError as exc:
            handed[to] = {"refused": f"{exc.key}: {exc.rule}"}
    if handed:
        record["with"] = handed  # `autorl train best.yaml --with NAME` retrains it so
    return record


def export(study: optuna.Study, sweep: Sweep, plots: bool = True) -> pd.DataFrame:
    """Write trials.csv, curves.csv, best.yaml (and pareto.csv, plots); returns the trials table."""
    trials = study.get_trials(deepcopy=False)
    df = trials_frame(trials, sweep.metrics, sweep.maximize)
    df.to_csv(sweep.out / "trials.csv", index=False)
    curves_frame(trials).to_csv(sweep.out / "curves.csv", index=False)
    best = best_trials(study)
    if sweep.config.race is not None:
        inc, _ = incumbent(trials, sweep.maximize, raced=True)
        best = [inc] if inc is not None else []
    if best:
        dump_yaml(best_record(sweep, best[0], trials), sweep.out / "best.yaml")
        if len(sweep.metrics) > 1:
            df[df["trial"].isin([t.number for t in best])].to_csv(sweep.out / "pareto.csv", index=False)
    if plots and len(df):
        from autorl.results.plots import write_plots

        write_plots(df, curves_frame(trials), sweep, study)
    return df


def open_run(out_dir: str | Path) -> tuple[optuna.Study, dict[str, Any]]:
    """The study of a run directory and its resolved config; raises FileNotFoundError if there is none."""
    out = Path(out_dir)
    if not (out / "config.yaml").is_file() or not (out / "run.json").is_file():
        raise FileNotFoundError(f"{out} holds no sweep (config.yaml and run.json are missing)")
    cfg = load_yaml(out / "config.yaml")
    run = json.loads((out / "run.json").read_text())
    study = optuna.load_study(study_name=run["study_name"], storage=make_storage(storage_of(run)))
    return study, cfg


def storage_of(run: dict[str, Any]) -> str:
    """The storage URL of a run (its password is never written: it comes from ``$AUTORL_STORAGE``)."""
    url = str(run["storage"])
    if "***" not in url:
        return url
    given = os.environ.get(STORAGE_ENV)
    if given and redact(given) == url:
        return given
    raise FileNotFoundError(
        f"the run's storage {url} needs its password, which autorl never writes: set {STORAGE_ENV} to "
        "the storage URL"
    )


def load_results(out_dir: str | Path) -> pd.DataFrame:
    """The trials of a finished or running sweep as a DataFrame (live from its storage when possible)."""
    out = Path(out_dir)
    try:
        study, cfg = open_run(out)
        directions = cfg.get("direction") or ["maximize"]
        maximize = (directions[0] if isinstance(directions, list) else directions) == "maximize"
        return trials_frame(study.get_trials(deepcopy=False), tuple(cfg.get("metric", ["value"])), maximize)
    except (FileNotFoundError, KeyError):
        if (out / "trials.csv").is_file():
            import pandas as pd

            return pd.read_csv(out / "trials.csv")
        raise
