"""The suite: its schema (tasks, methods, seeds, budgets) and the cells it expands to."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from autorl.config import (
    Budget,
    Direction,
    Sweep,
    _error_from_pydantic,
    apply_overrides,
    parse_sweep,
    population_cannot_race,
)
from autorl.errors import ConfigError
from autorl.evaluate import fresh_seeds
from autorl.methods import METHODS, method_spec
from autorl.targets import target_info
from autorl.yamlio import load_yaml


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
    race: Any = None  # every tuning method's sweep races (the sweep key `race`); baselines never do
    # every cell's executor; with tune, the cells Tune cannot run (populations, baselines, batches,
    # races) run on ray
    executor: Literal["embedded", "ray", "tune"] = "embedded"
    out: str | None = None


def _executor(executor: str, tunes: bool) -> dict[str, str]:
    """A cell's executor key: the suite's, except that a cell Tune cannot run goes to ``ray``."""
    if executor == "embedded":
        return {}
    return {"executor": "ray" if executor == "tune" and not tunes else executor}


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
        evaluates = cfg.race not in (None, False) and _population_races(task)
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
            baseline = spec is not None and spec.baseline
            one_run = spec is not None and (spec.population or baseline)
            # a suite's race reaches every tuner that can race: not a baseline, nor a population on a
            # target that cannot evaluate its agents on seeds or on a training metric
            races = not baseline and not (spec is not None and spec.population and not evaluates)
            racing = cfg.race not in (None, False) and races
            population = spec is not None and spec.population
            tunes = not (population or baseline) and task.batch == 1 and not racing  # what tune can run
            if mname in task.baselines:  # this task's configuration of a fixed method
                method = {**({} if isinstance(method, str) else method), "name": name}
                method["config"] = task.baselines[mname]
            for k, seed in enumerate(seeds):
                data = {
                    **task.model_dump(exclude={"ref", "methods", "batch", "baselines"}, exclude_none=True),
                    "method": method,
                    **({} if one_run else {"trials": cfg.max_trials}),
                    **({"batch": task.batch} if task.batch > 1 and not one_run else {}),
                    **({"race": cfg.race} if racing else {}),
                    **_executor(cfg.executor, tunes),
                    "seed": seed,
                    "name": f"{tname}-{mname}-s{seed}",
                }
                if racing:  # every method of a task is charged and tested at the same marks: a racing
                    # cell keeps the task's budget as written (budget.exact as the task sets it, else off)
                    data["budget"] = {"exact": False, **data["budget"]}
                try:
                    # keyed by its resolved definition (the contents of its space and baseline files
                    # included): a changed suite never reuses an old result
                    resolved = parse_sweep(data, source).resolved()
                    # where a cell runs and what tracks it are not what it is (keys as before they came)
                    kept = {
                        k: v for k, v in resolved.items() if k not in ("out", "name", "storage", "tracking")
                    }
                    if not kept["budget"]["exact"]:  # off: keyed as before racing cells recorded it
                        kept["budget"] = {**kept["budget"], "exact": None}
                    key = _key({**kept, "executor": "embedded"})
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


def _population_races(task: TaskSpec) -> bool:
    """Whether a population on ``task`` can race its final members (:func:`population_cannot_race`;
    False for a target that cannot be loaded: its cells' own validation then says why)."""
    try:
        info = target_info(task.target)
    except Exception:  # an unknown or broken target: parse_sweep reports it in one line
        return False
    return population_cannot_race(task.target, info, task.metric or info.metric) is None


def _key(definition: Any) -> str:
    """A short digest of a cell's resolved definition."""
    return hashlib.sha256(json.dumps(definition, sort_keys=True, default=str).encode()).hexdigest()[:10]
