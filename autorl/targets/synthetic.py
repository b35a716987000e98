"""Synthetic targets: instant, seeded stand-ins for training runs, for tests, smoke suites and benchmarks.

``CurveTarget`` mimics a learning curve: the score rises toward an asymptote that depends on the
configuration (best at ``x = 0.3``, ``lr = 1e-2``), at a speed set by the learning rate, with seeded
noise in every evaluation. Cheap enough that a comparison of methods runs in seconds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from autorl.targets.base import TrialContext


class CurveTarget:
    """A noisy learning curve over budget units; config: ``x`` in [-1, 1], ``lr`` > 0, ``noise``."""

    def __init__(self, config: dict[str, Any], ctx: TrialContext) -> None:
        self.x = float(config.get("x", 0.0))
        self.lr = float(config.get("lr", 1e-3))
        self.noise = float(config.get("noise", 0.05))
        self.horizon = float(config.get("horizon", 1000))
        self.t = 0
        self.rng = np.random.default_rng(ctx.seed)

    @property
    def asymptote(self) -> float:
        return 1.0 - (self.x - 0.3) ** 2 - 0.1 * math.log10(self.lr / 1e-2) ** 2

    def _score(self, rng: np.random.Generator) -> float:
        speed = min(1.0, self.lr / 1e-2) * 5.0 / self.horizon
        return self.asymptote * (1.0 - math.exp(-speed * self.t)) + self.noise * float(rng.normal())

    def train(self, budget: int) -> dict[str, float]:
        self.t += budget
        return {"score": self._score(self.rng), "budget": float(self.t)}

    def evaluate(self, seed: int) -> dict[str, float]:
        """The curve where it stands, with the noise drawn from ``seed``; nothing trains."""
        return {"score": self._score(np.random.default_rng(seed)), "budget": float(self.t)}

    def save(self, path: Path) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "state.json").write_text(json.dumps({"t": self.t, "rng": self.rng.bit_generator.state}))

    def load(self, path: Path) -> None:
        state = json.loads((Path(path) / "state.json").read_text())
        self.t = state["t"]
        self.rng.bit_generator.state = state["rng"]

    def reconfigure(self, config: dict[str, Any]) -> None:
        self.lr = float(config.get("lr", self.lr))


def branin(config: dict[str, Any], ctx: TrialContext) -> dict[str, float]:
    """The Branin function (minimum 0.397887) plus seeded noise of scale ``noise``."""
    x1, x2 = float(config["x1"]), float(config["x2"])
    a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    value = a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s
    noise = float(config.get("noise", 0.0)) * float(np.random.default_rng(ctx.seed).normal())
    return {"value": value + noise, "budget": 1.0}
