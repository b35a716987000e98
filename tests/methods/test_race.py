"""The race's decisions (SMAC-style intensification) at hand-built standings."""

from __future__ import annotations

import math

import pytest

from autorl.methods.race import Evaluation, estimate, next_block, standing


def _s(tuning: dict[int, float], blocks: dict[int, list[float]]):
    evals = [Evaluation(c, 0, v) for c, v in tuning.items()]
    evals += [Evaluation(c, b + 1, v) for c, vs in blocks.items() for b, v in enumerate(vs)]
    return standing(evals)


def test_the_first_race_runs_the_best_entrant_and_only_once_at_a_time() -> None:
    s = _s({0: 1.0, 1: 3.0, 2: 2.0}, {})
    assert s.incumbent is None
    assert next_block(s, {}, seeds=5) == (1, 1)
    assert next_block(s, {1: [1]}, seeds=5) is None  # its block is running: the sampler's turn


def test_the_incumbent_has_the_most_blocks_then_the_best_mean() -> None:
    assert _s({0: 9.0, 1: 0.0}, {0: [1.0], 1: [0.5, 0.5]}).incumbent == 1
    assert _s({0: 0.0, 1: 0.0}, {0: [1.0, 2.0], 1: [1.0, 1.0]}).incumbent == 0


def test_a_challenger_runs_the_incumbents_blocks_and_is_rejected_once_behind() -> None:
    # incumbent 0 has run 3 blocks (mean 1); entrant 1's tuning value 5 beats that, so it challenges
    s = _s({0: 2.0, 1: 5.0, 2: 0.5}, {0: [1.0, 1.0, 1.0]})
    assert next_block(s, {}, seeds=5) == (1, 1)
    assert next_block(s, {1: [1]}, seeds=5) == (1, 2)  # blocks in flight are not given out twice
    behind = _s({0: 2.0, 1: 5.0, 2: 0.5}, {0: [1.0, 1.0, 1.0], 1: [0.9]})
    assert behind.rejected(1)
    # entrant 2's tuning value (0.5) is below the incumbent's race mean: it never challenges, so the
    # incumbent runs its fourth block
    assert next_block(behind, {}, seeds=5) == (0, 4)


def test_the_incumbent_runs_a_block_per_challenge_before_a_new_challenger_starts() -> None:
    """Race seeds that are unlucky for everyone put every entrant's tuning value above the incumbent's
    race mean. Were challengers always first, the incumbent would stay on one block and the race would
    name a configuration on one seed; it runs a block per configuration that challenged instead."""
    s = _s({0: 2.0, 1: 2.1, 2: 2.2, 3: 2.3}, {0: [0.2], 1: [0.1], 2: [0.15]})  # 1 and 2 lost on block 1
    assert s.incumbent == 0
    assert next_block(s, {}, seeds=5) == (0, 2)  # 2 challenges so far: 3 blocks for the incumbent first
    assert next_block(s, {0: [2]}, seeds=5) == (0, 3)
    assert next_block(s, {0: [2, 3]}, seeds=5) == (3, 1)  # both in flight: entrant 3 may start
    # with 3 running its first block, 3 configurations have challenged: a 4th block before entrant 4
    s4 = _s({0: 2.0, 1: 2.1, 2: 2.2, 3: 2.3, 4: 2.4}, {0: [0.2], 1: [0.1], 2: [0.15]})
    assert next_block(s4, {0: [2, 3], 3: [1]}, seeds=5) == (0, 4)
    s = _s({0: 2.0, 1: 2.1, 2: 2.2, 3: 2.3}, {0: [0.2, 0.3, 0.25], 1: [0.1], 2: [0.15]})
    assert next_block(s, {}, seeds=5) == (3, 1)  # 3 blocks for 2 challenges: entrant 3's turn
    assert next_block(s, {}, seeds=3) == (3, 1)  # capped at seeds


def test_a_challenger_ahead_on_all_the_incumbents_blocks_takes_over() -> None:
    s = _s({0: 2.0, 1: 5.0}, {0: [1.0, 1.0], 1: [1.5, 0.9]})
    assert s.incumbent == 1 and s.rejected(0)
    assert next_block(s, {}, seeds=5) == (1, 3)


def test_the_race_stops_at_seeds_blocks_and_a_failed_block_loses() -> None:
    s = _s({0: 2.0}, {0: [1.0, 1.0, 1.0]})
    assert next_block(s, {}, seeds=3) is None
    failed = _s({0: 2.0, 1: 5.0}, {0: [1.0, 1.0], 1: [-math.inf]})
    assert failed.rejected(1) and failed.incumbent == 0


def test_estimate_reports_mean_iqm_and_a_t_interval() -> None:
    e = estimate([1.0, 2.0, 3.0, 4.0])
    assert e.mean == 2.5 and e.iqm == 2.5
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2  # t(0.975, 3) * s / sqrt(n)
    assert e.ci95 == pytest.approx((2.5 - half, 2.5 + half))
    assert all(math.isnan(x) for x in estimate([1.0]).ci95)
