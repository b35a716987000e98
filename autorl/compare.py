"""Compare methods: ``autorl compare SUITE.yaml`` runs methods x tasks x seeds under one budget.

Every (task, method, seed) cell is a sweep whose ``budget.total`` is the task's budget: no trial
starts once the method's trials consumed it, and a trial that ends past it does not count, so a
single long run and thirty short trials are charged the same. Each cell's incumbent is then
retrained on fresh test seeds, never used in tuning (the best of many noisy trials is optimistically
biased; Eimer et al. 2023), and the scores go through :mod:`autorl.analysis` (IQM with stratified
bootstrap CIs, probability of improvement, performance profiles, anytime curves).

Finished cells are cached (``cell.json``) and skipped; an unfinished one resumes.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from autorl.config import Budget, Direction, Sweep, _error_from_pydantic, apply_overrides, parse_sweep
from autorl.errors import ConfigError
from autorl.evaluate import evaluate_config, fresh_seeds
from autorl.methods import METHODS, method_spec
from autorl.results import DirectoryLock, record_of, write_atomic
from autorl.results.rundir import check_directory
from autorl.yamlio import dump_yaml, load_yaml


class TaskSpec(BaseModel):
    """One task of a suite: a target with fixed arguments and its budget (``budget.total`` required).

    ``ref`` is ``[worst, best]`` in the metric's own units, used to normalise scores to [0, 1]
    (for a minimised metric, worst is the larger number). ``methods`` restricts the task to some of
    the suite's methods (meta-gradients apply to the actor-critic target only, say); tasks that share
    a method set are reported together.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    target: str
    args: dict[str, Any] = Field(default_factory=dict)
    space: str | dict[str, Any] | None = None
    metric: str | None = None
    direction: Direction | None = None
    budget: Budget
    ref: tuple[float, float] | None = None
    methods: list[str] | None = None  # a subset of the suite's methods, where not all of them apply


SUITE_FILE = "suite.yaml"  # the resolved suite, which marks a directory as a comparison's


class SuiteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str | None = None
    tasks: dict[str, TaskSpec]
    methods: dict[str, str | dict[str, Any]]
    seeds: PositiveInt | list[int] = 3
    test_seeds: PositiveInt = 3
    jobs: PositiveInt = 1
    max_trials: PositiveInt = 10_000
    out: str | None = None


@dataclass(frozen=True)
class Cell:
    task: str
    method: str
    seed: int
    sweep: Sweep
    ref: tuple[float, float] | None

    @property
    def maximize(self) -> bool:
        return self.sweep.directions[0] == "maximize"


@dataclass(frozen=True)
class Suite:
    config: SuiteConfig
    source: str
    out: Path
    cells: list[Cell]


def load_suite(path: str | Path, overrides: list[str] | None = None, out: str | None = None) -> Suite:
    """Read and validate a suite; every cell's sweep is validated before anything runs."""
    source = str(path)
    data = load_yaml(path)
    if overrides:
        data = apply_overrides(data or {}, overrides, source)
    if not isinstance(data, dict):
        raise ConfigError("a suite must be a mapping", file=source)
    try:
        cfg = SuiteConfig.model_validate(data)
    except ValidationError as exc:
        raise _error_from_pydantic(exc, source) from None
    for name, task in cfg.tasks.items():
        if task.budget.total is None:
            raise ConfigError(
                "is required: the budget every method gets on this task", f"tasks.{name}.budget.total", source
            )
    name = cfg.name or Path(source).stem
    out_dir = Path(out or cfg.out or f"runs/compare-{name}")
    seeds = cfg.seeds if isinstance(cfg.seeds, list) else list(range(cfg.seeds))
    cells = []
    for tname, task in cfg.tasks.items():
        unknown = sorted(set(task.methods or []) - set(cfg.methods))
        if unknown:
            raise ConfigError(
                f"names methods the suite does not define: {', '.join(unknown)}; defined: "
                f"{', '.join(cfg.methods)}",
                f"tasks.{tname}.methods",
                source,
            )
        for mname, method in cfg.methods.items():
            if task.methods is not None and mname not in task.methods:
                continue
            for seed in seeds:
                name = method if isinstance(method, str) else str(method.get("name"))
                population = name in METHODS and method_spec(name).population
                data = {
                    **task.model_dump(exclude={"ref", "methods"}, exclude_none=True),
                    "method": method,
                    **({} if population else {"trials": cfg.max_trials}),
                    "seed": seed,
                    "name": f"{tname}-{mname}-s{seed}",
                }
                # a cell is keyed by its resolved definition: a changed suite never reuses an old result
                key = _key({**data, "test_seeds": cfg.test_seeds})
                data["out"] = str(out_dir / "cells" / tname / mname / f"seed{seed}-{key}")
                try:
                    sweep = parse_sweep(data, source)
                except ConfigError as exc:
                    raise ConfigError(
                        exc.rule,
                        f"tasks.{tname} x methods.{mname}" + (f": {exc.key}" if exc.key else ""),
                        source,
                    ) from None
                cells.append(Cell(tname, mname, seed, sweep, task.ref))
    return Suite(cfg, source, out_dir, cells)


def run_cell(cell: Cell, test_seeds: int) -> dict[str, Any]:
    """Run (or resume, or read back) one cell; returns its row of results and its anytime curve."""
    from autorl.api import sweep as run_sweep

    done = cell.sweep.out / "cell.json"
    if (cached := _read_cell(done)) is not None:
        return cached
    start = time.perf_counter()
    result = run_sweep(cell.sweep, resume=True, plots=False)
    total = cell.sweep.config.budget.total
    assert total is not None
    sign = 1.0 if cell.maximize else -1.0
    finished = sorted(
        (t for t in result.study.get_trials(deepcopy=False) if t.state.is_finished()),
        key=lambda t: t.datetime_complete or datetime.min,
    )
    used, best, best_trial, curve = 0.0, None, None, []
    for t in finished:
        cost = record_of(t).budget
        if used + cost > total:
            break  # this trial ended past the budget: it does not count
        used += cost
        if t.state.name == "COMPLETE" and (best is None or sign * t.values[0] > sign * best):
            best, best_trial = t.values[0], t
        if best is not None:
            curve.append({"budget": used, "score": sign * best})
    row: dict[str, Any] = {
        "method": cell.method,
        "task": cell.task,
        "seed": cell.seed,
        "budget_used": used,
        "budget_total": total,
        "trials": len(finished),
        "tuning_value": best,
    }
    if best_trial is None:
        row.update(test_value=None, score=None)
    else:
        config = record_of(best_trial).config or best_trial.params
        params = {k: v for k, v in config.items() if k in cell.sweep.space}
        budget = cell.sweep.config.budget
        if cell.sweep.spec.population:
            # a population's result is a schedule, not a config: retrain one agent along it
            from autorl.evaluate import replay_best

            steps = int(record_of(best_trial).budget) // cell.sweep.config.seeds_per_trial
            test = replay_best(cell.sweep.out, fresh_seeds(test_seeds), budget=steps)
        else:
            test = evaluate_config(
                cell.sweep.config.target,
                cell.sweep.config.args,
                params,
                fresh_seeds(test_seeds),
                Budget(max=budget.steps, report_every=budget.interval),
                cell.sweep.metrics[0],
            )
        row["test_value"] = float(test[cell.sweep.metrics[0]].mean())
        row["score"] = sign * row["test_value"]
        row["incumbent"] = params
    row["wall_s"] = time.perf_counter() - start
    payload = {"row": row, "curve": curve}
    write_atomic(done, json.dumps(payload, default=str))  # a kill leaves the old file or the new one
    return payload


def _key(definition: dict[str, Any]) -> str:
    """A short digest of a cell's resolved definition."""
    return hashlib.sha256(json.dumps(definition, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _read_cell(path: Path) -> dict[str, Any] | None:
    """A finished cell's payload, or None when it is missing or unreadable (then it runs again: its sweep
    resumes from its own storage, so only the evaluation is repeated)."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return payload if isinstance(payload, dict) and "row" in payload else None


def run_suite(suite: Suite, jobs: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """Run every cell (``jobs`` at a time), then write results.csv, curves.csv and report.md.

    The suite's directory is owned by this call (a second ``compare`` on it is refused) and must be
    empty or hold this comparison (``suite.yaml``)."""
    check_directory(suite.out, SUITE_FILE, "comparison")
    with DirectoryLock(suite.out, "comparison"):
        dump_yaml(suite.config.model_dump(mode="json"), suite.out / SUITE_FILE)
        return _run_cells(suite, jobs)


def _run_cells(suite: Suite, jobs: int | None) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    from autorl.analysis import write_report

    jobs = jobs or suite.config.jobs
    n_test = suite.config.test_seeds
    if jobs == 1:
        payloads = [run_cell(c, n_test) for c in suite.cells]
    else:
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            payloads = list(pool.map(run_cell, suite.cells, [n_test] * len(suite.cells)))
    rows = [p["row"] for p in payloads]
    curves = [
        {"method": p["row"]["method"], "task": p["row"]["task"], "seed": p["row"]["seed"], **c}
        for p in payloads
        for c in p["curve"]
    ]
    results = pd.DataFrame(rows)
    curves_df = pd.DataFrame(curves, columns=["method", "task", "seed", "budget", "score"])
    results.to_csv(suite.out / "runs.csv", index=False)
    scored = results.dropna(subset=["score"])
    missing = len(results) - len(scored)
    if missing:  # a cell with no completed trial has no incumbent: it scores the task's worst reference
        worst = {c.task: (-1 if not c.maximize else 1) * c.ref[0] for c in suite.cells if c.ref}
        results["score"] = [
            s if pd.notna(s) else worst.get(t) for s, t in zip(results["score"], results["task"], strict=True)
        ]
        scored = results.dropna(subset=["score"])
    title = f"autorl compare: {suite.config.name or Path(suite.source).stem}"
    groups = _groups(suite)
    reports = []
    for i, tasks in enumerate(groups):
        out = suite.out if len(groups) == 1 else suite.out / f"group{i + 1}"
        part = scored[scored["task"].isin(tasks)]
        part_curves = curves_df[curves_df["task"].isin(tasks)]
        reports.append(
            write_report(
                part[["method", "task", "seed", "score", "budget_used", "trials", "wall_s"]],
                part_curves if len(part_curves) else None,
                out,
                _refs(suite, tasks),
                title if len(groups) == 1 else f"{title}: {', '.join(tasks)}",
            )
        )
    if len(groups) == 1:
        return results, curves_df, reports[0]
    index = suite.out / "report.md"
    index.write_text(
        f"# {title}\n\nTasks that share a set of methods are compared together:\n\n"
        + "".join(
            f"- [{', '.join(tasks)}]({r.relative_to(suite.out)})\n"
            for tasks, r in zip(groups, reports, strict=True)
        )
    )
    return results, curves_df, index


def _groups(suite: Suite) -> list[list[str]]:
    """Tasks grouped by the set of methods run on them, in suite order."""
    by_methods: dict[frozenset[str], list[str]] = {}
    for c in suite.cells:
        methods = frozenset(x.method for x in suite.cells if x.task == c.task)
        tasks = by_methods.setdefault(methods, [])
        if c.task not in tasks:
            tasks.append(c.task)
    return list(by_methods.values())


def _refs(suite: Suite, tasks: list[str]) -> dict[str, tuple[float, float]] | None:
    """Reference (min, max) per task on the higher-is-better score scale, if every task has one."""
    refs = {}
    for c in suite.cells:
        if c.task not in tasks:
            continue
        if c.ref is None:
            return None
        worst, best = c.ref
        refs[c.task] = (worst, best) if c.maximize else (-worst, -best)
    return refs
