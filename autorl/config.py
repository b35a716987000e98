"""The sweep config: one YAML file, validated strictly before anything runs.

Every error names the file, the key and the rule, e.g.
``ppo.yaml: budget.min: min <= max must hold, but got (min=9000, max=5000)``.
"""

from __future__ import annotations

import copy
import importlib.util
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from autorl.errors import ConfigError
from autorl.methods import (
    MethodContext,
    MethodSpec,
    PopulationPlan,
    build_plan,
    build_population,
    check_method,
    method_spec,
)
from autorl.registry import closest
from autorl.space import Param, ParamType, SearchSpace
from autorl.targets import (
    TARGETS,
    Aggregate,
    Select,
    TargetInfo,
    TargetKind,
    declaring,
    granularity_range,
    pieces,
    target_info,
    target_kind,
)
from autorl.yamlio import SPACES_DIR, config_path, load_yaml, loads

# The default search spaces and example sweeps ship inside the package (search_spaces/ at the top of
# the repository is a link to them): `space: sb3/ppo.yaml` and `autorl sweep examples/ppo_cartpole.yaml`
# work from any directory, in a checkout or an installed wheel.
STUDY_FILE = "study.log"  # the default storage: an Optuna journal file in the run directory
MAX_TRIALS = 1_000_000
RACE_MAX_BLOCKS = 100
RACE_SEED_BASE = 800_000_000  # race seeds: above every trial's, below autorl reeval's fresh ones (900M)
MAX_WORKERS_RAY = 4096  # a cluster's CPUs are checked when it is reached

Direction = Literal["maximize", "minimize"]

_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_UNITS_B = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"1h"`` or ``"1h30m"``; must be positive and finite."""
    if isinstance(value, bool):
        raise ValueError(f"a duration is seconds or a string such as '15m', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (parts := re.findall(r"(\d+(?:\.\d*)?)\s*([smhd])", value.lower())):
        if re.sub(r"[\d.\s]+[smhd]", "", value.lower()).strip():
            raise ValueError(f"a duration looks like 90, '90s', '15m', '1h30m', got {value!r}")
        seconds = sum(float(n) * _UNITS_S[u] for n, u in parts)
    else:
        raise ValueError(f"a duration looks like 90, '90s', '15m', '1h30m', got {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a duration must be positive and finite, got {value!r}")
    return seconds


def parse_bytes(value: Any) -> int:
    """Bytes from ``4_000_000_000``, ``"4GB"``, ``"512MiB"``; must be positive."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = (
        re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([kmgt]?i?b)\s*", str(value).lower())
        if isinstance(value, str)
        else None
    )
    if m is None or m.group(2) not in _UNITS_B or float(m.group(1)) <= 0:
        raise ValueError(f"a memory size looks like '4GB' or '512MiB', got {value!r}")
    return int(float(m.group(1)) * _UNITS_B[m.group(2)])


Duration = Annotated[float, BeforeValidator(parse_duration)]
Bytes = Annotated[int, BeforeValidator(parse_bytes)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Budget(_Strict):
    """Budget of one trial in the target's unit (env steps for RL, optimiser steps for models).

    ``max`` is what one trial may spend (not needed by a plain function, which has no budget);
    ``min`` is the first rung of multi-fidelity methods; ``report_every`` the interval between
    intermediate evaluations (default: ``min`` if given, else a tenth of ``max``); ``total`` caps the
    budget units of the whole sweep; ``time`` its wall-clock time, summed across resumes.

    ``exact``: round ``max``, ``min`` and ``report_every`` up to multiples of the largest piece the space
    trains in, so that every configuration trains exactly as many units as its rivals at each of them
    (refused where some configuration's piece does not divide the largest). Unset, it is off, except in
    a sweep that races trials (``race`` with a method that is not a population): there it is on
    wherever the pieces nest and the rounded budget fits in ``total``, and the choice is recorded in
    config.yaml (a suite's racing cells keep their task's budget instead).

    ``evaluate_every``: a batch of trials (the engine) evaluates a trial only at reports whose value is
    read (every report where a pruner, experiment tracking or a ``value`` other than ``last`` reads
    them; else the report that may end the trial), and in addition at every report that reaches a multiple of
    ``evaluate_every`` (for learning curves). Other targets evaluate at every report.
    """

    max: PositiveInt | None = None
    min: PositiveInt | None = None
    report_every: PositiveInt | None = None
    total: PositiveInt | None = None
    time: Duration | None = None
    evaluate_every: PositiveInt | None = None
    exact: bool | None = None  # None (unset): off, or resolved to true or false by a racing sweep

    @model_validator(mode="after")
    def _order(self) -> Budget:
        if self.max is None:
            return self
        if self.min is not None and self.min > self.max:
            raise ValueError(f"min <= max must hold, but got (min={self.min}, max={self.max})")
        if self.total is not None and self.total < (self.min or self.max):
            raise ValueError(
                f"total >= {'min' if self.min else 'max'} must hold (one trial must fit), "
                f"but got (total={self.total}, {'min' if self.min else 'max'}={self.min or self.max})"
            )
        if self.report_every is not None and self.report_every > self.max:
            raise ValueError(f"report_every <= max must hold, but got ({self.report_every}, max={self.max})")
        if self.evaluate_every is not None and self.evaluate_every > self.max:
            raise ValueError(
                f"evaluate_every <= max must hold, but got ({self.evaluate_every}, max={self.max})"
            )
        return self

    @property
    def steps(self) -> int:
        """``max``, or 1 where none is needed (a plain function)."""
        return self.max or 1

    @property
    def interval(self) -> int:
        return self.report_every or self.min or max(1, self.steps // 10)


class ValueSpec(_Strict):
    """Which of a trial's evaluations is its value: the last, the best, or the mean of the last k."""

    select: Select = Select.LAST
    k: PositiveInt = 3


def _race_switch(value: Any) -> Any:
    """``race: true`` races with the defaults; ``race: false`` does not race."""
    if value is True:
        return {}
    return None if value is False else value


class Race(_Strict):
    """Racing the incumbent on fresh seeds (:mod:`autorl.methods.race`; docs/config.md, "Racing").

    ``share``: the most of the sweep's budget units (and trials) re-evaluations may take; ``seeds``: the
    most race blocks (fresh seeds, ``seeds_per_trial`` each) one configuration is judged on. A population
    (PBT, PB2) races its final members instead, training nothing: the top ``share`` of them (at least
    two) are evaluated on ``seeds`` race blocks each.
    """

    share: Annotated[float, Field(gt=0, lt=1)] = 0.25
    seeds: Annotated[int, Field(ge=2, le=RACE_MAX_BLOCKS)] = 10


# wandb.init's arguments a sweep may set (docs/tracking.md); the run's name, group and config are autorl's
WANDB_KEYS = ("project", "entity", "mode", "tags", "notes", "group", "job_type")
# each tracker: the module it needs and the pip extra that installs it
TRACKERS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


class Tracking(_Strict):
    """Experiment tracking (docs/tracking.md): ``tensorboard: true`` writes event files under the run
    directory; ``mlflow: true`` a SQLite store in it (or ``mlflow: URI``, a tracking server or store);
    ``wandb: true`` (or a mapping of wandb.init's arguments, :data:`WANDB_KEYS`) a W&B run per trial."""

    tensorboard: bool = False
    mlflow: bool | str = False
    wandb: bool | dict[str, Any] = False

    @field_validator("wandb")
    @classmethod
    def _wandb_keys(cls, value: bool | dict[str, Any]) -> bool | dict[str, Any]:
        if isinstance(value, dict) and (bad := sorted(set(value) - set(WANDB_KEYS))):
            raise ValueError(f"it takes {', '.join(WANDB_KEYS)}; {bad[0]!r} is not one of them")
        return value

    @property
    def on(self) -> list[str]:
        """The trackers switched on, by name."""
        return [name for name in TRACKERS if getattr(self, name)]


class SweepConfig(_Strict):
    """The fields of a sweep file. See docs/config.md for each one."""

    name: str | None = None
    target: str
    args: dict[str, Any] = Field(default_factory=dict)
    space: str | dict[str, Any] | None = None
    metric: str | list[str] | None = None
    direction: Direction | list[Direction] | None = None
    budget: Budget = Field(default_factory=Budget)
    method: str | dict[str, Any] = "tpe"
    trials: Annotated[int, Field(ge=1, le=MAX_TRIALS)] = 20
    workers: Annotated[int, Field(ge=1, le=MAX_WORKERS_RAY)] = 1
    seed: int = 0
    out: str | None = None
    seeds_per_trial: PositiveInt = 1
    aggregate: Aggregate = Aggregate.MEAN
    value: Select | ValueSpec = Select.LAST
    executor: Literal["embedded", "ray", "tune"] = "embedded"
    storage: str | None = None
    ray_address: str | None = None
    ray_place_timeout: Duration = 30.0
    trial_timeout: Duration | None = None
    trial_memory: Bytes | None = None
    batch: Annotated[int, Field(ge=1, le=4096)] = 1
    checkpoint_every: Duration = 10.0
    race: Annotated[Race | None, BeforeValidator(_race_switch)] = None
    tracking: Tracking = Field(default_factory=Tracking)

    @model_validator(mode="after")
    def _method_has_name(self) -> SweepConfig:
        if isinstance(self.method, dict) and not isinstance(self.method.get("name"), str):
            raise ValueError("method must be a name or a mapping with a 'name' key")
        return self


# What a resume may change: the rest must match the run it continues (docs/config.md, "Resume").
RESUMABLE_CHANGES = (
    "trials",
    "workers",
    "budget.time",
    "trial_timeout",
    "trial_memory",
    "executor",
    "ray_address",
    "ray_place_timeout",
    "checkpoint_every",
    "tracking",
)


@dataclass(frozen=True)
class Sweep:
    """A validated, resolved sweep: everything an executor needs, derived from one config."""

    config: SweepConfig
    source: str
    space: SearchSpace
    metrics: tuple[str, ...]
    directions: tuple[Direction, ...]
    info: TargetInfo
    method: str
    method_options: dict[str, Any]
    out: Path
    study_name: str
    spec: MethodSpec
    base_dir: Path  # where a target reference next to the config is looked up
    # the smallest and largest piece the target trains over the space (TargetInfo.granularity)
    granularity: tuple[int, int] = (1, 1)

    @property
    def value_spec(self) -> ValueSpec:
        v = self.config.value
        return v if isinstance(v, ValueSpec) else ValueSpec(select=v)

    @property
    def storage_url(self) -> str:
        """The storage: ``storage``, else ``$AUTORL_STORAGE``, else an Optuna journal file in the run
        directory (``study.log``: an append-only log, about 1 ms a trial against SQLite's 10)."""
        from autorl.urls import STORAGE_ENV

        return (
            self.config.storage
            or os.environ.get(STORAGE_ENV)
            or f"journal:{(self.out / STUDY_FILE).resolve()}"
        )

    @property
    def shared_storage(self) -> bool:
        """True when the storage was given (``storage`` or ``$AUTORL_STORAGE``): other processes may
        share it."""
        from autorl.urls import STORAGE_ENV

        return bool(self.config.storage or os.environ.get(STORAGE_ENV))

    @property
    def maximize(self) -> bool:
        return self.directions[0] == "maximize"

    def trial_seeds(self, number: int) -> list[int]:
        """Seeds of trial (or member) ``number``: distinct across a sweep, reproducible from its seed."""
        k = self.config.seeds_per_trial
        start = self.config.seed * 1_000_003 + number * k
        return list(range(start, start + k))

    def race_seeds(self, block: int) -> list[int]:
        """Seeds of race block ``block`` (1, 2, ...): the same for every configuration of the sweep (so
        configurations are compared on common seeds), never a trial's tuning seed."""
        k = self.config.seeds_per_trial
        start = RACE_SEED_BASE + (self.config.seed % 1_000) * RACE_MAX_BLOCKS * 100 + (block - 1) * k
        return list(range(start, start + k))

    def trial_args(self) -> dict[str, Any]:
        """The fixed arguments every trial's target gets: the config's ``args`` and those of its method
        (a level sampler, the meta-gradient switches), which retraining a trial's config needs too."""
        extra = (
            {} if self.spec.population else build_plan(self.method, self.context(), self.method_options).args
        )
        return {**self.config.args, **extra}

    def context(self, stream: int = 0) -> MethodContext:
        """What the sweep's method may know of it."""
        return method_context(self.config, self.space, self.directions, stream)

    @cached_property
    def population(self) -> PopulationPlan:
        """The population method's plan (population methods only)."""
        return build_population(self.method, self.context(), self.method_options)

    def portable(self) -> dict[str, Any]:
        """What another process needs to rebuild this sweep with :func:`parse_sweep`: the keys the
        user set, with the space, target and out resolved (never the storage's URL, nor the tracking,
        which only the orchestrator writes: a worker needs none of its libraries)."""
        data = self.config.model_dump(mode="json", exclude_unset=True, exclude={"storage", "tracking"})
        data.update(
            space=self.space.to_dict(), target=self.config.target, out=str(self.out), name=self.study_name
        )
        return data

    def resolved(self) -> dict[str, Any]:
        """The config with defaults filled in, as written to the run directory (no storage password)."""
        from autorl.urls import redact

        data = self.config.model_dump(mode="json")
        data.update(
            space=self.space.to_dict(),
            metric=list(self.metrics),
            direction=list(self.directions),
            out=str(self.out),
            name=self.study_name,
            storage=redact(self.config.storage) if self.config.storage else None,
        )
        return data


def _error_from_pydantic(
    exc: ValidationError, source: str, models: dict[str, type[BaseModel]] | None = None
) -> ConfigError:
    """The first error as ``FILE: KEY: RULE``; an unknown key comes first and gets a "did you mean"."""
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    err = errors[0]
    loc = [
        str(x)
        for x in err["loc"]
        if not re.fullmatch(
            r"(str|int|float|dict\[.*\]|list\[.*\]|literal\[.*\]|.*-enum|function-before\[.*\])", str(x)
        )
    ]
    key = ".".join(loc) or None
    if err["type"] == "extra_forbidden":
        nested: dict[str, type[BaseModel]] = {"budget": Budget, "value": ValueSpec, **(models or {})}
        parent = (models or {}).get("") or SweepConfig
        if len(loc) > 1:
            parent = nested.get(loc[-2], nested.get(loc[0], parent))
        valid = list(parent.model_fields)
        close = closest(loc[-1], valid)
        hint = f" (did you mean {close!r}?)" if close else ""
        rule = f"unknown key{hint}; valid keys: {', '.join(valid)}"
    elif err["type"] == "missing":
        rule = "is required"
    elif err["type"] == "value_error":
        rule = err["msg"].removeprefix("Value error, ")
    else:
        rule = f"{err['msg'].removeprefix('Value error, ')}, got {err.get('input')!r}"
    return ConfigError(rule, key, source)


def apply_overrides(data: dict[str, Any], overrides: list[str], source: str) -> dict[str, Any]:
    """Apply ``key=value`` overrides; dotted keys reach into mappings and values are parsed as YAML."""
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set needs key=value, got {item!r}", file=source)
        value = loads(raw, f"--set {item}")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None or (isinstance(child, str) and part == "method"):
                child = {"name": child} if isinstance(child, str) else {}
                node[part] = child
            if not isinstance(child, dict):
                raise ConfigError(f"cannot set {key!r}: {part!r} is not a mapping", key, source)
            node = child
        node[parts[-1]] = value
    return data


def resolve_space_path(ref: str, base_dir: Path | None = None) -> Path:
    """A space file: relative to the config's directory, the working directory, or search_spaces/."""
    p = Path(ref).expanduser()
    for candidate in ([base_dir / p] if base_dir and not p.is_absolute() else []) + [p, SPACES_DIR / ref]:
        if candidate.is_file():
            return candidate
    return p


def parse_sweep(
    data: Any,
    source: str = "<config>",
    out: str | None = None,
    validated: Callable[[SweepConfig], None] | None = None,
) -> Sweep:
    """Validate a config mapping and resolve target, space, metrics and method; nothing runs.
    ``validated`` is called with the checked keys before the target is resolved (the executors start
    a worker then, see :func:`autorl.executors.process.warm_start`)."""
    if not isinstance(data, dict):
        raise ConfigError("a sweep config must be a mapping of keys", file=source)
    try:
        cfg = SweepConfig.model_validate(data)
    except ValidationError as exc:
        raise _error_from_pydantic(exc, source) from None
    if out is not None:
        cfg = cfg.model_copy(update={"out": out})
    if validated is not None:
        validated(cfg)
    base_dir = (
        Path(source).resolve().parent
        if source not in ("<config>", "") and Path(source).exists()
        else Path.cwd()
    )
    try:
        cfg = cfg.model_copy(update=_resolved_references(cfg, base_dir))
        return _resolve(cfg, source, base_dir)
    except ConfigError as exc:
        raise (exc if exc.file else exc.at(file=source)) from None


def _resolve(cfg: SweepConfig, source: str, base_dir: Path) -> Sweep:
    """Resolve a validated config into a Sweep, stage by stage; every refusal names its key."""
    info = _target(cfg)
    method, options = _method(cfg)
    cfg, space, options = _space(cfg, info, method, options, base_dir)
    granularity = granularity_range(info, cfg.args, space)
    if cfg.budget.exact is None and cfg.race is not None and not method_spec(method).population:
        cfg = _exact_for_race(cfg, info, space)
    elif cfg.budget.exact:
        cfg = _exact_budget(cfg, info, space)
    cfg = _fit_budget(cfg, info, granularity[1])
    metrics, directions = _objectives(cfg, info)
    if cfg.aggregate.pessimistic and len(metrics) > 1:
        raise ConfigError(
            f"{cfg.aggregate.value} leans against one objective, but several are given; use mean, median "
            "or iqm",
            "aggregate",
        )
    name = cfg.name or (Path(source).stem if source != "<config>" else "sweep")
    out_dir = Path(cfg.out or f"runs/{name}").expanduser()
    ctx = method_context(cfg, space, directions)
    spec = check_method(method, ctx, options)
    # a population smaller than workers runs on as many processes as it has members
    size = build_population(method, ctx, options).size if spec.population else cfg.workers
    _check_resources(cfg, processes=min(cfg.workers, size))
    _check_composition(cfg, info, method, options, spec, ctx, granularity[1])
    if cfg.executor == "tune":
        _check_tune(
            cfg,
            spec.population,
            len(metrics),
            searched=any(p.type != ParamType.FIXED for p in space.values()),
        )
    return Sweep(
        cfg, source, space, metrics, directions, info, method, options, out_dir, name, spec, base_dir,
        granularity,
    )  # fmt: skip


def _target(cfg: SweepConfig) -> TargetInfo:
    """The target's declared info; a user's reference is imported now, so a typo fails before running."""
    if cfg.target not in TARGETS:
        try:
            target_kind(TARGETS.get(cfg.target))
        except ConfigError as exc:
            raise exc.at("target") from None
    info = target_info(cfg.target)
    if cfg.budget.max is None and target_kind(TARGETS.get(cfg.target)) is not TargetKind.FUNCTION:
        raise ConfigError(
            f"is required: {cfg.target} trains in {info.unit}, so each trial needs a budget", "budget.max"
        )
    return info


def _method(cfg: SweepConfig) -> tuple[str, dict[str, Any]]:
    """The method's name and options."""
    if isinstance(cfg.method, dict):
        return cfg.method["name"], {k: v for k, v in cfg.method.items() if k != "name"}
    return cfg.method, {}


def _space(
    cfg: SweepConfig, info: TargetInfo, method: str, options: dict[str, Any], base_dir: Path
) -> tuple[SweepConfig, SearchSpace, dict[str, Any]]:
    """The search space, checked by the target; for a baseline, its configuration as fixed values (the
    mapping then replaces a file name in the recorded config, so the run directory holds the values)."""
    baseline: dict[str, Any] | None = None
    if method_spec(method).baseline:
        baseline = load_baseline(options.get("config"), base_dir)
        options = {**options, "config": baseline}
        update: dict[str, Any] = {"method": {"name": method, **options}}
        if "trials" not in cfg.model_fields_set:
            update["trials"] = 1
        cfg = cfg.model_copy(update=update)
        space = baseline_space(baseline)
    else:
        space = _load_space(cfg, info, base_dir)
    if info.check:
        from autorl.registry import load_reference

        check = load_reference(info.check)
        try:
            check(cfg.args, [] if baseline is not None else list(space))
        except ConfigError as exc:  # a searched name the target does not take is the space's error
            where = "space" if exc.key in space and exc.key not in cfg.args else "args"
            raise exc.at("args" if baseline is not None else where) from None
        if baseline is not None:  # its values are known: the target checks them as it checks args
            try:
                check({**cfg.args, **baseline}, [])
            except ConfigError as exc:
                raise exc.at("method.config") from None
    return cfg, space, options


def _objectives(cfg: SweepConfig, info: TargetInfo) -> tuple[tuple[str, ...], tuple[Direction, ...]]:
    """The metrics and their directions (the target's defaults where none are given)."""
    metrics = tuple(cfg.metric) if isinstance(cfg.metric, list) else (cfg.metric or info.metric,)
    directions: tuple[Any, ...] = (
        tuple(cfg.direction) if isinstance(cfg.direction, list) else (cfg.direction or info.direction,)
    )
    if len(directions) == 1 and len(metrics) > 1:
        directions = directions * len(metrics)
    if len(metrics) != len(directions):
        raise ConfigError(
            f"metric and direction must have the same length, got {len(metrics)} and {len(directions)}",
            "direction",
        )
    return metrics, directions


def _check_resources(cfg: SweepConfig, processes: int) -> None:
    """Workers this machine has (``processes``: the worker processes the sweep will start), and a
    storage URL that can be used."""
    from autorl.urls import STORAGE_ENV, check_storage_url

    if cfg.executor == "embedded" and cfg.workers > (cores := os.cpu_count() or 1):
        raise ConfigError(
            f"workers <= {cores} (this machine's cores) must hold for the embedded executor, got "
            f"{cfg.workers}; use executor: ray with a cluster for more",
            "workers",
        )
    threads = cfg.args.get("threads", 1)  # the engine's torch threads per worker
    if cfg.executor == "embedded" and isinstance(threads, int) and processes * threads > cores:
        raise ConfigError(
            f"workers x threads <= {cores} (this machine's cores) must hold, got {processes} x {threads}: "
            "threads fighting over cores run 3-15x slower; use more workers of one thread",
            "args.threads",
        )
    storage = cfg.storage or os.environ.get(STORAGE_ENV)
    if storage:
        check_storage_url(storage)
    for name in cfg.tracking.on:  # a missing library is refused now, not after the first trial
        if importlib.util.find_spec(TRACKERS[name]) is None:
            raise ConfigError(
                f"{name} is not installed: pip install 'autorl[{name}]' (or pip install {TRACKERS[name]})",
                f"tracking.{name}",
            )


def _check_tune(cfg: SweepConfig, population: bool, objectives: int, searched: bool) -> None:
    """What ``executor: tune`` cannot run, refused in one line pointing at ``executor: ray``."""
    from autorl.urls import STORAGE_ENV

    refusals = [
        (not searched, "space", "nothing is searched (a fixed configuration): Tune's searcher needs a space"),
        (cfg.trial_timeout is not None, "trial_timeout", "its workers are Tune's trials, not autorl's"),
        (cfg.trial_memory is not None, "trial_memory", "its workers are Tune's trials, not autorl's"),
        (population, "method", "a population method is autorl's own loop (Tune's PBT runs on tune_target)"),
        (cfg.batch > 1, "batch", "a batch of trials trains as one computation on one worker"),
        (objectives > 1, "metric", "several objectives are not run through Tune"),
        (cfg.race is not None, "race", "racing interleaves race blocks with the sampler's trials"),
        (
            bool(cfg.storage or os.environ.get(STORAGE_ENV)),
            "storage",
            "Tune's restore resumes a sweep, not a shared study",
        ),
    ]
    for refused, key, why in refusals:
        if refused:
            raise ConfigError(f"executor: tune cannot run this ({why}); use executor: ray", key)


def method_context(
    cfg: SweepConfig, space: SearchSpace, directions: tuple[str, ...], stream: int = 0
) -> MethodContext:
    """What a sweep's method may know of it."""
    b = cfg.budget
    return MethodContext(
        space=space,
        directions=directions,
        seed=cfg.seed,
        stream=stream,
        workers=cfg.workers,
        trials=cfg.trials,
        budget_max=b.steps,
        budget_min=b.min,
        budget_total=b.total,
        report_every=b.report_every,
        target=cfg.target,
        batch=cfg.batch,
    )


def _check_composition(
    cfg: SweepConfig,
    info: TargetInfo,
    method: str,
    options: dict[str, Any],
    spec: MethodSpec,
    ctx: MethodContext,
    piece: int,
) -> None:
    """What the method and the target can do together: a population's keys, its interval against the
    target's pieces, batches only of a target that declares them."""
    if spec.population:
        _check_population(cfg, method, info, ctx.space)
        plan = build_population(method, ctx, options)
        interval = plan.interval
        if "decide_on" in options:
            _check_decide_on(cfg, method, info, ctx, plan.decides_on)
        if "interval" in options and interval < piece:
            raise _below_piece(cfg.target, info, piece, "interval", interval).at("method.interval")
    if cfg.race is not None:
        _check_race(cfg, method, spec, ctx, info)
    if cfg.budget.evaluate_every is not None and (cfg.batch <= 1 or spec.population):
        raise ConfigError(
            "sets where a batch of trials (batch > 1) evaluates; here every report is evaluated (a "
            "population's members after every interval, a trial at each report): remove it",
            "budget.evaluate_every",
        )
    if cfg.batch > 1:
        if spec.population:
            raise ConfigError(
                f"a {method} population is trained as one batch when its target can: its size is the method "
                "option 'population'; remove batch",
                "batch",
            )
        if info.batch is None:
            raise ConfigError(
                f"{cfg.target} trains one configuration at a time: batch > 1 needs a target that trains many "
                f"as one computation ({', '.join(declaring(lambda i: i.batch is not None))})",
                "batch",
            )


def _check_race(
    cfg: SweepConfig, method: str, spec: MethodSpec, ctx: MethodContext, info: TargetInfo
) -> None:
    """Racing judges the configurations a sampler-based method tried, or a population's final members
    (on a target that evaluates its agents on given seeds), on one objective."""
    metric = _objectives(cfg, info)[0][0]
    if spec.population and (why := population_cannot_race(cfg.target, info, metric)):
        raise ConfigError(f"a {method} population races its final members {why}", "race")
    if spec.baseline:
        raise ConfigError(
            f"{method} runs one given configuration, so there is nothing to race; remove race", "race"
        )
    if len(ctx.directions) > 1:
        raise ConfigError("racing needs one objective, but several are given; remove race", "race")
    if cfg.seeds_per_trial > 100:  # race seeds are laid out 100 a block (Sweep.race_seeds)
        raise ConfigError("racing takes seeds_per_trial <= 100", "race")


def population_cannot_race(target: str, info: TargetInfo, metric: str) -> str | None:
    """Why a population on ``target`` cannot race its final members on ``metric`` (None where it can):
    a race evaluates them on fresh seeds, which takes a target that evaluates on given seeds, and
    trains nothing, so it gives no training metric. The sweep refuses such a race; a suite leaves the
    population unraced."""
    if not info.evaluates:
        can = ", ".join(declaring(lambda i: i.evaluates))
        return (
            f"on seeds, which {target} cannot evaluate on (it declares no evaluates; targets that do: "
            f"{can}); remove race"
        )
    if metric in info.training_metrics:
        return (
            f"by evaluating them on fresh seeds, which gives no {metric} ({target}'s training reports "
            f"it); race on {info.metric}, or remove race"
        )
    return None


def _fit_budget(cfg: SweepConfig, info: TargetInfo, piece: int) -> SweepConfig:
    """Refuse a ``budget.max`` smaller than the largest piece the target trains (``piece``: one rollout of
    the space's largest configuration); a default ``report_every`` of ``max // 10`` is raised to it. A
    smaller ``min`` or ``report_every`` is kept: such a configuration reports at the end of the piece
    that passes each multiple of it (with the steps it really trained)."""
    b = cfg.budget
    if piece <= 1 or b.max is None:
        return cfg
    if b.max < piece:
        raise _below_piece(cfg.target, info, piece, "max", b.max).at("budget.max")
    if b.report_every is None and b.min is None and b.interval < piece:
        return cfg.model_copy(update={"budget": b.model_copy(update={"report_every": piece})})
    return cfg


def _exact_budget(cfg: SweepConfig, info: TargetInfo, space: SearchSpace) -> SweepConfig:
    """``budget.exact``: ``max``, ``min`` and ``report_every`` rounded up to multiples of the largest piece
    any configuration trains in, which every other piece must divide: then each configuration trains
    exactly the same units at each of them. Refused in one line where the pieces do not nest."""
    found = pieces(info, cfg.args, space)
    if found is None:
        raise ConfigError(
            f"{cfg.target}'s pieces (one {info.granule}) cannot be listed over this space: a number range "
            "changes the piece, or the categorical choices make more than 4,096 combinations; make the "
            "parameters that set it categorical (or pow2 integers) and fix the others in args",
            "budget.exact",
        )
    largest = max(found)
    odd = sorted(p for p in found if largest % p)
    if odd:
        raise ConfigError(
            f"configurations of this space train in pieces of {', '.join(f'{p:,}' for p in sorted(found))} "
            f"{info.unit.replace('_', ' ')}, and {odd[0]:,} does not divide {largest:,}: no budget is a "
            "whole number of pieces for all of them",
            "budget.exact",
        )
    b = cfg.budget
    if b.max is None:
        return cfg
    marks = {"max": b.max, "min": b.min, "report_every": b.report_every}
    if b.min is None and b.report_every is None:
        marks["report_every"] = b.interval  # the default, max // 10, is a mark too
    rounded = {k: -(-v // largest) * largest for k, v in marks.items() if v is not None}
    first = "min" if b.min is not None else "max"  # one trial must fit in total
    if b.total is not None and b.total < rounded[first]:
        raise ConfigError(
            f"rounds {first} up to {rounded[first]:,} (a multiple of the largest piece, {largest:,}), more "
            f"than total = {b.total:,}: raise total or lower {first}",
            "budget.exact",
        )
    return cfg.model_copy(update={"budget": b.model_copy(update=rounded)})


def _exact_for_race(cfg: SweepConfig, info: TargetInfo, space: SearchSpace) -> SweepConfig:
    """A racing sweep compares configurations on equal units: ``budget.exact`` left unset is on where
    the space's pieces nest (and one trial still fits in ``total``), else off, as before; the choice is
    written into the config, so config.yaml records it and a resume makes the same one. Where the
    marks are already whole pieces they stay as written (a run from before this default resumes)."""
    b = cfg.budget
    try:
        rounded = _exact_budget(cfg, info, space).budget
    except ConfigError:
        return cfg.model_copy(update={"budget": b.model_copy(update={"exact": False})})
    same = (rounded.max, rounded.min, rounded.interval) == (b.max, b.min, b.interval)
    return cfg.model_copy(update={"budget": (b if same else rounded).model_copy(update={"exact": True})})


def _below_piece(target: str, info: TargetInfo, piece: int, key: str, value: int) -> ConfigError:
    return ConfigError(
        f"{target} trains in whole pieces of one {info.granule}, up to {piece:,} "
        f"{info.unit.replace('_', ' ')} with these args and this space: {key} >= {piece} must hold "
        f"(the smallest valid value), but got {value}"
    )


def _check_decide_on(
    cfg: SweepConfig, method: str, info: TargetInfo, ctx: MethodContext, decides_on: str | None
) -> None:
    """``decide_on``: the sweep's own metric, or a training metric the target declares (a return, which
    the decisions maximise, so the sweep must maximise too)."""
    own = cfg.metric if isinstance(cfg.metric, list) else [cfg.metric or info.metric]
    if decides_on is None or decides_on in own:
        return
    if decides_on not in info.training_metrics:
        can = ", ".join(declaring(lambda i: decides_on in i.training_metrics)) or "none"
        raise ConfigError(
            f"{method} decides on {decides_on!r}, which {cfg.target} does not report while training "
            f"(it declares {sorted(info.training_metrics) or 'none'}; targets that do: {can})",
            "method.decide_on",
        )
    if ctx.directions[0] != "maximize":
        raise ConfigError(
            f"{method} ranks members by {decides_on!r}, a return it maximises, while the sweep minimises "
            f"{own[0]!r}; remove decide_on, or maximise",
            "method.decide_on",
        )


def _check_population(cfg: SweepConfig, method: str, info: TargetInfo, space: SearchSpace) -> None:
    """Keys that have no meaning for a population are refused, not ignored; a target that trains the
    whole population as one computation needs every member to share its ``shared`` keys."""
    if "trials" in cfg.model_fields_set:
        raise ConfigError(
            f"a {method} sweep trains one population: its size is the method option 'population', "
            "so trials has no meaning here; remove it",
            "trials",
        )
    shared = info.shared_keys()
    for p in space.values():
        if p.name in shared and p.type.value != "fixed":
            raise ConfigError(
                f"{cfg.target} trains the whole population as one computation, so every member shares "
                f"{p.name!r}: make it fixed (or set it in args); search it with a static method",
                f"space.{p.name}",
            )


def _resolved_references(cfg: SweepConfig, base_dir: Path) -> dict[str, Any]:
    """File references made absolute (so the run directory works from anywhere later); a module
    reference that only exists next to the config or in the working directory becomes a file one."""
    from autorl.registry import find_local_module

    update: dict[str, Any] = {}
    module, sep, attr = cfg.target.partition(":")
    if sep and module.endswith(".py"):
        for base in (base_dir, Path.cwd()):
            if (base / module).expanduser().is_file():
                update["target"] = f"{(base / module).expanduser().resolve()}:{attr}"
                break
    elif sep and cfg.target not in TARGETS and (found := find_local_module(module, (base_dir, Path.cwd()))):
        update["target"] = f"{found}:{attr}"
    if cfg.storage and cfg.storage.startswith("journal:"):
        update["storage"] = f"journal:{Path(cfg.storage.removeprefix('journal:')).expanduser().resolve()}"
    return update


def _load_space(cfg: SweepConfig, info: TargetInfo, base_dir: Path) -> SearchSpace:
    if isinstance(cfg.space, dict):
        try:
            return SearchSpace.from_dict(cfg.space)
        except ConfigError as exc:
            raise exc.at("space") from None
    ref = cfg.space or info.space
    if ref is None:
        raise ConfigError("is required: this target has no default search space", "space")
    path = resolve_space_path(ref, base_dir)
    if not path.is_file():
        raise ConfigError(f"search space file {ref!r} not found (looked here and in {SPACES_DIR})", "space")
    return SearchSpace.from_yaml(path)


def load_baseline(ref: Any, base_dir: Path | None = None) -> dict[str, Any]:
    """The configuration a baseline method runs: ``ref`` itself (a mapping) or the YAML mapping in file
    ``ref``, looked up as a space file is (:func:`resolve_space_path`).

    Raises ConfigError at ``method.config`` for a missing, empty or unreadable configuration.
    """
    key = "method.config"
    if ref is None:
        raise ConfigError(
            "is required: the configuration to run, a mapping of hyperparameters or a YAML file of one "
            "(e.g. baselines/zoo/sb3_ppo_cartpole.yaml)",
            key,
        )
    if isinstance(ref, str):
        path = resolve_space_path(ref, base_dir)
        if not path.is_file():
            raise ConfigError(f"baseline file {ref!r} not found (looked here and in {SPACES_DIR})", key)
        data = load_yaml(path)
        data = {} if data is None else data  # a file of comments only
        where = f" (in {path})"
    else:
        data, where = ref, ""
    if not isinstance(data, dict):
        raise ConfigError(
            f"must be a mapping of hyperparameters to values{where}, got {type(data).__name__}", key
        )
    if not data:
        raise ConfigError(f"must give at least one hyperparameter{where}, got an empty mapping", key)
    for name, value in data.items():
        if not isinstance(name, str):
            raise ConfigError(f"hyperparameter names must be strings{where}, got {name!r}", key)
        if isinstance(value, dict) and value.get("type") in {t.value for t in ParamType}:
            raise ConfigError(
                f"a baseline gives values, not a search space{where}: got {value!r}; write its value, "
                "or search it with a search method",
                f"{key}.{name}",
            )
    return dict(data)


def baseline_space(config: dict[str, Any]) -> SearchSpace:
    """A baseline's configuration as a space: one ``fixed`` parameter per key."""
    return SearchSpace([Param(name, ParamType.FIXED, value=value) for name, value in config.items()])


def load_sweep(
    path: str | Path,
    overrides: list[str] | None = None,
    out: str | None = None,
    validated: Callable[[SweepConfig], None] | None = None,
) -> Sweep:
    """Read, override and validate a sweep file (a path, or a shipped example's name); ``validated`` as
    for :func:`parse_sweep`."""
    path = config_path(path)
    source = str(path)
    data = load_yaml(path)
    if overrides:
        data = apply_overrides(data or {}, overrides, source)
    return parse_sweep(data, source, out, validated)
