import math

import pytest

from autorl.errors import ConfigError, TrialDiverged, TrialPruned
from autorl.targets import (
    Aggregate,
    Select,
    TargetKind,
    TrialContext,
    aggregate_seeds,
    run_target,
    target_kind,
)
from tests import toy_targets as toys


def test_kinds():
    assert target_kind(toys.quad) is TargetKind.FUNCTION
    assert target_kind(toys.curve) is TargetKind.FUNCTION_WITH_CONTEXT
    assert target_kind(toys.Counter) is TargetKind.TRAINABLE
    with pytest.raises(ConfigError, match="lacks train"):
        target_kind(type("NoTrain", (), {"save": lambda s, p: None, "load": lambda s, p: None}))
    with pytest.raises(ConfigError, match="must take"):
        target_kind(lambda a, b, c: 0)


def test_plain_function_and_context_function():
    r = run_target(toys.quad, {"x": 0.3, "y": 1}, TrialContext(metric="value"))
    assert r.metrics["value"] == pytest.approx(0.1) and r.metrics["wall_s"] >= 0
    ctx = TrialContext(budget=100, report_every=25, metric="score")
    r = run_target(toys.curve, {"x": 0.3}, ctx)
    assert [s for s, _ in r.curve] == [25, 50, 75, 100] and r.metrics["score"] == pytest.approx(1.0)


def test_trainable_is_driven_in_intervals_and_value_selection():
    ctx = TrialContext(budget=10, report_every=4, metric="value")
    r = run_target(toys.Counter, {"x": 2.0}, ctx)
    assert r.curve == [(4, 8.0), (8, 16.0), (10, 20.0)] and r.budget_used == 10
    r = run_target(
        toys.Counter,
        {"x": -1.0},
        TrialContext(budget=10, report_every=4, metric="value"),
        select=Select.BEST,
        maximize=True,
    )
    assert r.metrics["value"] == -4.0
    r = run_target(
        toys.Counter,
        {"x": 1.0},
        TrialContext(budget=10, report_every=4, metric="value"),
        select=Select.MEAN_LAST,
        k=2,
    )
    assert r.metrics["value"] == pytest.approx(9.0)


def test_pruning_raises_from_report():
    ctx = TrialContext(budget=100, report_every=25, metric="score", should_prune=lambda v, s: s >= 50)
    with pytest.raises(TrialPruned, match="step 50"):
        run_target(toys.curve, {"x": 0.0}, ctx)


def test_nan_is_divergence():
    with pytest.raises(TrialDiverged):
        run_target(toys.flaky, {"x": 0.9}, TrialContext(metric="value"))


def test_several_seeds_are_aggregated_and_recorded():
    r = run_target(
        toys.noisy,
        {"x": 0.0},
        TrialContext(metric="value"),
        seeds=[1, 2, 3, 4, 5],
        aggregate=Aggregate.MEDIAN,
    )
    per = [s["value"] for s in r.per_seed]
    assert len(set(per)) == 5  # each seed really differs
    assert r.metrics["value"] == pytest.approx(sorted(per)[2])
    assert Aggregate.IQM([1, 2, 3, 4, 100, -100, 5, 6]) == pytest.approx(3.5)


def test_pessimistic_aggregates_lean_against_the_objective_only():
    values = [1.0, 2.0, 3.0, 4.0]
    sem = math.sqrt(5 / 3) / 2  # s / sqrt(n)
    assert Aggregate.LCB(values) == pytest.approx(2.5 - sem)
    assert Aggregate.LCB(values, maximize=False) == pytest.approx(2.5 + sem)
    assert Aggregate.Q25(values) == pytest.approx(1.75)
    assert Aggregate.Q25(values, maximize=False) == pytest.approx(3.25)
    assert Aggregate.LCB([7.0]) == 7.0
    # a minimised loss: the pessimistic side is the high one; the other metric gets the mean
    per_seed = [{"loss": v, "other": v} for v in values]
    got = aggregate_seeds(per_seed, Aggregate.Q25, "loss", maximize=False)
    assert got == {"loss": pytest.approx(3.25), "other": pytest.approx(2.5)}
    steady = run_target(toys.noisy, {"x": 0.0}, TrialContext(metric="value"), seeds=[1, 2, 3, 4])
    lcb = run_target(
        toys.noisy, {"x": 0.0}, TrialContext(metric="value"), seeds=[1, 2, 3, 4], aggregate=Aggregate.LCB
    )
    assert lcb.metrics["value"] < steady.metrics["value"]


def test_missing_metric_is_an_error():
    with pytest.raises(KeyError, match="without the optimised metric 'value'"):
        run_target(toys.two_objectives, {"x": 0.0}, TrialContext(metric="value"))
    assert math.isfinite(
        run_target(toys.two_objectives, {"x": 0.0}, TrialContext(metric="loss")).metrics["cost"]
    )


class _Pieces:
    """Trains whole pieces of ``piece`` steps from where it is (as SB3's PPO finishes its rollout)."""

    piece = 32

    def __init__(self, config, ctx):
        self.done = 0

    def train(self, budget):
        until = self.done + budget
        while self.done < until:
            self.done += self.piece
        return {"value": float(self.done), "budget": float(self.done)}

    def save(self, path):
        pass

    def load(self, path):
        pass


class _Stuck(_Pieces):
    def train(self, budget):
        return {"value": 0.0, "budget": 0.0}


def test_a_batched_target_reports_each_step_once_and_a_stuck_one_is_an_error():
    ctx = TrialContext(seed=0, budget=256, report_every=25, metric="value")
    r = run_target(_Pieces, {}, ctx)
    steps = [s for s, _ in r.curve]
    assert steps == sorted(set(steps)) and steps[-1] == 256 and r.metrics["budget"] == 256
    with pytest.raises(RuntimeError, match="no progress"):
        run_target(_Stuck, {}, TrialContext(seed=0, budget=256, report_every=25, metric="value"))


class _Pieces48(_Pieces):
    piece = 48


def test_reports_fall_within_one_piece_of_each_interval_and_the_budget_is_overshot_by_less():
    """Every report k lies in [k * report_every, k * report_every + piece): runs of any granularity are
    compared at the same points (asking ``report_every`` more each time drifted: 144, 288, 432, 528)."""
    r = run_target(_Pieces48, {}, TrialContext(seed=0, budget=500, report_every=100, metric="value"))
    steps = [s for s, _ in r.curve]
    assert steps == [144, 240, 336, 432, 528]
    assert all(100 * k <= s < 100 * k + 48 for k, s in enumerate(steps, start=1))
    assert r.budget_used == 528 < 500 + 48
