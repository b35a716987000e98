"""How far a sweep has come: what the executors report to a progress display after each event.

The estimate of the time left is made from **budget units**, not finished trials: the units the sweep
spent per second of its wall time so far, against the units still planned. For a multi-fidelity
method the plan shrinks as trials are pruned (a trial still to come is expected to spend what the
finished ones spent on average); for a population, it is every member's remaining steps.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field


@dataclass
class SweepStatus:
    """A snapshot of a running sweep.

    Attributes:
        kind: ``"trials"`` or ``"population"``.
        done: trials counted (population: member-intervals done); ``total`` the planned number.
        units_done: budget units spent in this run of the sweep (running trials' reports included).
        units_left: budget units still planned (an estimate for methods that stop trials early).
        unit: the target's budget unit (``env_steps``).
        best: the best value so far (None before the first).
        states: trials by state (``complete``, ``pruned``, ``fail``, ``interrupted``, ``running``).
        elapsed: seconds since this run of the sweep started.
        line: what just happened, in one line (a finished trial, an interval), for logs.
    """

    kind: str
    total: int
    unit: str = "steps"
    done: int = 0
    units_done: float = 0.0
    units_left: float = 0.0
    best: float | None = None
    states: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    line: str = ""

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def eta(self) -> float | None:
        """Seconds left, estimated from units per second so far; None until something was spent."""
        if self.units_done <= 0 or self.elapsed <= 0:
            return None
        rate = self.units_done / self.elapsed
        return self.units_left / rate if rate > 0 else None

    def count(self, state: str, change: int = 1) -> None:
        self.states[state] = self.states.get(state, 0) + change
        if self.states[state] <= 0:
            del self.states[state]

    def offer(self, value: float | None, maximize: bool) -> None:
        """Keep ``value`` if it is the best so far."""
        if value is None or not math.isfinite(value):
            return
        if self.best is None or (value > self.best if maximize else value < self.best):
            self.best = value


def duration(seconds: float | None) -> str:
    """``1:02:03``, ``4:05`` or ``-`` for an unknown duration."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
