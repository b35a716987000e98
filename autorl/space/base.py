"""Search spaces: typed hyperparameters with conditions and transformed scales.

A space is an ordered mapping of :class:`Param`. It is written in YAML as one key per parameter::

    learning_rate: {type: float, low: 1.0e-5, high: 1.0e-2, log: true, mutable: true}
    n_steps: {type: int, low: 64, high: 2048, transform: pow2}
    gamma: {type: float, low: 0.9, high: 0.9999, log: true, transform: one_minus}
    activation: {type: categorical, choices: [tanh, relu]}
    sde_sample_freq: {type: int, low: 1, high: 64, condition: {use_sde: true}}
    policy: {type: fixed, value: MlpPolicy}

Ranges are always written in the parameter's own terms; a ``transform`` says on which scale the
search happens (``one_minus``: search ``1 - x``; ``pow2``: search the exponent of a power of two).
Both values are recorded: ``x`` under its name, the searched value under :attr:`Param.search_name`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autorl.errors import ConfigError
from autorl.yamlio import load_yaml


class ParamType(enum.Enum):
    FLOAT = "float"
    INT = "int"
    CATEGORICAL = "categorical"
    FIXED = "fixed"


class Transform(enum.Enum):
    """The scale a parameter is searched on."""

    ONE_MINUS = "one_minus"
    POW2 = "pow2"

    def to_search(self, x: float) -> float:
        return 1.0 - x if self is Transform.ONE_MINUS else math.log2(x)

    def from_search(self, s: float) -> Any:
        return 1.0 - s if self is Transform.ONE_MINUS else 2 ** round(s)


_KEYS = {
    ParamType.FLOAT: {"low", "high", "log", "step", "init"},
    ParamType.INT: {"low", "high", "log", "step", "init"},
    ParamType.CATEGORICAL: {"choices"},
    ParamType.FIXED: {"value"},
}
_COMMON = {"type", "condition", "transform", "mutable", "doc"}


@dataclass(frozen=True)
class Param:
    """One hyperparameter. ``condition`` maps another parameter's name to the values it must take."""

    name: str
    type: ParamType
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    value: Any = None
    condition: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    transform: Transform | None = None
    mutable: bool = False
    init: tuple[float, float] | None = None  # where population methods draw initial values
    doc: str = ""

    @property
    def search_name(self) -> str:
        """Name on the searched scale: ``one_minus_gamma`` for gamma with transform one_minus."""
        if self.transform is Transform.ONE_MINUS:
            return f"one_minus_{self.name}"
        if self.transform is Transform.POW2:
            return f"log2_{self.name}"
        return self.name

    def search_bounds(self) -> tuple[float, float]:
        """(low, high) on the searched scale."""
        assert self.low is not None and self.high is not None
        if self.transform is None:
            return self.low, self.high
        a, b = self.transform.to_search(self.low), self.transform.to_search(self.high)
        return min(a, b), max(a, b)

    def active(self, values: Mapping[str, Any]) -> bool:
        """Whether the condition holds for the values sampled so far."""
        return all(values.get(k, _MISSING) in allowed for k, allowed in self.condition.items())

    def contains(self, x: Any) -> bool:
        """Whether ``x`` is a value this parameter can take."""
        if self.type is ParamType.FIXED:
            return bool(x == self.value)
        if self.type is ParamType.CATEGORICAL:
            return x in self.choices
        assert self.low is not None and self.high is not None
        return isinstance(x, int | float) and self.low - 1e-12 <= x <= self.high + 1e-12

    @classmethod
    def from_dict(cls, name: str, spec: Any) -> Param:
        """Parse and validate one YAML entry; errors name the key and the rule."""
        if not isinstance(spec, Mapping):
            raise ConfigError(f"must be a mapping with a 'type', got {spec!r}", name)
        try:
            ptype = ParamType(spec.get("type"))
        except ValueError:
            valid = ", ".join(t.value for t in ParamType)
            raise ConfigError(f"type must be one of {valid}, got {spec.get('type')!r}", name) from None
        unknown = set(spec) - _KEYS[ptype] - _COMMON
        if unknown:
            valid = ", ".join(sorted(_KEYS[ptype] | _COMMON))
            raise ConfigError(
                f"unknown key(s) {', '.join(sorted(unknown))} for type {ptype.value}; valid: {valid}", name
            )
        condition = _parse_condition(name, spec.get("condition"))
        transform = None
        if spec.get("transform") is not None:
            try:
                transform = Transform(spec["transform"])
            except ValueError:
                valid = ", ".join(t.value for t in Transform)
                raise ConfigError(
                    f"transform must be one of {valid}, got {spec['transform']!r}", name
                ) from None
        common: dict[str, Any] = dict(
            condition=condition,
            transform=transform,
            mutable=bool(spec.get("mutable", False)),
            doc=str(spec.get("doc", "")),
        )
        if ptype is ParamType.FIXED:
            if "value" not in spec:
                raise ConfigError("a fixed parameter needs 'value'", name)
            return cls(name, ptype, value=spec["value"], **common)
        if ptype is ParamType.CATEGORICAL:
            choices = spec.get("choices")
            if not isinstance(choices, list | tuple) or not choices:
                raise ConfigError(f"choices must be a non-empty list, got {choices!r}", name)
            return cls(name, ptype, choices=tuple(choices), **common)
        low, high = _number(name, spec, "low"), _number(name, spec, "high")
        if low > high:
            raise ConfigError(f"low <= high must hold, but got (low={low}, high={high})", name)
        log = bool(spec.get("log", False))
        step = spec.get("step")
        if step is not None and (not isinstance(step, int | float) or step <= 0):
            raise ConfigError(f"step must be a positive number, got {step!r}", name)
        if log and low <= 0:
            raise ConfigError(f"log scale needs low > 0, but got low={low}", name)
        if log and step is not None:
            raise ConfigError("log and step cannot be combined", name)
        if step is not None and abs(round((high - low) / step) * step - (high - low)) > 1e-9 * max(
            1.0, high - low
        ):
            raise ConfigError(
                f"high - low must be a multiple of step, but got (low={low}, high={high}, step={step})", name
            )
        if ptype is ParamType.INT:
            if low != int(low) or high != int(high):
                raise ConfigError(f"int bounds must be integers, got (low={low}, high={high})", name)
            low, high = int(low), int(high)
        if transform is Transform.ONE_MINUS and (ptype is not ParamType.FLOAT or high >= 1):
            raise ConfigError(f"transform one_minus needs a float with high < 1, got high={high}", name)
        if transform is Transform.POW2:
            if ptype is not ParamType.INT or low < 1 or any(v & (v - 1) for v in (int(low), int(high))):
                raise ConfigError(
                    f"transform pow2 needs an int whose low and high are powers of two, got ({low}, {high})",
                    name,
                )
            if step is not None or log:
                raise ConfigError(
                    "transform pow2 cannot be combined with step or log (it is already a log scale)", name
                )
        init = _parse_init(name, spec.get("init"), low, high)
        return cls(name, ptype, low=low, high=high, log=log, step=step, init=init, **common)

    def to_dict(self) -> dict[str, Any]:
        """The YAML form, inverse of :meth:`from_dict`."""
        out: dict[str, Any] = {"type": self.type.value}
        if self.type is ParamType.FIXED:
            out["value"] = self.value
        elif self.type is ParamType.CATEGORICAL:
            out["choices"] = list(self.choices)
        else:
            out["low"], out["high"] = self.low, self.high
            if self.log:
                out["log"] = True
            if self.step is not None:
                out["step"] = self.step
            if self.init is not None:
                out["init"] = list(self.init)
        if self.transform is not None:
            out["transform"] = self.transform.value
        if self.condition:
            out["condition"] = {k: v[0] if len(v) == 1 else list(v) for k, v in self.condition.items()}
        if self.mutable:
            out["mutable"] = True
        if self.doc:
            out["doc"] = self.doc
        return out


_MISSING = object()


def _number(name: str, spec: Mapping[str, Any], key: str) -> float:
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value!r}", name)
    return value


def _parse_init(name: str, init: Any, low: float, high: float) -> tuple[float, float] | None:
    """``init: [a, b]``: the sub-range a population's first members are drawn from (PBT/PB2)."""
    if init is None:
        return None
    ok = isinstance(init, list | tuple) and len(init) == 2
    ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in init)
    if not ok or not low <= init[0] <= init[1] <= high:
        raise ConfigError(
            f"init must be [a, b] with low <= a <= b <= high ({low}, {high}), got {init!r}", name
        )
    return float(init[0]), float(init[1])


def _parse_condition(name: str, cond: Any) -> dict[str, tuple[Any, ...]]:
    if cond is None:
        return {}
    if not isinstance(cond, Mapping) or not cond:
        raise ConfigError(f"condition must map a parameter to its value(s), got {cond!r}", name)
    return {str(k): tuple(v) if isinstance(v, list | tuple) else (v,) for k, v in cond.items()}


class SearchSpace(Mapping[str, Param]):
    """An ordered, validated set of parameters. Conditions may only refer to earlier parameters."""

    def __init__(self, params: list[Param] | None = None) -> None:
        self._params: dict[str, Param] = {}
        for p in params or []:
            if p.name in self._params:
                raise ConfigError("is defined twice", p.name)
            for other, allowed in p.condition.items():
                if other not in self._params:
                    raise ConfigError(
                        f"condition refers to {other!r}, which must be defined before it", p.name
                    )
                parent = self._params[other]
                bad = [v for v in allowed if not parent.contains(v)]
                if bad:
                    raise ConfigError(f"condition value(s) {bad} can never be taken by {other!r}", p.name)
            self._params[p.name] = p

    def __getitem__(self, name: str) -> Param:
        return self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __repr__(self) -> str:
        return f"SearchSpace({list(self._params)})"

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> SearchSpace:
        if not isinstance(spec, Mapping):
            raise ConfigError(
                f"a search space must be a mapping of parameter names, got {type(spec).__name__}"
            )
        params, errors = [], []
        for name, s in spec.items():  # every bad parameter is reported, not only the first
            try:
                params.append(Param.from_dict(str(name), s))
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ConfigError(
                f"{len(errors)} parameters are invalid: " + "; ".join(f"{e.key}: {e.rule}" for e in errors)
            )
        return cls(params)

    @classmethod
    def from_yaml(cls, path: str | Path) -> SearchSpace:
        """Load a space file; errors carry the file name."""
        data = load_yaml(path)
        try:
            return cls.from_dict(data or {})
        except ConfigError as exc:
            raise exc.at(file=str(path)) from None

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: p.to_dict() for name, p in self._params.items()}

    def with_fixed(self, values: Mapping[str, Any]) -> SearchSpace:
        """A copy with the given parameters pinned to values (e.g. a best config to retrain)."""
        params = [
            Param(p.name, ParamType.FIXED, value=values[p.name], condition=p.condition)
            if p.name in values
            else p
            for p in self._params.values()
        ]
        return SearchSpace(params)

    def active(self, values: Mapping[str, Any]) -> list[Param]:
        """The parameters whose conditions hold for ``values``."""
        return [p for p in self._params.values() if p.active(values)]

    def record(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` plus each transformed parameter's searched value, for the results table."""
        out = dict(values)
        for p in self._params.values():
            if p.transform is not None and p.name in values:
                out[p.search_name] = p.transform.to_search(values[p.name])
        return out
