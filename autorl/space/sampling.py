"""Sampling and perturbing a search space outside Optuna: the functions every population method uses.

All of them work on the parameter's *searched* scale, as Optuna's samplers do (``1 - gamma`` on a log
scale for ``transform: one_minus``; the exponent for ``transform: pow2``), honour ``log``, ``step``
and conditions, and return values on the user's scale, so a value can always be recorded in the
space's Optuna distributions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from autorl.space.base import Param, ParamType, SearchSpace, Transform


def _bounds(p: Param, initial: bool) -> tuple[float, float]:
    """(low, high) on the searched scale; ``initial`` narrows them to ``p.init`` where it is set."""
    if initial and p.init is not None:
        a, b = p.init
        if p.transform is not None:
            a, b = sorted((p.transform.to_search(a), p.transform.to_search(b)))
        return a, b
    return p.search_bounds()


def to_search(p: Param, value: Any) -> float:
    """``value`` (user's scale) on the searched scale."""
    return float(p.transform.to_search(value)) if p.transform is not None else float(value)


def from_search(p: Param, s: float) -> Any:
    """The user's value for a point ``s`` of the searched scale: clipped to the bounds, on the step grid,
    an integer for int parameters (a power of two for ``pow2``)."""
    lo, hi = p.search_bounds()
    s = min(max(float(s), lo), hi)
    if p.transform is Transform.POW2:
        return int(2 ** round(s))
    if p.step:
        s = lo + round((s - lo) / p.step) * p.step
        s = min(s, hi)
    value = p.transform.from_search(s) if p.transform is not None else s
    return round(value) if p.type is ParamType.INT else float(value)


def sample_param(p: Param, rng: np.random.Generator, initial: bool = False) -> Any:
    """One value of ``p``, uniform on its searched scale (log-uniform where ``log``)."""
    if p.type is ParamType.FIXED:
        return p.value
    if p.type is ParamType.CATEGORICAL:
        return p.choices[int(rng.integers(len(p.choices)))]
    lo, hi = _bounds(p, initial)
    if p.type is ParamType.INT and (p.transform is Transform.POW2 or not p.log):
        step = 1 if p.transform is Transform.POW2 else int(p.step or 1)
        first = math.ceil(lo)
        n = int((math.floor(hi) - first) // step) + 1
        return from_search(p, first + step * int(rng.integers(max(n, 1))))
    if p.log:
        return from_search(p, float(np.exp(rng.uniform(np.log(lo), np.log(hi)))))
    return from_search(p, float(rng.uniform(lo, hi)))


def sample(space: SearchSpace, rng: np.random.Generator, initial: bool = False) -> dict[str, Any]:
    """A configuration of the active parameters; ``initial`` draws from ``init`` ranges where set."""
    out: dict[str, Any] = {}
    for p in space.values():
        if p.active(out):
            out[p.name] = sample_param(p, rng, initial)
    return out


def extreme(space: SearchSpace, largest: bool) -> dict[str, Any]:
    """Every parameter at its largest (``largest``) or smallest value: a number at an end of its range, a
    categorical at its largest or smallest numeric choice (else its first), a fixed one at its value.
    Conditions are ignored: every parameter is there."""
    pick = max if largest else min
    out: dict[str, Any] = {}
    for p in space.values():
        if p.type is ParamType.FIXED:
            out[p.name] = p.value
        elif p.type is ParamType.CATEGORICAL:
            numbers = [c for c in p.choices if isinstance(c, int | float) and not isinstance(c, bool)]
            out[p.name] = pick(numbers) if numbers else p.choices[0]
        else:
            lo, hi = p.search_bounds()
            out[p.name] = pick(from_search(p, lo), from_search(p, hi))
    return out


def _shift(p: Param, value: Any, factor: float) -> Any:
    """``value`` moved by ``factor`` on the searched scale: multiplied (the PBT paper's perturbation)
    for numbers, one exponent up or down for ``pow2``, one choice along for categoricals."""
    if p.type is ParamType.CATEGORICAL:
        i = list(p.choices).index(value) + (1 if factor > 1 else -1)
        return p.choices[min(max(i, 0), len(p.choices) - 1)]
    s = to_search(p, value)
    if p.transform is Transform.POW2:
        return from_search(p, s + (1 if factor > 1 else -1))
    moved = s * factor
    if p.type is ParamType.INT and round(moved) == round(s):  # a small int would never move
        moved = s + (1 if factor > 1 else -1) * max(1.0, float(p.step or 1))
    return from_search(p, moved)


def perturb(
    space: SearchSpace,
    config: Mapping[str, Any],
    rng: np.random.Generator,
    factors: Sequence[float] = (0.8, 1.2),
    resample_probability: float = 0.25,
) -> dict[str, Any]:
    """PBT's explore: each mutable parameter is resampled with ``resample_probability``, else shifted by
    one of ``factors``. Parameters whose condition turns true are sampled, those turned false dropped."""
    new: dict[str, Any] = {}
    for p in space.values():
        if not p.active(new):
            continue
        if p.name not in config:
            new[p.name] = sample_param(p, rng)
        elif not p.mutable or p.type is ParamType.FIXED:
            new[p.name] = config[p.name]
        elif rng.random() < resample_probability:
            new[p.name] = sample_param(p, rng)
        else:
            new[p.name] = _shift(p, config[p.name], float(factors[int(rng.integers(len(factors)))]))
    return new


def to_unit(p: Param, value: Any) -> float:
    """``value`` as a point of [0, 1] along the searched scale (log-spaced where ``log``)."""
    lo, hi = p.search_bounds()
    s = to_search(p, value)
    if p.log:
        lo, hi, s = math.log(lo), math.log(hi), math.log(s)
    return (s - lo) / (hi - lo) if hi > lo else 0.0


def from_unit(p: Param, u: float) -> Any:
    """Inverse of :func:`to_unit` (snapped to what ``p`` can take)."""
    lo, hi = p.search_bounds()
    if p.log:
        return from_search(p, math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))))
    return from_search(p, lo + u * (hi - lo))


def check_config(space: SearchSpace, config: Mapping[str, Any]) -> list[str]:
    """What is wrong with ``config`` for ``space`` (empty when every active value can be taken)."""
    problems = []
    for p in space.active(config):
        if p.name not in config:
            problems.append(f"{p.name} is missing")
        elif not p.contains(config[p.name]):
            problems.append(f"{p.name}={config[p.name]!r} is outside the space")
        elif p.transform is Transform.POW2 and int(config[p.name]) & (int(config[p.name]) - 1):
            problems.append(f"{p.name}={config[p.name]} is not a power of two")
    extra = sorted(set(config) - {p.name for p in space.active(config)})
    problems += [f"{k} is inactive or unknown" for k in extra]
    return problems
