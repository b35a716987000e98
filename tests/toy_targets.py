"""Small targets the tests sweep: fast, deterministic, each exercising one target form."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np


def quad(config):
    """Plain function: minimum 0 at x = 0.3, y = 0."""
    return (config["x"] - 0.3) ** 2 + 0.1 * config.get("y", 0)


def two_objectives(config):
    return {"loss": (config["x"] - 0.3) ** 2, "cost": abs(config["x"])}


def noisy(config, ctx):
    rng = np.random.default_rng(ctx.seed)
    return float(config["x"] + rng.normal())


def curve(config, ctx):
    """Reports a learning curve; configs far from x=0.3 learn slowly (so pruners stop them)."""
    value = 0.0
    for step in range(ctx.interval, ctx.budget + 1, ctx.interval):
        value = (1.0 - abs(config["x"] - 0.3)) * step / ctx.budget
        ctx.report(value, step)
    return {"score": value, "budget": ctx.budget}


def flaky(config):
    """Raises for x < 0 and diverges (NaN) for x > 0.8: both must become FAIL, not stop the sweep."""
    if config["x"] < 0:
        raise RuntimeError("boom: x < 0")
    if config["x"] > 0.8:
        return math.nan
    return config["x"]


def slow(config, ctx):
    """Sleeps, so a test can kill the sweep mid-trial; logs each start to $TOY_LOG."""
    log = os.environ.get("TOY_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"number": ctx.number, "x": config["x"]}) + "\n")
    time.sleep(float(config.get("sleep", 0.5)))
    return config["x"]


def busy(config):
    """CPU-bound work for the parallel-rate benchmark/tests."""
    total = 0.0
    for i in range(int(config.get("n", 200_000))):
        total += math.sin(i * config["x"])
    return total


class Counter:
    """A Trainable: value grows by rate per unit; save/load keep the state; reconfigure changes rate."""

    def __init__(self, config, ctx):
        self.rate = float(config["x"])
        self.t = 0
        self.value = 0.0

    def train(self, budget):
        self.t += budget
        self.value += self.rate * budget
        return {"value": self.value, "budget": self.t}

    def reconfigure(self, config):
        self.rate = float(config["x"])

    def save(self, path: Path) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "s.json").write_text(json.dumps({"t": self.t, "rate": self.rate, "value": self.value}))

    def load(self, path: Path) -> None:
        s = json.loads((Path(path) / "s.json").read_text())
        self.t, self.rate, self.value = s["t"], s["rate"], s["value"]
