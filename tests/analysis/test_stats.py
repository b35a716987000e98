"""Tests of autorl.analysis.stats against hand-computed values and known sampling behaviour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from autorl.analysis import (
    Interval,
    anytime_curve,
    iqm,
    mean,
    median,
    normalize,
    optimality_gap,
    pairwise_probability_of_improvement,
    performance_profile,
    probability_of_improvement,
    probability_of_improvement_ci,
    scores_from_frame,
    stratified_bootstrap_ci,
)

# ---------------------------------------------------------------------------------------------------
# Point aggregates and normalisation


def test_iqm_of_one_to_eight_is_mean_of_middle_four() -> None:
    x = np.arange(1, 9, dtype=float).reshape(4, 2)
    assert iqm(x) == pytest.approx((3 + 4 + 5 + 6) / 4)


def test_iqm_cuts_floor_of_a_quarter_from_each_end() -> None:
    # n = 10: int(2.5) = 2 cut each side, leaving 3..8.
    x = np.array([[10, 1], [2, 9], [3, 8], [4, 7], [100, -50]], dtype=float)
    assert iqm(x) == pytest.approx(np.mean([2, 3, 4, 7, 8, 9]))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 13, 40])
def test_iqm_matches_scipy_trim_mean(n: int) -> None:
    x = np.random.default_rng(n).normal(size=(n, 3))
    assert iqm(x) == pytest.approx(sps.trim_mean(x.ravel(), 0.25))


def test_mean_and_median_pool_runs_and_tasks() -> None:
    x = np.array([[1.0, 2.0], [3.0, 10.0]])
    assert mean(x) == pytest.approx(4.0)
    assert median(x) == pytest.approx(2.5)


def test_optimality_gap_caps_scores_at_gamma() -> None:
    x = np.array([[0.5, 1.5], [1.0, 0.0]])
    assert optimality_gap(x) == pytest.approx(1 - (0.5 + 1 + 1 + 0) / 4)
    assert optimality_gap(x, gamma=2.0) == pytest.approx(2 - (0.5 + 1.5 + 1 + 0) / 4)


def test_normalize_per_task_reference() -> None:
    scores = np.array([[0.0, 5.0], [10.0, 15.0]])
    out = normalize(scores, ref_min=[0.0, 5.0], ref_max=[10.0, 25.0])
    np.testing.assert_allclose(out, [[0.0, 0.0], [1.0, 0.5]])


def test_normalize_scalar_reference_applies_to_every_task() -> None:
    out = normalize(np.array([[-1.0, 3.0]]), ref_min=-1.0, ref_max=3.0)
    np.testing.assert_allclose(out, [[0.0, 1.0]])


def test_normalize_refuses_empty_range_and_wrong_length() -> None:
    with pytest.raises(ValueError, match=r"ref_max > ref_min.*ref_min=2.0, ref_max=2.0"):
        normalize(np.zeros((2, 2)), ref_min=[0.0, 2.0], ref_max=[1.0, 2.0])
    with pytest.raises(ValueError, match="one reference min and max per task"):
        normalize(np.zeros((2, 3)), ref_min=[0.0, 0.0], ref_max=[1.0, 1.0])


# ---------------------------------------------------------------------------------------------------
# Stratified bootstrap


def test_bootstrap_ci_of_large_normal_sample_covers_mean_with_expected_width() -> None:
    true_mean, sigma, runs, tasks = 3.0, 2.0, 500, 4
    x = np.random.default_rng(1).normal(true_mean, sigma, size=(runs, tasks))
    iv = stratified_bootstrap_ci({"m": x}, mean, reps=2000, seed=0)["m"]
    assert iv.low < true_mean < iv.high
    assert iv.low < iv.point < iv.high
    expected_width = 2 * 1.96 * sigma / np.sqrt(runs * tasks)
    assert iv.high - iv.low == pytest.approx(expected_width, rel=0.1)


def test_bootstrap_ci_of_constant_scores_has_zero_width() -> None:
    iv = stratified_bootstrap_ci({"m": np.full((6, 3), 0.7)}, iqm, reps=200)["m"]
    assert iv == Interval(pytest.approx(0.7), pytest.approx(0.7), pytest.approx(0.7))


def test_bootstrap_resamples_within_each_task() -> None:
    # Constant within each task but not across tasks: a stratified resample always keeps 3 zeros and
    # 3 ones per replicate, so the mean never moves; pooling runs across tasks would give a wide CI.
    x = np.column_stack([np.zeros(3), np.ones(3)])
    iv = stratified_bootstrap_ci({"m": x}, mean, reps=500)["m"]
    assert (iv.point, iv.low, iv.high) == pytest.approx((0.5, 0.5, 0.5))


def test_bootstrap_ci_coverage_is_near_nominal() -> None:
    rng = np.random.default_rng(7)
    covered = 0
    trials = 100
    for i in range(trials):
        x = rng.normal(0.0, 1.0, size=(40, 1))
        iv = stratified_bootstrap_ci({"m": x}, mean, reps=500, seed=i)["m"]
        covered += iv.low <= 0.0 <= iv.high
    # Nominal 95%; the percentile bootstrap runs slightly under at n = 40. Binomial sd is about 2%.
    assert 0.86 <= covered / trials <= 0.995


def test_bootstrap_is_seeded_and_per_method_independent() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
    both = stratified_bootstrap_ci({"b": b, "a": a}, iqm, reps=300, seed=5)
    alone = stratified_bootstrap_ci({"a": a}, iqm, reps=300, seed=5)
    assert both["a"] == alone["a"]
    other_seed = stratified_bootstrap_ci({"a": a}, iqm, reps=300, seed=6)
    assert other_seed["a"] != alone["a"]
    narrow = stratified_bootstrap_ci({"a": a}, iqm, reps=300, ci=0.5, seed=5)["a"]
    assert alone["a"].low < narrow.low <= narrow.high < alone["a"].high


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"reps": 0}, "reps >= 1"), ({"ci": 1.0}, "0 < ci < 1"), ({"ci": 0.0}, "0 < ci < 1")],
)
def test_bootstrap_refuses_bad_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        stratified_bootstrap_ci({"m": np.ones((3, 2))}, mean, **kwargs)


def test_bootstrap_refuses_bad_scores() -> None:
    with pytest.raises(ValueError, match=r"'m'.*shape \(runs, tasks\).*\(5,\)"):
        stratified_bootstrap_ci({"m": np.ones(5)}, mean)
    with pytest.raises(ValueError, match="must be finite"):
        stratified_bootstrap_ci({"m": np.array([[1.0], [np.nan]])}, mean)


# ---------------------------------------------------------------------------------------------------
# Probability of improvement


def test_poi_of_identical_samples_is_one_half() -> None:
    x = np.random.default_rng(0).normal(size=(7, 3))
    assert probability_of_improvement(x, x) == pytest.approx(0.5)


def test_poi_of_separated_samples_is_one_or_zero() -> None:
    x = np.random.default_rng(0).uniform(2, 3, size=(5, 2))
    y = np.random.default_rng(1).uniform(0, 1, size=(4, 2))
    assert probability_of_improvement(x, y) == 1.0
    assert probability_of_improvement(y, x) == 0.0


def test_poi_hand_case_with_ties() -> None:
    # Task 0: x = 1, 2, 3, 3 vs y = 2, 3. Pair scores: 1 -> 0 + 0; 2 -> 1/2 + 0; each 3 -> 1 + 1/2.
    #   Sum 3.5 over 8 pairs = 0.4375.
    # Task 1: x = 0, 0, 0, 5 vs y = 1, 1: only 5 wins, twice: 2/8 = 0.25.
    x = np.array([[1, 0], [2, 0], [3, 0], [3, 5]], dtype=float)
    y = np.array([[2, 1], [3, 1]], dtype=float)
    assert probability_of_improvement(x, y) == pytest.approx((0.4375 + 0.25) / 2)
    assert probability_of_improvement(y, x) == pytest.approx(1 - (0.4375 + 0.25) / 2)
    u = sps.mannwhitneyu(x, y, axis=0).statistic / (len(x) * len(y))
    assert probability_of_improvement(x, y) == pytest.approx(u.mean())


def test_poi_ci_contains_one_half_for_same_distribution_and_is_degenerate_when_separated() -> None:
    rng = np.random.default_rng(2)
    same = probability_of_improvement_ci(rng.normal(size=(30, 3)), rng.normal(size=(30, 3)), reps=500)
    assert same.low < 0.5 < same.high
    sep = probability_of_improvement_ci(np.ones((4, 2)), np.zeros((3, 2)), reps=200)
    assert (sep.point, sep.low, sep.high) == (1.0, 1.0, 1.0)


def test_pairwise_poi_covers_every_ordered_pair() -> None:
    rng = np.random.default_rng(4)
    d = {"a": rng.normal(1, 1, (5, 2)), "b": rng.normal(0, 1, (5, 2)), "c": rng.normal(0, 1, (5, 2))}
    out = pairwise_probability_of_improvement(d, reps=100)
    assert set(out) == {(p, q) for p in d for q in d if p != q}
    for (p, q), iv in out.items():
        assert iv.point == pytest.approx(1 - out[(q, p)].point)


def test_poi_refuses_different_task_counts() -> None:
    with pytest.raises(ValueError, match=r"same tasks.*2 and 3"):
        probability_of_improvement(np.ones((3, 2)), np.ones((3, 3)))


# ---------------------------------------------------------------------------------------------------
# Performance profiles


def test_performance_profile_hand_case() -> None:
    x = np.array([[0.1, 0.6], [0.5, 0.9]])
    prof = performance_profile({"m": x}, taus=[0.0, 0.5, 0.8, 1.0], reps=300)["m"]
    # tau 0.5: task 0 has none strictly above (0.5 is not > 0.5), task 1 has both -> 0.5.
    np.testing.assert_allclose(prof.point, [1.0, 0.5, 0.25, 0.0])
    assert np.all(prof.low <= prof.point) and np.all(prof.point <= prof.high)
    # Below every score each resample is also all above: zero width. Above every score: likewise.
    assert (prof.low[0], prof.high[0], prof.low[-1], prof.high[-1]) == (1.0, 1.0, 0.0, 0.0)
    assert prof.low[2] < prof.high[2]


def test_performance_profile_refuses_bad_taus() -> None:
    with pytest.raises(ValueError, match="taus"):
        performance_profile({"m": np.ones((2, 2))}, taus=[])


# ---------------------------------------------------------------------------------------------------
# Tidy frames and anytime curves


def _tidy() -> pd.DataFrame:
    rows = [
        ("b", "t2", 1, 6.0),
        ("a", "t1", 1, 2.0),
        ("a", "t2", 0, 3.0),
        ("b", "t1", 0, 5.0),
        ("a", "t1", 0, 1.0),
        ("a", "t2", 1, 4.0),
        ("b", "t1", 1, 7.0),
        ("b", "t2", 0, 8.0),
    ]
    return pd.DataFrame(rows, columns=["method", "task", "seed", "score"])


def test_scores_from_frame_orders_tasks_and_seeds() -> None:
    d = scores_from_frame(_tidy())
    assert list(d) == ["b", "a"]
    np.testing.assert_array_equal(d["a"], [[1.0, 3.0], [2.0, 4.0]])
    np.testing.assert_array_equal(d["b"], [[5.0, 8.0], [7.0, 6.0]])
    d2 = scores_from_frame(_tidy(), tasks=["t2", "t1"])
    np.testing.assert_array_equal(d2["a"], [[3.0, 1.0], [4.0, 2.0]])


def test_scores_from_frame_reads_another_value_column() -> None:
    df = _tidy().assign(normalized=lambda f: f["score"] / 10)
    np.testing.assert_allclose(scores_from_frame(df, value="normalized")["a"], [[0.1, 0.3], [0.2, 0.4]])


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda f: pd.concat([f, f.iloc[:1]]), "once.*duplicate"),
        (lambda f: f[~((f["method"] == "a") & (f["task"] == "t2"))], "'a' has none on 't2'"),
        (
            lambda f: f[~((f["method"] == "a") & (f["task"] == "t2") & (f["seed"] == 1))],
            "same number of runs",
        ),
        (lambda f: f.assign(score=f["score"].where(f["seed"] == 0, np.nan)), "finite"),
        (lambda f: f.drop(columns="seed"), r"lacks \['seed'\]"),
    ],
)
def test_scores_from_frame_refuses_bad_frames(edit, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        scores_from_frame(edit(_tidy()))


def _trace() -> pd.DataFrame:
    # Seed 0 reports 1.0, then a worse 0.5 (incumbent stays 1.0), then 3.0; seed 1 reports 2.0 then 4.0.
    rows = [(0, 4, 3.0), (1, 2, 2.0), (0, 1, 1.0), (0, 3, 0.5), (1, 5, 4.0)]
    return pd.DataFrame(
        [("m", "t", s, b, v) for s, b, v in rows], columns=["method", "task", "seed", "budget", "score"]
    )


def test_anytime_curve_hand_case() -> None:
    out = anytime_curve(_trace(), budgets=[0, 1, 2, 3, 4, 5], reps=2000)
    assert list(out.columns) == ["method", "task", "budget", "iqm", "low", "high", "runs"]
    # Undefined until both seeds have reported (budget 2); then IQM of two values = their mean.
    np.testing.assert_allclose(out["iqm"], [np.nan, np.nan, 1.5, 1.5, 2.5, 3.5])
    # Resampling two seeds gives the low value, the mean or the high value; 2.5% tails land on the ends.
    np.testing.assert_allclose(out["low"], [np.nan, np.nan, 1.0, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(out["high"], [np.nan, np.nan, 2.0, 2.0, 3.0, 4.0])
    assert set(out["runs"]) == {2}


def test_anytime_curve_minimize_skips_nan_and_default_grid() -> None:
    trace = pd.concat([_trace(), pd.DataFrame([("m", "t", 1, 3, np.nan)], columns=_trace().columns)])
    out = anytime_curve(trace, n_points=5, reps=100, maximize=False)
    # Default grid runs from the task's first report (1) to its last (5); the method is undefined
    # until both its seeds have reported (2).
    np.testing.assert_allclose(out["budget"], [1, 2, 3, 4, 5])
    # Running minimum: seed 0 is 1, 0.5, 0.5, 0.5; seed 1 is 2 throughout (its NaN report is ignored).
    np.testing.assert_allclose(out["iqm"], [np.nan, 1.5, 1.25, 1.25, 1.25])


def test_anytime_default_grid_shows_an_early_method_before_a_late_one_reports() -> None:
    """A batch whose trials all end together (or a baseline trained once) reports late; the methods
    that reported earlier keep their early curve instead of the grid starting at the late one."""
    early = _trace()
    late = early.assign(method="late", budget=early["budget"] + 10)  # first reports at 11 and 12
    out = anytime_curve(pd.concat([early, late]), n_points=15, reps=100)
    assert out["budget"].min() == 1 and out["budget"].max() == 15
    m = out[out["method"] == "m"].set_index("budget")["iqm"]
    assert m.loc[2.0] == pytest.approx(1.5)  # defined from budget 2, long before "late" reports
    lt = out[out["method"] == "late"].set_index("budget")["iqm"]
    assert lt.loc[:11.0].isna().all() and lt.loc[12.0] == pytest.approx(1.5)


def test_anytime_curve_separates_methods_and_tasks() -> None:
    base = _trace()
    other = base.assign(method="n", score=base["score"] * 10)
    task2 = base.assign(task="u", budget=base["budget"] * 100)
    out = anytime_curve(pd.concat([base, other, task2]), n_points=3, reps=100)
    assert sorted(out.groupby(["method", "task"]).size().items()) == [
        (("m", "t"), 3),
        (("m", "u"), 3),
        (("n", "t"), 3),
    ]
    last = out.groupby(["method", "task"])["iqm"].last()
    assert last[("n", "t")] == pytest.approx(10 * last[("m", "t")])
    np.testing.assert_allclose(out.loc[out["task"] == "u", "budget"], [100, 300, 500])
