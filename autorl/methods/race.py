"""Racing the incumbent on fresh seeds (SMAC's intensification), as pure decisions over evaluations.

A sweep that races keeps its best configurations competing as it goes. A configuration's first trial
(its *tuning* evaluation, block 0) only makes it an entrant; the race judges entrants on *race blocks*
1, 2, ... whose seeds are the same for every configuration and never used for tuning, so two
configurations are compared on the seeds both have run (common random numbers) and a lucky tuning seed
earns a race, never the title:

- the incumbent is the configuration with the most race blocks, the best mean among those tied (one
  that failed a block only when all did);
- a challenger runs the incumbent's blocks one by one and is rejected as soon as its mean on the blocks
  both have run is not better than the incumbent's on the same blocks; having run all of them and still
  ahead, it becomes the incumbent;
- before a new challenger starts, the incumbent has run (or is running) one block more than there
  are other configurations with race blocks, run or running (SMAC's intensification: a block per
  challenge, up to ``seeds``), so its mean firms up as challengers come, even where every entrant's
  tuning value beats it;
- with no challenger to run, the incumbent runs one more block, up to ``seeds`` blocks;
- an entrant challenges only while its tuning value beats the incumbent's race mean (best first).

Everything here is a function of the evaluations so far (the study), so a killed sweep resumes its race
where it stopped. Values are compared as scores, larger is better; a failed race block scores -inf.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from autorl.targets.runner import iqm


@dataclass(frozen=True)
class Evaluation:
    """One finished evaluation of a configuration: ``config`` names it (its first trial's number),
    ``block`` 0 is its tuning evaluation, 1, 2, ... its race blocks; ``score`` is the value signed so that
    larger is better (-inf for a failed race block)."""

    config: int
    block: int
    score: float


@dataclass
class Standing:
    """The race so far: each configuration's tuning score and race scores by block, and the incumbent."""

    tuning: dict[int, float] = field(default_factory=dict)
    blocks: dict[int, dict[int, float]] = field(default_factory=dict)
    incumbent: int | None = None

    def mean(self, config: int, on: Iterable[int] | None = None) -> float:
        """``config``'s mean race score over its blocks (or over the blocks ``on``)."""
        own = self.blocks.get(config, {})
        keys = list(own) if on is None else [b for b in on if b in own]
        return float(np.mean([own[b] for b in keys])) if keys else math.nan

    def beats(self, challenger: int, incumbent: int) -> bool | None:
        """Whether ``challenger`` is ahead of ``incumbent`` on the race blocks both have run (None: they
        share none yet)."""
        common = set(self.blocks.get(challenger, {})) & set(self.blocks.get(incumbent, {}))
        if not common:
            return None
        return self.mean(challenger, common) > self.mean(incumbent, common)

    def rejected(self, config: int) -> bool:
        """A configuration that lost to the incumbent on their common blocks."""
        if self.incumbent is None or config == self.incumbent:
            return False
        return self.beats(config, self.incumbent) is False


def standing(evaluations: Iterable[Evaluation]) -> Standing:
    """The race's standing after ``evaluations``."""
    s = Standing()
    for e in evaluations:
        if e.block == 0:
            s.tuning[e.config] = e.score
        else:
            s.blocks.setdefault(e.config, {})[e.block] = e.score
    raced = [c for c, b in s.blocks.items() if b]
    if raced:  # a configuration that failed a block is named only if every one did
        s.incumbent = max(raced, key=lambda c: (s.mean(c) > -math.inf, len(s.blocks[c]), s.mean(c), -c))
    return s


def next_block(s: Standing, running: Mapping[int, Iterable[int]], seeds: int) -> tuple[int, int] | None:
    """The race block to run next, ``(config, block)``, or None when the race has nothing to run now.

    ``running``: the blocks of each configuration in flight (they are not given out twice); ``seeds``:
    the most race blocks a configuration runs.
    """
    busy = {c: set(b) for c, b in running.items()}

    def free(config: int, among: Iterable[int]) -> int | None:
        taken = set(s.blocks.get(config, {})) | busy.get(config, set())
        return next((b for b in among if b not in taken), None)

    inc = s.incumbent
    if inc is None:  # the first race: the best entrant runs block 1
        if not s.tuning or busy:
            return None
        best = max(s.tuning, key=lambda c: (s.tuning[c], -c))
        return (best, 1) if math.isfinite(s.tuning[best]) else None
    bar = s.mean(inc)
    done = len(s.blocks[inc])
    challengers = [
        c
        for c in s.tuning
        if c != inc
        and not s.rejected(c)
        and len(s.blocks.get(c, {})) < done
        and (c in s.blocks or s.tuning[c] > bar)
    ]
    # a race under way is finished first, on a block the incumbent has run
    under_way = sorted((c for c in challengers if c in s.blocks), key=lambda c: (-len(s.blocks[c]), c))
    for c in under_way:
        block = free(c, sorted(s.blocks[inc]))
        if block is not None:
            return c, block
    # then the incumbent runs a block per other configuration that has run or is running race blocks
    # (up to seeds; its own blocks in flight count)
    challenged = len({c for c in (*s.blocks, *busy) if c != inc})
    if len(set(s.blocks[inc]) | busy.get(inc, set())) < min(seeds, 1 + challenged):
        block = free(inc, range(1, seeds + 1))
        if block is not None:
            return inc, block
    # then the most promising entrant
    for c in sorted((c for c in challengers if c not in s.blocks), key=lambda c: (-s.tuning[c], c)):
        block = free(c, sorted(s.blocks[inc]))
        if block is not None:
            return c, block
    block = free(inc, range(1, seeds + 1))
    return (inc, block) if block is not None else None


@dataclass(frozen=True)
class Estimate:
    """A configuration's race result: its seeds' values (the user's sign), mean, IQM and a 95% CI of the
    mean (Student's t; nan with fewer than two seeds)."""

    values: tuple[float, ...]
    mean: float
    iqm: float
    ci95: tuple[float, float]


def estimate(values: Iterable[float]) -> Estimate:
    """Mean, IQM and the 95% t-interval of the mean of ``values``."""
    from scipy import stats  # here: importing scipy.stats costs every worker's start about a second

    v = np.asarray(list(values), dtype=float)
    mean = float(v.mean()) if v.size else math.nan
    if v.size < 2 or not np.all(np.isfinite(v)):
        ci = (math.nan, math.nan)
    else:
        half = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
        ci = (mean - half, mean + half)
    return Estimate(tuple(float(x) for x in v), mean, iqm(v) if v.size else math.nan, ci)
