"""The sweep config: one YAML file, validated strictly before anything runs.

Every error names the file, the key and the rule, e.g.
``ppo.yaml: budget.min: min <= max must hold, but got (min=9000, max=5000)``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

from autorl.errors import ConfigError
from autorl.space import SearchSpace
from autorl.targets import TARGETS, Aggregate, Select, TargetInfo, target_info
from autorl.yamlio import load_yaml, loads

REPO_ROOT = Path(__file__).resolve().parent.parent
SPACES_DIR = REPO_ROOT / "search_spaces"

Direction = Literal["maximize", "minimize"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Budget(_Strict):
    """Budget of one trial in the target's unit (env steps for RL, optimiser steps for models).

    ``min`` is the first rung of multi-fidelity methods; ``report_every`` the interval between
    intermediate evaluations (default: ``min`` if given, else a tenth of ``max``); ``total`` caps the
    budget of the whole sweep: no trial starts once the trials so far consumed it (the trial count
    still caps it too). Comparisons use it to charge every method the same.
    """

    max: PositiveInt
    min: PositiveInt | None = None
    report_every: PositiveInt | None = None
    total: PositiveInt | None = None

    @model_validator(mode="after")
    def _order(self) -> Budget:
        if self.min is not None and self.min > self.max:
            raise ValueError(f"min <= max must hold, but got (min={self.min}, max={self.max})")
        if self.total is not None and self.total < (self.min or self.max):
            raise ValueError(
                f"total >= {'min' if self.min else 'max'} must hold (one trial must fit), "
                f"but got (total={self.total}, {'min' if self.min else 'max'}={self.min or self.max})"
            )
        if self.report_every is not None and self.report_every > self.max:
            raise ValueError(f"report_every <= max must hold, but got ({self.report_every}, max={self.max})")
        return self

    @property
    def interval(self) -> int:
        return self.report_every or self.min or max(1, self.max // 10)


class ValueSpec(_Strict):
    """Which of a trial's evaluations is its value: the last, the best, or the mean of the last k."""

    select: Select = Select.LAST
    k: PositiveInt = 3


class SweepConfig(_Strict):
    """The fields of a sweep file. See docs/config.md for each one."""

    name: str | None = None
    target: str
    args: dict[str, Any] = Field(default_factory=dict)
    space: str | dict[str, Any] | None = None
    metric: str | list[str] | None = None
    direction: Direction | list[Direction] | None = None
    budget: Budget
    method: str | dict[str, Any] = "tpe"
    trials: PositiveInt = 20
    workers: PositiveInt = 1
    seed: int = 0
    out: str | None = None
    seeds_per_trial: PositiveInt = 1
    aggregate: Aggregate = Aggregate.MEAN
    value: Select | ValueSpec = Select.LAST
    executor: Literal["embedded", "ray"] = "embedded"
    storage: str | None = None
    ray_address: str | None = None

    @model_validator(mode="after")
    def _method_has_name(self) -> SweepConfig:
        if isinstance(self.method, dict) and not isinstance(self.method.get("name"), str):
            raise ValueError("method must be a name or a mapping with a 'name' key")
        return self


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

    @property
    def value_spec(self) -> ValueSpec:
        v = self.config.value
        return v if isinstance(v, ValueSpec) else ValueSpec(select=v)

    @property
    def storage_url(self) -> str:
        return self.config.storage or f"sqlite:///{(self.out / 'study.db').resolve()}"

    @property
    def shared_storage(self) -> bool:
        """True when the storage was given explicitly and other processes may share it."""
        return self.config.storage is not None

    def resolved(self) -> dict[str, Any]:
        """The config with defaults filled in, as written to the run directory."""
        data = self.config.model_dump(mode="json")
        data.update(
            space=self.space.to_dict(),
            metric=list(self.metrics),
            direction=list(self.directions),
            out=str(self.out),
            name=self.study_name,
        )
        return data


def _error_from_pydantic(exc: ValidationError, source: str) -> ConfigError:
    err = exc.errors()[0]
    loc = [
        str(x)
        for x in err["loc"]
        if not re.fullmatch(r"(str|int|dict\[.*\]|list\[.*\]|literal\[.*\]|.*-enum)", str(x))
    ]
    key = ".".join(loc) or None
    if err["type"] == "extra_forbidden":
        nested: dict[str, type[BaseModel]] = {"budget": Budget, "value": ValueSpec}
        parent = SweepConfig if len(loc) == 1 else nested.get(loc[0], SweepConfig)
        rule = f"unknown key; valid keys: {', '.join(parent.model_fields)}"
    elif err["type"] == "missing":
        rule = "is required"
    else:
        rule = f"{err['msg'].removeprefix('Value error, ')}, got {err.get('input')!r}"
        if err["type"] == "value_error":
            rule = err["msg"].removeprefix("Value error, ")
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


def resolve_space_path(ref: str) -> Path:
    """A space file: as given, or relative to the repository's search_spaces/ folder."""
    p = Path(ref)
    if p.is_file():
        return p
    if (SPACES_DIR / ref).is_file():
        return SPACES_DIR / ref
    return p


def parse_sweep(data: Any, source: str = "<config>", out: str | None = None) -> Sweep:
    """Validate a config mapping and resolve target, space, metrics and method; nothing runs."""
    if not isinstance(data, dict):
        raise ConfigError("a sweep config must be a mapping of keys", file=source)
    try:
        cfg = SweepConfig.model_validate(data)
    except ValidationError as exc:
        raise _error_from_pydantic(exc, source) from None
    if out is not None:
        cfg = cfg.model_copy(update={"out": out})
    cfg = cfg.model_copy(update=_absolute_paths(cfg))

    if cfg.target not in TARGETS:  # a user's reference: import it now so a typo fails before running
        from autorl.targets.driver import target_kind

        try:
            target_kind(TARGETS.get(cfg.target))
        except ConfigError as exc:
            raise exc.at("target", source) from None
    info = target_info(cfg.target)
    space = _load_space(cfg, info, source)
    if info.check:
        from autorl.registry import load_reference

        try:
            load_reference(info.check)(cfg.args, list(space))
        except ConfigError as exc:
            raise exc.at("args", source) from None

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
            source,
        )
    if isinstance(cfg.method, dict):
        method, options = cfg.method["name"], {k: v for k, v in cfg.method.items() if k != "name"}
    else:
        method, options = cfg.method, {}
    name = cfg.name or (Path(source).stem if source != "<config>" else "sweep")
    out_dir = Path(cfg.out or f"runs/{name}")
    sweep = Sweep(cfg, source, space, metrics, directions, info, method, options, out_dir, name)

    from autorl.methods import check_method

    check_method(sweep)
    return sweep


def _absolute_paths(cfg: SweepConfig) -> dict[str, Any]:
    """File references made absolute, so the run directory works from any directory later."""
    update: dict[str, Any] = {}
    module, sep, attr = cfg.target.partition(":")
    if sep and module.endswith(".py") and Path(module).is_file():
        update["target"] = f"{Path(module).resolve()}:{attr}"
    if cfg.storage and cfg.storage.startswith("journal:"):
        update["storage"] = f"journal:{Path(cfg.storage.removeprefix('journal:')).resolve()}"
    return update


def _load_space(cfg: SweepConfig, info: TargetInfo, source: str) -> SearchSpace:
    if isinstance(cfg.space, dict):
        try:
            return SearchSpace.from_dict(cfg.space)
        except ConfigError as exc:
            raise exc.at("space", source) from None
    ref = cfg.space or info.space
    if ref is None:
        raise ConfigError("is required: this target has no default search space", "space", source)
    path = resolve_space_path(ref)
    if not path.is_file():
        raise ConfigError(
            f"search space file {ref!r} not found (looked here and in {SPACES_DIR})", "space", source
        )
    return SearchSpace.from_yaml(path)


def load_sweep(path: str | Path, overrides: list[str] | None = None, out: str | None = None) -> Sweep:
    """Read, override and validate a sweep file."""
    source = str(path)
    data = load_yaml(path)
    if overrides:
        data = apply_overrides(data or {}, overrides, source)
    return parse_sweep(data, source, out)
