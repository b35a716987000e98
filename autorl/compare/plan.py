"""``--dry-run``: every cell's budget and an estimate of its wall time, from finished cells and,
with ``--calibrate``, short calibration runs."""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autorl.compare.cells import _read_cell
from autorl.compare.suite import Cell, Suite
from autorl.config import parse_sweep
from autorl.results import record_of


@dataclass(frozen=True)
class CellPlan:
    """What ``compare --dry-run`` says of one cell: the budget it is charged and its likely wall time.

    ``steps``/``time``: the tuning budget (env steps of all trials, wall clock); ``test_steps``: the
    retraining of its incumbent on the test seeds; ``seconds``: the estimate (measured for a finished
    cell, ``None`` where no throughput is known); ``done``: finished and cached.
    """

    cell: Cell
    steps: int | None
    time: float | None
    test_steps: int
    seconds: float | None
    done: bool


def plan_suite(
    suite: Suite, calibrate: bool = True, say: Callable[[str], None] | None = None
) -> list[CellPlan]:
    """Each cell's budget and an estimate of its wall time. Throughput (budget units per second) comes
    from the suite's finished cells of the same task and method, else from a short calibration run of
    the task's target at the cell's width (its batch: several configurations trained as one), which
    ``calibrate=False`` skips."""
    n_test = suite.config.test_seeds
    measured: dict[tuple[str, str], list[float]] = {}
    finished: dict[int, dict[str, Any]] = {}
    for i, c in enumerate(suite.cells):
        payload = _read_cell(c.sweep.out / "cell.json", c.test_seeds or None)
        if payload is None:
            continue
        finished[i] = row = payload["row"]
        units = float(row.get("budget_used") or 0) + _test_steps(c, n_test)
        if row.get("wall_s"):
            measured.setdefault((c.task, c.method), []).append(units / float(row["wall_s"]))
    rates: dict[tuple[str, int], tuple[float, float] | None] = {}

    def rate(c: Cell, width: int) -> tuple[float, float] | None:
        key = (c.task, width)
        if key not in rates:
            rates[key] = _calibrate(c, width, say) if calibrate else None
        return rates[key]

    plans = []
    for i, c in enumerate(suite.cells):
        b = c.sweep.config.budget
        steps = b.steps if c.sweep.spec.baseline else b.total
        test = _test_steps(c, n_test)
        if i in finished:
            plans.append(CellPlan(c, steps, b.time, test, float(finished[i].get("wall_s") or 0), True))
            continue
        known = measured.get((c.task, c.method))
        seconds: float | None
        if known:
            per_s = sum(known) / len(known)
            tuning = steps / per_s if steps else math.inf
            seconds = min(tuning, b.time if b.time is not None else math.inf) + test / per_s
        else:
            tune, check = rate(c, _width(c)), rate(c, _test_width(c, n_test))
            limit = b.time if b.time is not None else math.inf
            tuned = min(tune[1] + steps / (tune[0] * _parallel(c)), limit) if (steps and tune) else limit
            seconds = tuned + test / check[0] if check and math.isfinite(tuned) else None
        plans.append(CellPlan(c, steps, b.time, test, seconds, False))
    return plans


def _test_steps(c: Cell, n_test: int) -> int:
    """Budget units of retraining a cell's incumbent on the test seeds."""
    cfg = c.sweep.config
    if c.sweep.spec.population and cfg.budget.total:  # a member's share of the budget, replayed
        size = c.sweep.population.size
        return n_test * (cfg.budget.total // (size * cfg.seeds_per_trial))
    return n_test * cfg.budget.steps


def _batched(c: Cell) -> bool:
    return c.sweep.info.batch is not None


def _width(c: Cell) -> int:
    """Configurations a cell trains as one computation."""
    if not _batched(c):
        return 1
    return c.sweep.population.size if c.sweep.spec.population else c.sweep.config.batch


def _test_width(c: Cell, n_test: int) -> int:
    return n_test if _batched(c) else 1


def _parallel(c: Cell) -> int:
    return 1 if _batched(c) else c.sweep.config.workers


def _calibrate(c: Cell, width: int, say: Callable[[str], None] | None) -> tuple[float, float] | None:
    """Budget units per second of ``width`` configurations of the cell's space trained together on its
    target, and the seconds a sweep takes to start and finish, from a short run (a tenth of a trial, at
    least one report interval); None if it fails."""
    from autorl.api import sweep as run_sweep

    cfg = c.sweep.config
    steps = max(min(cfg.budget.steps, max(cfg.budget.interval, cfg.budget.steps // 10)), 1)
    data = {
        "target": cfg.target,
        "args": cfg.args,
        "space": c.sweep.space.to_dict(),
        "metric": list(c.sweep.metrics),
        "direction": list(c.sweep.directions),
        "budget": {"max": steps, "report_every": steps},
        "method": "random",
        "trials": width,
        "batch": width,
        "seed": 0,
    }
    if say:
        say(f"calibrating {c.task} ({cfg.target}, {width} at once, {steps:,} {c.sweep.info.unit} each)")
    with tempfile.TemporaryDirectory(prefix="autorl-calibrate-") as tmp:
        start = time.perf_counter()
        try:
            result = run_sweep(parse_sweep(data, out=str(Path(tmp) / "run")), plots=False)
        except Exception:  # an estimate is only advice: a target that fails here fails in its cells
            return None
        total = time.perf_counter() - start
        records = [record_of(t) for t in result.study.get_trials(deepcopy=False)]
    used = sum(r.budget for r in records)
    # the trials' own time (one trial, or one batch trained together); the rest is the sweep's start-up
    wall = max((float(r.metrics.get("wall_s", 0.0)) for r in records), default=0.0)
    return (used / wall, max(0.0, total - wall)) if used and wall > 0 else None
