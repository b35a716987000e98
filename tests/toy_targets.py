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


def loaded(config):
    """1.0 where the process running the trial has imported the module named ``config["module"]``."""
    import sys

    return float(config["module"] in sys.modules)


def echo(config, ctx):
    """Returns its config's numbers as metrics (``value`` is x), and the seed it ran on: what a trial ran."""
    numbers = {k: float(v) for k, v in config.items() if type(v) in (int, float)}
    return {"value": float(config["x"]), **{f"got_{k}": v for k, v in numbers.items()}, "got_seed": ctx.seed}


def two_objectives(config):
    return {"loss": (config["x"] - 0.3) ** 2, "cost": abs(config["x"])}


def noisy(config, ctx):
    rng = np.random.default_rng(ctx.seed)
    return float(config["x"] + rng.normal())


def curve(config, ctx):
    """Reports a learning curve; configs far from x=0.3 learn slowly (so pruners stop them)."""
    value = 0.0
    for step in range(ctx.interval, ctx.budget + 1, ctx.interval):
        time.sleep(float(config.get("sleep", 0)))
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
            f.write(json.dumps({"number": ctx.number, "x": config["x"], "seed": ctx.seed}) + "\n")
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


class Toy:
    """A Trainable for population tests: the score grows by ``lr`` per step while lr < 0.3 (above it the
    gain drops), so a population improves by moving lr up from a poor start.

    Fixed args: ``log`` (a JSONL file: one row per train call with the seed, the steps before it, the
    lr in effect, the member and the process id), ``saves`` (a file: one line per save and per load
    with the directory, so a test sees where its checkpoints live), ``sleep`` (seconds per call, so a
    test can kill a run mid-way), ``slow`` (``{member, sleep}``: only that member's agents sleep),
    ``crash`` (a mapping ``{seed, at, marker}``: the agent with that seed kills its process with SIGSEGV
    once, when a train call starts at or after ``at`` steps, and writes ``marker`` first so it happens
    only once), ``piece`` (trains whole pieces of that many steps, overshooting a request as a PPO
    rollout does).
    """

    def __init__(self, config, ctx):
        self.config = dict(config)
        self.seed, self.member = ctx.seed, ctx.number
        self.lr = float(config["lr"])
        self.steps, self.value = 0, 0.0

    def train(self, budget):
        crash = self.config.get("crash")
        if (
            crash
            and self.seed == crash["seed"]
            and self.steps >= crash["at"]
            and not os.path.exists(crash["marker"])
        ):
            Path(crash["marker"]).write_text("crashed")
            import ctypes

            ctypes.string_at(0)  # SIGSEGV
        if self.config.get("log"):
            with open(self.config["log"], "a") as f:
                row = {"seed": self.seed, "start": self.steps, "lr": self.lr, "member": self.member}
                f.write(json.dumps({**row, "pid": os.getpid()}) + "\n")
        slow = self.config.get("slow", {})  # {member: M, sleep: S}: only member M sleeps
        mine = slow.get("member") == self.member
        time.sleep(float(slow["sleep"]) if mine else float(self.config.get("sleep", 0)))
        piece = int(self.config.get("piece", 1))  # trains whole pieces, as SB3's PPO whole rollouts
        budget = -(-budget // piece) * piece
        for _ in range(budget):
            self.value += self.lr if self.lr < 0.3 else 0.6 - self.lr
        self.steps += budget
        return {"score": self.value, "budget": float(self.steps)}

    def _saw(self, event, path):
        if self.config.get("saves"):
            with open(self.config["saves"], "a") as f:
                f.write(f"{event} {Path(path).resolve()}\n")

    def save(self, path):
        self._saw("save", path)
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "s.json").write_text(
            json.dumps({"steps": self.steps, "value": self.value, "lr": self.lr})
        )

    def load(self, path):
        self._saw("load", path)
        s = json.loads((Path(path) / "s.json").read_text())
        self.steps, self.value, self.lr = s["steps"], s["value"], s["lr"]  # the donor's lr (ray#62173)

    def reconfigure(self, config):
        self.lr = float(config["lr"])


class NoReconfigure:
    """A Trainable without reconfigure: it cannot take a mutable hyperparameter."""

    def __init__(self, config, ctx):
        self.t = 0

    def train(self, budget):
        self.t += budget
        return {"value": float(self.t), "budget": self.t}

    def save(self, path):
        Path(path).mkdir(parents=True, exist_ok=True)

    def load(self, path):
        pass


class Pow2:
    """A Trainable over a power-of-two size (``n``) and an lr: value = lr * log2(n) per step."""

    def __init__(self, config, ctx):
        self.n, self.lr, self.t, self.value = int(config["n"]), float(config["lr"]), 0, 0.0
        if self.n & (self.n - 1):
            raise ValueError(f"n must be a power of two, got {self.n}")

    def train(self, budget):
        self.t += budget
        self.value += budget * self.lr * math.log2(self.n)
        return {"value": self.value, "budget": self.t}

    def reconfigure(self, config):
        self.lr = float(config["lr"])
        if "n" in config and int(config["n"]) & (int(config["n"]) - 1):
            raise ValueError(f"n must be a power of two, got {config['n']}")
        self.n = int(config.get("n", self.n))

    def save(self, path):
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "s.json").write_text(json.dumps([self.n, self.lr, self.t, self.value]))

    def load(self, path):
        self.n, self.lr, self.t, self.value = json.loads((Path(path) / "s.json").read_text())


def faulty(config):
    """Fails in the way ``config["fault"]`` names: ``segfault``, ``exit`` (os._exit(3)), ``sys_exit``
    (sys.exit(3)), ``memory`` (allocates ``config["gb"]`` GB), ``hang`` (sleeps an hour), ``print``
    (writes to stdout and stderr); ``none`` returns x."""
    import sys

    fault = config.get("fault", "none")
    print(f"trial x={config['x']} fault={fault}", flush=True)
    if fault == "segfault":
        import ctypes

        ctypes.string_at(0)
    elif fault == "exit":
        os._exit(3)
    elif fault == "sys_exit":
        sys.exit(3)
    elif fault == "memory":
        block = bytearray(int(float(config.get("gb", 4)) * 1e9))
        return float(len(block))
    elif fault == "hang":
        time.sleep(3600)
    elif fault == "print":
        print("to stderr", file=sys.stderr, flush=True)
    return float(config["x"])


class Recorder:
    """A Trainable that records every configuration a population hands it, and trains nothing.

    Fixed args: ``log`` (a JSONL file: a ``build`` row per instance with its config, a ``reconfigure``
    row with the config it held and the one it got, a ``train`` row per call with the steps and the
    score before and after), ``rate`` (the parameter the score grows by per step, default ``x``; an
    odd seed's grows twice as fast, so seeds differ) and ``peak`` (steps after which the score falls,
    so a curve's best and last evaluations differ). Its state, config included, is saved and loaded.
    """

    def __init__(self, config, ctx):
        self.config = dict(config)
        self.member, self.seed = ctx.number, ctx.seed
        self.steps, self.value = 0, 0.0
        self._log("build", config=self.config)

    def _log(self, event, **row):
        with open(self.config["log"], "a") as f:
            f.write(json.dumps({"event": event, "member": self.member, "seed": self.seed, **row}) + "\n")

    def train(self, budget):
        before = self.value
        rate = float(self.config[self.config.get("rate", "x")]) * (1 + self.seed % 2)
        peak = self.config.get("peak")
        for t in range(self.steps, self.steps + budget):
            self.value += rate if peak is None or t < peak else -rate
        self._log("train", start=self.steps, end=self.steps + budget, before=before, value=self.value)
        self.steps += budget
        return {"score": self.value, "budget": float(self.steps)}

    def reconfigure(self, config):
        self._log("reconfigure", steps=self.steps, before=dict(self.config), after=dict(config))
        self.config.update(config)

    def save(self, path):
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "s.json").write_text(json.dumps([self.config, self.steps, self.value]))

    def load(self, path):
        self.config, self.steps, self.value = json.loads((Path(path) / "s.json").read_text())


class Plateau:
    """Its training return rises by 1 per step up to ``cap`` (default 20), then stalls; it reports the
    learning rate in effect (``lr``), so a test sees a change in place take effect."""

    training_metrics = ("train_return",)  # reported by every train(), which a population may decide on

    def __init__(self, config, ctx):
        self.t, self.cap = 0, int(config.get("cap", 20))
        self.lr = float(config["learning_rate"])

    def train(self, budget):
        self.t += budget
        ret = float(min(self.t, self.cap))
        return {"score": ret, "train_return": ret, "lr": self.lr, "budget": float(self.t)}

    def reconfigure(self, config):
        self.lr = float(config.get("learning_rate", self.lr))

    def save(self, path):
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "s.json").write_text(json.dumps({"t": self.t, "lr": self.lr}))

    def load(self, path):
        s = json.loads((Path(path) / "s.json").read_text())
        self.t, self.lr = s["t"], s["lr"]


class Raced(Toy):
    """:class:`Toy` that a population's final race can evaluate (``evaluates``): ``evaluate(seed)`` is
    its score plus N(0, ``eval_noise``) drawn from the seed, after ``eval_sleep`` seconds, and appends
    ``{"seed": training seed, "eval": seed}`` to the file ``eval_log`` (so a test sees what ran)."""

    evaluates = True

    def evaluate(self, seed):
        if self.config.get("eval_log"):
            with open(self.config["eval_log"], "a") as f:
                f.write(json.dumps({"seed": self.seed, "eval": seed}) + "\n")
        time.sleep(float(self.config.get("eval_sleep", 0)))
        noise = float(self.config.get("eval_noise", 0.0)) * float(np.random.default_rng(seed).normal())
        return {"score": self.value + noise, "budget": float(self.steps)}
