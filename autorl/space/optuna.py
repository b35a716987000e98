"""Search spaces on Optuna: define-by-run sampling and distributions, both ways."""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from autorl.space.base import Param, ParamType, SearchSpace, Transform


def suggest(space: SearchSpace, trial: optuna.Trial) -> dict[str, Any]:
    """Sample the active parameters of ``space`` with ``trial``; returns values on their own scale."""
    values: dict[str, Any] = {}
    for p in space.values():
        if p.active(values):
            values[p.name] = _suggest_one(p, trial)
    return values


def _suggest_one(p: Param, trial: optuna.Trial) -> Any:
    if p.type is ParamType.FIXED:
        return p.value
    if p.type is ParamType.CATEGORICAL:
        return trial.suggest_categorical(p.name, list(p.choices))
    low, high = p.search_bounds()
    if p.type is ParamType.FLOAT:
        s = trial.suggest_float(p.search_name, low, high, log=p.log, step=p.step)
        return p.transform.from_search(s) if p.transform else s
    if p.transform is Transform.POW2:
        return 2 ** trial.suggest_int(p.search_name, round(low), round(high))
    return trial.suggest_int(p.name, int(low), int(high), step=int(p.step or 1), log=p.log)


def to_distribution(p: Param) -> BaseDistribution | None:
    """The Optuna distribution of ``p`` on its searched scale (None for a fixed parameter)."""
    if p.type is ParamType.FIXED:
        return None
    if p.type is ParamType.CATEGORICAL:
        return CategoricalDistribution(list(p.choices))
    low, high = p.search_bounds()
    if p.type is ParamType.FLOAT:
        return FloatDistribution(low, high, log=p.log, step=p.step)
    if p.transform is Transform.POW2:
        return IntDistribution(round(low), round(high))
    return IntDistribution(int(low), int(high), log=p.log, step=int(p.step or 1))


def to_distributions(space: SearchSpace) -> dict[str, BaseDistribution]:
    """Distributions keyed by searched name; conditions cannot be expressed and are dropped."""
    out = {}
    for p in space.values():
        dist = to_distribution(p)
        if dist is not None:
            out[p.search_name] = dist
    return out


def from_distributions(dists: dict[str, BaseDistribution]) -> SearchSpace:
    """Inverse of :func:`to_distributions` (names ``one_minus_x`` and ``log2_x`` restore the transform)."""
    params = []
    for name, d in dists.items():
        if isinstance(d, CategoricalDistribution):
            params.append(Param(name, ParamType.CATEGORICAL, choices=tuple(d.choices)))
        elif isinstance(d, FloatDistribution):
            if name.startswith("one_minus_"):
                params.append(
                    Param(
                        name[len("one_minus_") :],
                        ParamType.FLOAT,
                        low=1 - d.high,
                        high=1 - d.low,
                        log=d.log,
                        step=d.step,
                        transform=Transform.ONE_MINUS,
                    )
                )
            else:
                params.append(Param(name, ParamType.FLOAT, low=d.low, high=d.high, log=d.log, step=d.step))
        elif isinstance(d, IntDistribution):
            if name.startswith("log2_"):
                params.append(
                    Param(
                        name[len("log2_") :],
                        ParamType.INT,
                        low=2**d.low,
                        high=2**d.high,
                        transform=Transform.POW2,
                    )
                )
            else:
                step = None if d.step == 1 else d.step
                params.append(Param(name, ParamType.INT, low=d.low, high=d.high, log=d.log, step=step))
        else:  # pragma: no cover - optuna has no other distribution kinds today
            raise TypeError(f"unsupported distribution {d!r} for {name!r}")
    return SearchSpace(params)


def grid(space: SearchSpace, points: int) -> dict[str, list[Any]]:
    """A grid for GridSampler: categorical choices, every int when few, else ``points`` values per axis."""
    out: dict[str, list[Any]] = {}
    for p in space.values():
        if p.type is ParamType.FIXED:
            continue
        if p.type is ParamType.CATEGORICAL:
            out[p.name] = list(p.choices)
            continue
        low, high = p.search_bounds()
        if p.type is ParamType.INT:
            step = int(p.step or 1)
            ints = list(range(round(low), round(high) + 1, step))
            if len(ints) > points:
                idx = (
                    [round(i * (len(ints) - 1) / (points - 1)) for i in range(points)] if points > 1 else [0]
                )
                ints = sorted({ints[i] for i in idx})
            out[p.search_name] = ints
            continue
        if points == 1:
            out[p.search_name] = [(low + high) / 2]
        elif p.log:
            a, b = math.log(low), math.log(high)
            out[p.search_name] = [math.exp(a + i * (b - a) / (points - 1)) for i in range(points)]
        else:
            out[p.search_name] = [low + i * (high - low) / (points - 1) for i in range(points)]
    return out


def to_params(
    space: SearchSpace, config: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, BaseDistribution]]:
    """A configuration on the user's scale as Optuna params (searched scale) and their distributions,
    for ``optuna.trial.create_trial``; fixed and inactive parameters are left out."""
    params: dict[str, Any] = {}
    dists: dict[str, BaseDistribution] = {}
    for p in space.values():
        dist = to_distribution(p)
        if p.name in config and dist is not None:
            value = config[p.name]
            if p.transform is Transform.POW2:
                params[p.search_name] = round(p.transform.to_search(value))
            else:
                params[p.search_name] = p.transform.to_search(value) if p.transform is not None else value
            dists[p.search_name] = dist
    return params, dists
