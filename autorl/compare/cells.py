"""One cell: its sweep run (or resumed, or read back from ``cell.json``), its incumbent judged on
fresh test seeds, and its anytime curve."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from autorl.compare.suite import Cell
from autorl.config import Budget
from autorl.evaluate import evaluate_config, fresh_seeds
from autorl.results import record_of, write_atomic
from autorl.results.population import read_summary
from autorl.results.race import incumbent
from autorl.results.record import was_interrupted
from autorl.results.rundir import RUN_FILE


def _failures(trials: list[Any]) -> dict[str, int]:
    """A cell's failed trials by kind: ``{"failed_diverged": 2, ...}`` (runs.csv's columns)."""
    kinds = Counter(k.value for t in trials if (k := record_of(t).failure_kind) is not None)
    return {f"failed_{kind}": n for kind, n in sorted(kinds.items())}


def run_cell(cell: Cell, test_seeds: int) -> dict[str, Any]:
    """Run (or resume, or read back) one cell; returns its row of results and its anytime curve."""
    from autorl.api import sweep as run_sweep

    done = cell.sweep.out / "cell.json"
    seeds = list(cell.test_seeds) or fresh_seeds(test_seeds)
    if (cached := _read_cell(done, seeds)) is not None:
        return cached
    start = time.perf_counter()
    started = (cell.sweep.out / RUN_FILE).is_file()  # an unfinished cell resumes, a new one starts
    result = run_sweep(cell.sweep, resume=started, plots=False)
    tuned = time.perf_counter() - start
    if (stale := _read_cell(done)) is not None:  # judged on other test seeds: only the test runs again
        tuned = float(stale["row"]["tuning_s"])
        start = time.perf_counter() - tuned
    budget = cell.sweep.config.budget
    sign = 1.0 if cell.maximize else -1.0
    trials = [t for t in result.study.get_trials(deepcopy=False) if t.state.is_finished()]
    trials = [t for t in trials if not was_interrupted(t)]  # a budget.time stop: not a result
    if cell.sweep.spec.population:
        used, best, best_trial, curve = _population_curve(cell, trials, sign)
    else:
        raced = cell.sweep.config.race is not None
        used, best, best_trial, curve = _trial_curve(trials, budget.total, sign, raced)
    row: dict[str, Any] = {
        "method": cell.method,
        "task": cell.task,
        "seed": cell.seed,
        "budget_used": used,
        "budget_total": budget.total,
        "time_total": budget.time,
        "trials": len(trials),
        **_failures(trials),
        "tuning_value": best,
        "tuning_s": tuned,
    }
    if best_trial is None:
        row.update(test_value=None, score=None)
    else:
        config = record_of(best_trial).config or best_trial.params
        params = {k: v for k, v in config.items() if k in cell.sweep.space}
        if cell.sweep.spec.population:
            # a population's result is a schedule, not a config: retrain one agent along it
            from autorl.evaluate import replay_best

            steps = int(record_of(best_trial).budget) // cell.sweep.config.seeds_per_trial
            test = replay_best(cell.sweep.out, seeds, budget=steps)
        else:
            test = evaluate_config(
                cell.sweep.config.target,
                cell.sweep.trial_args(),
                params,
                seeds,
                Budget(max=budget.steps, report_every=budget.interval),
                cell.sweep.metrics[0],
            )
        row["test_value"] = float(test[cell.sweep.metrics[0]].mean())
        row["score"] = sign * row["test_value"]
        # the tuner's own estimate of its incumbent, less what fresh seeds give it (> 0: optimistic)
        row["tuning_score"] = sign * float(best)  # type: ignore[arg-type]
        row["optimism"] = row["tuning_score"] - row["score"]
        row["incumbent"] = params
    row["wall_s"] = time.perf_counter() - start
    payload = {"row": row, "curve": curve, "test_seeds": seeds}
    write_atomic(done, json.dumps(payload, default=str))  # a kill leaves the old file or the new one
    return payload


Curve = list[dict[str, float]]


def _trial_curve(
    trials: list[Any], total: int | None, sign: float, raced: bool = False
) -> tuple[float, Any, Any, Curve]:
    """Budget used, the incumbent and the value it is judged by, and that value after each trial in the
    order they ended (by the sweep's clock): a trial that ended past ``total`` does not count. A racing
    sweep's incumbent is its race's (:func:`autorl.results.race.incumbent`), judged by its race mean."""
    ordered = sorted(
        trials,
        key=lambda t: (
            record_of(t).at_s if record_of(t).at_s is not None else math.inf,
            t.datetime_complete or datetime.min,
        ),
    )
    used, best_trial, curve = 0.0, None, []
    best: Any = None
    seen: list[Any] = []
    for t in ordered:
        rec = record_of(t)
        if total is not None and used + rec.budget > total:
            break
        used += rec.budget
        seen.append(t)
        if raced:
            best_trial, value = incumbent(seen, sign > 0, raced=True)
            best = value if best_trial is not None else None
        elif t.state.name == "COMPLETE" and (best is None or sign * t.values[0] > sign * best):
            best, best_trial = t.values[0], t
        if best is not None:
            curve.append({"budget": used, "time": rec.at_s, "score": sign * best})
    return used, best, best_trial, curve


def _population_curve(cell: Cell, trials: list[Any], sign: float) -> tuple[float, Any, Any, Curve]:
    """A population's budget, best member and the value it is judged by (a racing population's: the
    race's incumbent and its race mean), and its best score after every interval (its timeline)."""
    best_trial, best = incumbent(trials, sign > 0, raced=cell.sweep.config.race is not None)
    used = sum(record_of(t).budget for t in trials)  # race blocks train nothing
    timeline = read_summary(cell.sweep.out).get("timeline", [])
    curve = [{"budget": float(b), "time": float(at), "score": sign * float(v)} for b, at, v in timeline]
    return used, (best if best_trial is not None else None), best_trial, curve


def _read_cell(path: Path, test_seeds: Sequence[int] | None = None) -> dict[str, Any] | None:
    """A finished cell's payload, or None when it is missing, unreadable or (given ``test_seeds``) judged
    on other test seeds; then it runs again: its sweep resumes from its own storage, so only the
    evaluation is repeated. A payload without ``test_seeds`` was judged on ``fresh_seeds(n)``."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not (isinstance(payload, dict) and "row" in payload):
        return None
    if test_seeds is not None:
        used = payload.get("test_seeds", fresh_seeds(len(test_seeds)))
        if list(used) != list(test_seeds):
            return None
    return payload
