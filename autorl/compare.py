"""Compare methods: ``autorl compare SUITE.yaml`` runs methods x tasks x seeds under one budget.

Every (task, method, seed) cell is a sweep charged the task's budget: ``budget.total`` env steps (no
trial starts once the method's trials consumed it, and a trial that ends past it does not count, so a
single long run and thirty short trials are charged the same; a batch or a population is charged all
its members' steps), ``budget.time`` of wall clock, or both. A ``fixed`` method (a reference baseline)
trains its one configuration once, at ``budget.max``. Each cell's incumbent is then retrained on fresh
test seeds, never used in tuning (the best of many noisy trials is optimistically biased; Eimer et al.
2023): the difference is the cell's optimism gap. Scores go through :mod:`autorl.analysis` (IQM with
stratified bootstrap CIs, probability of improvement, performance profiles, anytime curves against
env steps and wall time).

Finished cells are cached (``cell.json``) and skipped; an unfinished one resumes.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
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
from autorl.results.population import read_summary
from autorl.results.record import was_interrupted
from autorl.results.rundir import RUN_FILE, check_directory
from autorl.results.status import duration
from autorl.yamlio import dump_yaml, load_yaml


class TaskSpec(BaseModel):
    """One task of a suite: a target with fixed arguments and its budget (``budget.total``, in the
    target's unit, and/or ``budget.time``, wall clock: what every method is charged).

    ``batch`` trains that many trials of a static or multi-fidelity method as one computation (a
    target with ``batch``, the engine); a population already is one, and a baseline is one run.
    ``baselines`` gives each ``fixed`` method of the suite its configuration on this task (a mapping or
    a file: rl-zoo3's tuned settings differ per task), so one method name spans the tasks.
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
    batch: PositiveInt = 1  # trials trained as one computation (engine targets); populations are one anyway
    baselines: dict[str, str | dict[str, Any]] = Field(default_factory=dict)  # fixed method -> config


SUITE_FILE = "suite.yaml"  # the resolved suite, which marks a directory as a comparison's


class SuiteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str | None = None
    notes: str | None = None  # markdown put under the report's title: what the suite is for
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
    test_seeds: tuple[int, ...] = ()  # this cell's own fresh seeds: cells never share them

    @property
    def maximize(self) -> bool:
        return self.sweep.directions[0] == "maximize"


@dataclass(frozen=True)
class Suite:
    config: SuiteConfig
    source: str
    out: Path
    cells: list[Cell]


def load_suite(
    path: str | Path,
    overrides: list[str] | None = None,
    out: str | None = None,
    only: list[str] | None = None,
) -> Suite:
    """Read and validate a suite; every cell's sweep is validated before anything runs.

    ``only`` keeps some tasks: a long suite runs in parts, and a later full run reads their cells back."""
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
        if task.budget.total is None and task.budget.time is None:
            raise ConfigError(
                "is required (or budget.time): the budget every method gets on this task",
                f"tasks.{name}.budget.total",
                source,
            )
    if only:
        unknown = sorted(set(only) - set(cfg.tasks))
        if unknown:
            raise ConfigError(
                f"names tasks the suite does not define: {', '.join(unknown)}; "
                f"defined: {', '.join(cfg.tasks)}",
                "--only",
                source,
            )
    name = cfg.name or Path(source).stem
    out_dir = Path(out or cfg.out or f"runs/compare-{name}")
    seeds = cfg.seeds if isinstance(cfg.seeds, list) else list(range(cfg.seeds))
    cells = []
    for tname, task in cfg.tasks.items():
        if only and tname not in only:
            continue
        for key, names in (("methods", task.methods or []), ("baselines", list(task.baselines))):
            unknown = sorted(set(names) - set(cfg.methods))
            if unknown:
                raise ConfigError(
                    f"names methods the suite does not define: {', '.join(unknown)}; defined: "
                    f"{', '.join(cfg.methods)}",
                    f"tasks.{tname}.{key}",
                    source,
                )
        for mname in task.baselines:
            method = cfg.methods[mname]
            if not method_spec(method if isinstance(method, str) else str(method.get("name"))).baseline:
                raise ConfigError(
                    f"gives a configuration to {mname!r}, which is not a fixed method",
                    f"tasks.{tname}.baselines",
                    source,
                )
        for mname, method in cfg.methods.items():
            if task.methods is not None and mname not in task.methods:
                continue
            name = method if isinstance(method, str) else str(method.get("name"))
            spec = method_spec(name) if name in METHODS else None
            one_run = spec is not None and (spec.population or spec.baseline)
            if mname in task.baselines:  # this task's configuration of a fixed method
                method = {**({} if isinstance(method, str) else method), "name": name}
                method["config"] = task.baselines[mname]
            for k, seed in enumerate(seeds):
                data = {
                    **task.model_dump(exclude={"ref", "methods", "batch", "baselines"}, exclude_none=True),
                    "method": method,
                    **({} if one_run else {"trials": cfg.max_trials}),
                    **({"batch": task.batch} if task.batch > 1 and not one_run else {}),
                    "seed": seed,
                    "name": f"{tname}-{mname}-s{seed}",
                }
                try:
                    # keyed by its resolved definition (the contents of its space and baseline files
                    # included): a changed suite never reuses an old result
                    resolved = parse_sweep(data, source).resolved()
                    key = _key({k: v for k, v in resolved.items() if k not in ("out", "name", "storage")})
                    data["out"] = str(
                        out_dir / "cells" / tname / mname / f"seed{seed}-{_key([key, cfg.test_seeds])}"
                    )
                    sweep = parse_sweep(data, source)
                except ConfigError as exc:
                    raise ConfigError(
                        exc.rule,
                        f"tasks.{tname} x methods.{mname}" + (f": {exc.key}" if exc.key else ""),
                        source,
                    ) from None
                # each tuning seed's incumbent is judged on test seeds of its own, so the cells of a
                # fixed baseline (one configuration) are independent estimates, not copies of one
                test = tuple(fresh_seeds(cfg.test_seeds, start=k * cfg.test_seeds))
                cells.append(Cell(tname, mname, seed, sweep, task.ref, test))
    return Suite(cfg, source, out_dir, cells)


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
        used, best, best_trial, curve = _trial_curve(trials, budget.total, sign)
    row: dict[str, Any] = {
        "method": cell.method,
        "task": cell.task,
        "seed": cell.seed,
        "budget_used": used,
        "budget_total": budget.total,
        "time_total": budget.time,
        "trials": len(trials),
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


def _trial_curve(trials: list[Any], total: int | None, sign: float) -> tuple[float, Any, Any, Curve]:
    """Budget used, best value and trial, and the incumbent after each trial in the order they ended
    (by the sweep's clock): a trial that ended past ``total`` does not count."""
    ordered = sorted(
        trials,
        key=lambda t: (
            record_of(t).at_s if record_of(t).at_s is not None else math.inf,
            t.datetime_complete or datetime.min,
        ),
    )
    used, best, best_trial, curve = 0.0, None, None, []
    for t in ordered:
        rec = record_of(t)
        if total is not None and used + rec.budget > total:
            break
        used += rec.budget
        if t.state.name == "COMPLETE" and (best is None or sign * t.values[0] > sign * best):
            best, best_trial = t.values[0], t
        if best is not None:
            curve.append({"budget": used, "time": rec.at_s, "score": sign * best})
    return used, best, best_trial, curve


def _population_curve(cell: Cell, trials: list[Any], sign: float) -> tuple[float, Any, Any, Curve]:
    """A population's budget, best member, and its best score after every interval (its timeline)."""
    completed = [t for t in trials if t.state.name == "COMPLETE"]
    best_trial = max(completed, key=lambda t: sign * t.values[0], default=None)
    used = sum(record_of(t).budget for t in trials)
    timeline = read_summary(cell.sweep.out).get("timeline", [])
    curve = [{"budget": float(b), "time": float(at), "score": sign * float(v)} for b, at, v in timeline]
    return used, (best_trial.values[0] if best_trial else None), best_trial, curve


def _key(definition: Any) -> str:
    """A short digest of a cell's resolved definition."""
    return hashlib.sha256(json.dumps(definition, sort_keys=True, default=str).encode()).hexdigest()[:10]


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


@dataclass
class SuiteStatus:
    """A running comparison: cells finished (``cached`` of them read back), and an estimate of the rest
    from the wall time of the cells this run finished."""

    total: int
    done: int = 0
    cached: int = 0
    line: str = ""
    started: float = field(default_factory=time.monotonic)
    ran_s: list[float] = field(default_factory=list)
    jobs: int = 1

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def eta(self) -> float | None:
        """Seconds left, once a cell has run here (None before)."""
        if not self.ran_s:
            return None
        return (self.total - self.done) * (sum(self.ran_s) / len(self.ran_s)) / self.jobs


SuiteProgress = Callable[[SuiteStatus], None]


def run_suite(
    suite: Suite, jobs: int | None = None, progress: SuiteProgress | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """Run every cell (``jobs`` at a time), then write runs.csv, the report and its plots.

    The suite's directory is owned by this call (a second ``compare`` on it is refused) and must be
    empty or hold this comparison (``suite.yaml``). ``progress`` is told after every cell."""
    from autorl.api import sigterm_as_interrupt

    check_directory(suite.out, SUITE_FILE, "comparison")
    with DirectoryLock(suite.out, "comparison"), sigterm_as_interrupt():
        dump_yaml(suite.config.model_dump(mode="json"), suite.out / SUITE_FILE)
        return _run_cells(suite, jobs, progress)


def _run_all(suite: Suite, jobs: int, progress: SuiteProgress | None) -> list[dict[str, Any]]:
    """Every cell's payload, in suite order; finished cells are read back first."""
    n_test = suite.config.test_seeds
    status = SuiteStatus(total=len(suite.cells), jobs=jobs)
    payloads: dict[int, dict[str, Any]] = {}

    def tell(i: int, payload: dict[str, Any], cached: bool) -> None:
        payloads[i] = payload
        status.done += 1
        cell, row = suite.cells[i], payload["row"]
        if cached:
            status.cached += 1
        else:
            status.ran_s.append(float(row.get("wall_s") or 0.0))
        score = row.get("test_value")
        shown = f"test {row['task']} {score:.6g}" if isinstance(score, float) else "no incumbent"
        status.line = f"{cell.task} {cell.method} seed {cell.seed}: {shown}" + (" (cached)" if cached else "")
        if progress:
            progress(status)

    todo = []
    for i, c in enumerate(suite.cells):
        if (cached := _read_cell(c.sweep.out / "cell.json", c.test_seeds or None)) is not None:
            tell(i, cached, True)
        else:
            todo.append(i)
    if jobs == 1:
        for i in todo:
            tell(i, run_cell(suite.cells[i], n_test), False)
    elif todo:
        pool = ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_cell_process)
        try:
            futures = {pool.submit(_pooled_cell, suite.cells[i], n_test): i for i in todo}
            for fut in as_completed(futures):
                tell(futures[fut], fut.result(), False)
        except BaseException:
            # an error, Ctrl-C or SIGTERM: stop the cells now (each one's sweep records its running trials
            # as interrupted) rather than wait for them; a kill -9 of this process reaches them too
            for child in multiprocessing.active_children():
                child.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
    return [payloads[i] for i in range(len(suite.cells))]


def _cell_process() -> None:
    """A cell process gets SIGTERM (handled as an interrupt by its sweep) when the comparison dies."""
    import signal

    from autorl.executors.workers import die_with_parent

    die_with_parent(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the comparison's to handle


def _pooled_cell(cell: Cell, test_seeds: int) -> dict[str, Any]:
    """:func:`run_cell` in a pool's process. A SIGTERM from the comparison stops the cell's sweep (it
    records its running trials as interrupted); then the process leaves, where the pool would hand it
    the next queued cell."""
    try:
        return run_cell(cell, test_seeds)
    except KeyboardInterrupt:
        os._exit(130)


def _run_cells(
    suite: Suite, jobs: int | None, progress: SuiteProgress | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    from autorl.analysis import write_report

    payloads = _run_all(suite, jobs or suite.config.jobs, progress)
    rows = [p["row"] for p in payloads]
    curves = [
        {"method": p["row"]["method"], "task": p["row"]["task"], "seed": p["row"]["seed"], **c}
        for p in payloads
        for c in p["curve"]
    ]
    results = pd.DataFrame(rows)
    for col in ("tuning_score", "optimism"):
        if col not in results:  # no cell had an incumbent
            results[col] = float("nan")
    curves_df = pd.DataFrame(curves, columns=["method", "task", "seed", "budget", "time", "score"])
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
    columns = [
        "method",
        "task",
        "seed",
        "score",
        "tuning_score",
        "optimism",
        "budget_used",
        "trials",
        "wall_s",
    ]
    for i, tasks in enumerate(groups):
        out = suite.out if len(groups) == 1 else suite.out / f"group{i + 1}"
        part = scored[scored["task"].isin(tasks)]
        part_curves = curves_df[curves_df["task"].isin(tasks)]
        reports.append(
            write_report(
                part[columns],
                part_curves if len(part_curves) else None,
                out,
                _refs(suite, tasks),
                title if len(groups) == 1 else f"{title}: {', '.join(tasks)}",
                notes=_budget_notes(suite, tasks, results),
                unit=units.pop() if len(units := {_unit(suite, t) for t in tasks}) == 1 else "budget",
            )
        )
    preface = _preface(suite)
    if len(groups) == 1:
        if preface:
            title_line, _, rest = reports[0].read_text(encoding="utf-8").partition("\n")
            write_atomic(reports[0], "\n".join([title_line, "", *preface]) + "\n" + rest)
        return results, curves_df, reports[0]
    index = suite.out / "report.md"
    total = float(results["wall_s"].sum())
    parts = [
        f"# {title}",
        "",
        *preface,
        f"{len(results)} cells, {duration(total)} (h:mm:ss) of cell wall time in all. Tasks that share a "
        "set of methods are compared together; each part has its own report:",
        "",
        *(
            f"- [{', '.join(tasks)}]({r.relative_to(suite.out)})"
            for tasks, r in zip(groups, reports, strict=True)
        ),
    ]
    for tasks, r in zip(groups, reports, strict=True):
        parts += ["", f"## {', '.join(tasks)}", "", *_nested(r, suite.out)]
    index.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return results, curves_df, index


def _preface(suite: Suite) -> list[str]:
    """The suite's own ``notes`` and the tasks a partial run (``--only``) leaves out of its report."""
    lines = [suite.config.notes.strip(), ""] if suite.config.notes else []
    ran = {c.task for c in suite.cells}
    if left := [t for t in suite.config.tasks if t not in ran]:
        lines += [f"Not in this report (tasks of the suite that this run left out): {', '.join(left)}.", ""]
    return lines


def _nested(report: Path, root: Path) -> list[str]:
    """A part's report inside the whole one: its title dropped, headings one level down, images and
    links relative to ``root``."""
    prefix = report.parent.relative_to(root).as_posix()
    lines = []
    for line in report.read_text(encoding="utf-8").splitlines()[1:]:
        if line.startswith("#"):
            line = "#" + line
        lines.append(re.sub(r"\]\((?!https?:|/)([^)]+)\)", lambda m: f"]({prefix}/{m.group(1)})", line))
    while lines and not lines[0].strip():
        lines.pop(0)
    return lines


def publish(report: Path, dest: Path, command: str | None = None) -> Path:
    """Copy a comparison's report to ``dest`` (a markdown file) with the images it shows, which go to
    ``figures/<dest's stem>/`` next to it; links are rewritten to match, and ``command`` (the one that
    regenerates it) is stated under the title. Returns ``dest``."""
    import shutil

    dest = Path(dest)
    figures = dest.parent / "figures" / dest.stem
    figures.mkdir(parents=True, exist_ok=True)
    root = report.parent

    def move(m: re.Match[str]) -> str:
        src = root / m.group(2)
        if not src.is_file():
            return m.group(0)
        name = m.group(2).replace("/", "_")
        shutil.copyfile(src, figures / name)
        return f"{m.group(1)}(figures/{dest.stem}/{name})"

    text = re.sub(r"(!\[[^\]]*\])\((?!https?:|/)([^)]+)\)", move, report.read_text(encoding="utf-8"))
    # A part's own report is inline in the whole one, and the run directory is not published: the link
    # to it becomes plain text.
    text = re.sub(r"\[([^\]]*)\]\((?!https?:|/|figures/)([^)#]+\.md)\)", r"\1", text)
    if command:
        title, _, rest = text.partition("\n")
        text = (
            f"{title}\n\nRegenerated by `{command}` (finished cells are read back from "
            f"`{root}`; a missing one is run).\n{rest}"
        )
    write_atomic(dest, text)
    return dest


def _budget_notes(suite: Suite, tasks: list[str], results: pd.DataFrame) -> list[str]:
    """What every method was charged on each task, and the compute the cells took."""

    lines = []
    for name in tasks:
        task = suite.config.tasks[name]
        b = task.budget
        charged = [
            f"{b.total:,} {_unit(suite, name)}" if b.total else "",
            f"{duration(b.time)} (h:mm:ss) of wall clock" if b.time else "",
        ]
        baselines = sorted({c.method for c in suite.cells if c.task == name and c.sweep.spec.baseline})
        lines.append(
            f"- `{name}` ({task.target}): every method is charged {' and '.join(x for x in charged if x)} "
            f"of tuning per seed, trials of at most {b.steps:,}"
            + (f"; the baselines ({', '.join(baselines)}) train once, at {b.steps:,}." if baselines else ".")
        )
    part = results[results["task"].isin(tasks)]
    lines.append(
        f"- Compute: {duration(float(part['wall_s'].sum()))} of cell wall time ({len(part)} cells, tuning "
        f"{duration(float(part['tuning_s'].sum()))}, test retraining the rest)."
        if "tuning_s" in part
        else f"- Compute: {duration(float(part['wall_s'].sum()))} of cell wall time ({len(part)} cells)."
    )
    return lines


def _unit(suite: Suite, task: str) -> str:
    cell = next(c for c in suite.cells if c.task == task)
    return cell.sweep.info.unit.replace("_", " ")


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
