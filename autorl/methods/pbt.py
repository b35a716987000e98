"""Population-based training (PBT) and PB2 as methods ``pbt`` and ``pb2``: their decisions only.

PBT: Jaderberg et al. 2017, "Population Based Training of Neural Networks" (arXiv:1711.09846).
PB2: Parker-Holder et al. 2020, "Provably Efficient Online Hyperparameter Optimization with
Population-Based Bandits" (NeurIPS 2020).

Both are synchronous: every member trains one interval, then the bottom ``quantile`` copies a member
of the top ``quantile`` (exploit) and changes its mutable hyperparameters (explore): PBT perturbs or
resamples them, PB2 picks them with a GP bandit over the population's history. Members are ranked by
the sweep's metric, evaluated after every interval, or with ``decide_on: train_return`` by their recent
training episodes (the PBT paper's choice for RL), which spares every evaluation but the last. A
member that failed (raised, diverged, or its process died) counts as the worst and is always replaced.
Where members run and how a copy is made is the executor's business
(:mod:`autorl.executors.population`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autorl.methods.base import (
    Copy,
    Decision,
    Member,
    MethodContext,
    MethodKind,
    Observation,
    PopulationPlan,
    population_interval,
    population_size,
    register_method,
)
from autorl.space import ParamType, SearchSpace, from_unit, perturb, sample, to_unit


@dataclass(frozen=True)
class PBT:
    """PBT's truncation selection and explore (the paper's defaults)."""

    space: SearchSpace
    maximize: bool = True
    quantile: float = 0.25
    resample_probability: float = 0.25
    factors: tuple[float, float] = (0.8, 1.2)
    exploit: bool = True  # False: the same population with fixed hyperparameters (the baseline)

    def __post_init__(self) -> None:
        if not 0 < self.quantile <= 0.5:
            raise ValueError(f"quantile must be in (0, 0.5], got {self.quantile!r}")
        if not 0 <= self.resample_probability <= 1:
            raise ValueError(f"resample_probability must be in [0, 1], got {self.resample_probability!r}")
        if len(self.factors) != 2 or min(self.factors) <= 0:
            raise ValueError(f"factors must be two positive numbers, got {self.factors!r}")

    def initial(self, size: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        return [sample(self.space, rng, initial=True) for _ in range(size)]

    def state_dict(self) -> dict[str, Any]:
        return {}  # every decision is a function of the members, the history and the random stream

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def ranked(self, members: Sequence[Member]) -> tuple[list[Member], list[Member]]:
        """(bottom, top): failed members first in the bottom, then the worst ``quantile``. A member
        without a score yet (a training metric before its first episode ended) is in neither."""
        sign = 1.0 if self.maximize else -1.0
        healthy = [m for m in members if not m.failed and m.score is not None and math.isfinite(m.score)]
        healthy.sort(key=lambda m: sign * float(m.score))  # type: ignore[arg-type]
        failed = [m for m in members if m.failed]
        k = max(1, round(len(members) * self.quantile))
        top = healthy[-k:]
        top_ids = {m.index for m in top}
        return failed + [m for m in healthy[:k] if m.index not in top_ids], top

    def explore(
        self, donor: Member, history: Sequence[Observation], rng: np.random.Generator
    ) -> dict[str, Any]:
        return perturb(self.space, donor.config, rng, self.factors, self.resample_probability)

    def decide(
        self, members: Sequence[Member], history: Sequence[Observation], rng: np.random.Generator
    ) -> list[Decision]:
        if not self.exploit:
            return []
        bottom, top = self.ranked(members)
        copies: list[Decision] = []
        for m in bottom:
            if not top:
                break
            donor = top[int(rng.integers(len(top)))]
            if donor.index != m.index:
                copies.append(Copy(m.index, donor.index, self.explore(donor, history, rng)))
        return copies


@dataclass(frozen=True)
class PB2(PBT):
    """PB2: PBT's selection, and an explore that maximises a GP-UCB acquisition over (time, mutable
    numeric parameters) -> the members' score changes. Categorical mutable parameters are resampled
    as PBT does (the paper handles continuous ones)."""

    kappa: float = 2.0
    candidates: int = 256
    window: int = 4  # intervals of history the GP is fitted on (times the population size)

    def decide(
        self, members: Sequence[Member], history: Sequence[Observation], rng: np.random.Generator
    ) -> list[Decision]:
        return super().decide(members, list(history)[-self.window * len(members) :], rng)

    def explore(
        self, donor: Member, history: Sequence[Observation], rng: np.random.Generator
    ) -> dict[str, Any]:
        params = [p for p in self.space.values() if p.mutable and p.type in (ParamType.FLOAT, ParamType.INT)]
        recent = [Observation(*h) for h in history]
        if not params or len(recent) < 2:
            return super().explore(donor, history, rng)
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, WhiteKernel

        tmax = max(h.steps for h in recent) or 1
        x = np.array(
            [
                [h.steps / tmax]
                + [to_unit(p, h.config[p.name]) if p.name in h.config else 0.5 for p in params]
                for h in recent
            ]
        )
        y = np.array([h.change for h in recent], dtype=float)
        y = (y - y.mean()) / (y.std() + 1e-8)
        gp = GaussianProcessRegressor(RBF(length_scale=np.ones(x.shape[1])) + WhiteKernel(0.1))
        with warnings.catch_warnings():  # few, noisy points: length scales at their bounds are expected
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp.fit(x, y)
        u = rng.random((self.candidates, len(params)))
        mu, sd = gp.predict(np.hstack([np.ones((self.candidates, 1)), u]), return_std=True)
        best = u[int(np.argmax(mu + self.kappa * sd))]
        new = perturb(self.space, donor.config, rng, self.factors, 1.0)  # categoricals: resampled
        for p, value in zip(params, best, strict=True):
            if p.name in new:
                new[p.name] = from_unit(p, float(value))
        return new


@register_method("pbt", "population-based training (Jaderberg et al. 2017)", MethodKind.POPULATION)
def build_pbt(
    ctx: MethodContext,
    worker: int = 0,
    *,
    population: int = 8,
    interval: int | None = None,
    quantile: float = 0.25,
    resample_probability: float = 0.25,
    factors: tuple[float, float] | list[float] = (0.8, 1.2),
    exploit: bool = True,
    decide_on: str | None = None,
) -> PopulationPlan:
    pbt = PBT(ctx.space, ctx.maximize, quantile, resample_probability, _factors(factors), exploit)
    size, every = population_size(population), population_interval(ctx, interval, population)
    return PopulationPlan(size, every, pbt, _decide_on(decide_on))


@register_method("pb2", "population-based bandits (Parker-Holder et al. 2020)", MethodKind.POPULATION)
def build_pb2(
    ctx: MethodContext,
    worker: int = 0,
    *,
    population: int = 8,
    interval: int | None = None,
    quantile: float = 0.25,
    decide_on: str | None = None,
) -> PopulationPlan:
    pb2 = PB2(ctx.space, ctx.maximize, quantile)
    size, every = population_size(population), population_interval(ctx, interval, population)
    return PopulationPlan(size, every, pb2, _decide_on(decide_on))


def _decide_on(metric: str | None) -> str | None:
    """The ``decide_on`` option: None (the sweep's metric, evaluated every interval) or the name of a
    training metric the target reports every interval."""
    if metric is not None and (not isinstance(metric, str) or not metric):
        raise ValueError(f"decide_on must be a metric's name (for instance train_return), got {metric!r}")
    return metric


def _factors(factors: Sequence[float]) -> tuple[float, float]:
    values = tuple(float(f) for f in factors)
    if len(values) != 2:
        raise ValueError(f"factors must be two positive numbers, got {list(factors)!r}")
    return values[0], values[1]
