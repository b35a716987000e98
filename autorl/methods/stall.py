"""``halve_on_stall``: online control of the learning rate, the smallest population-style method.

Every member trains with its own configuration; after each interval, a member whose training return
has not improved for ``patience`` intervals has its learning rate halved where it stands (a
:class:`~autorl.methods.base.Reconfigure`: no copy, no other member involved), never below the space's
``low``. What it remembers (each member's best return, how long it has stalled) is its own state, saved
with the population and restored on resume. It reads the members' training metrics, which the
population loop hands every method, and is written here alone: the loop runs it unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autorl.methods.base import (
    Decision,
    Member,
    MethodContext,
    MethodKind,
    Observation,
    PopulationPlan,
    Reconfigure,
    population_interval,
    population_size,
    register_method,
)
from autorl.space import SearchSpace, sample


@dataclass
class HalveOnStall:
    """Halve ``key`` of a member whose ``metric`` (a training metric) stalled for ``patience`` intervals."""

    space: SearchSpace
    key: str = "learning_rate"
    metric: str = "train_return"
    patience: int = 2
    factor: float = 0.5
    best: dict[int, float] = field(default_factory=dict)  # each member's best metric so far
    stalled: dict[int, int] = field(default_factory=dict)  # intervals since it last improved

    def __post_init__(self) -> None:
        p = self.space.get(self.key)
        if p is None or not p.mutable or p.low is None:
            raise ValueError(f"the space needs a numeric, mutable {self.key!r} for halve_on_stall to change")
        if self.patience < 1 or not 0 < self.factor < 1:
            raise ValueError(
                f"patience >= 1 and 0 < factor < 1 must hold, got ({self.patience}, {self.factor})"
            )

    def initial(self, size: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        return [sample(self.space, rng, initial=True) for _ in range(size)]

    def decide(
        self, members: Sequence[Member], history: Sequence[Observation], rng: np.random.Generator
    ) -> list[Decision]:
        low = float(self.space[self.key].low or 0.0)
        decisions: list[Decision] = []
        for m in members:
            value = m.metrics.get(self.metric)
            if m.failed or value is None or not math.isfinite(value):
                continue
            if value > self.best.get(m.index, -math.inf):
                self.best[m.index], self.stalled[m.index] = value, 0
                continue
            self.stalled[m.index] = self.stalled.get(m.index, 0) + 1
            if self.stalled[m.index] >= self.patience:
                self.stalled[m.index] = 0
                lowered = max(low, float(m.config[self.key]) * self.factor)
                if lowered < m.config[self.key]:
                    decisions.append(Reconfigure(m.index, {self.key: lowered}))
        return decisions

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": {str(k): v for k, v in self.best.items()},
            "stalled": {str(k): v for k, v in self.stalled.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = {int(k): float(v) for k, v in state.get("best", {}).items()}
        self.stalled = {int(k): int(v) for k, v in state.get("stalled", {}).items()}


@register_method(
    "halve_on_stall",
    "online control: halve a member's learning rate when its training return stalls",
    MethodKind.POPULATION,
)
def build_halve_on_stall(
    ctx: MethodContext,
    worker: int = 0,
    *,
    population: int = 4,
    interval: int | None = None,
    key: str = "learning_rate",
    metric: str = "train_return",
    patience: int = 2,
    factor: float = 0.5,
) -> PopulationPlan:
    method = HalveOnStall(ctx.space, key, metric, patience, factor)
    size, every = population_size(population), population_interval(ctx, interval, population)
    return PopulationPlan(size, every, method, decides_on=metric)  # it reads nothing else
