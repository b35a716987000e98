"""Level samplers: DR bounds, PLR's prioritisation maths on hand-computed cases, curriculum pacing."""

import numpy as np
import pytest

from autorl.envs import (
    DomainRandomization,
    PLRConfig,
    PrioritizedLevelReplay,
    SelfPacedCurriculum,
    get_family,
)
from autorl.envs.levels import power_weights, rank_weights, scale_ranges, staleness_weights
from autorl.envs.target import segment_scores

FAM = get_family("CartPole")


def test_dr_is_uniform_within_ranges():
    ranges = FAM.check_ranges({"pole_length": [0.2, 1.0]})
    dr = DomainRandomization(FAM, ranges, seed=0)
    x = np.array([dr.sample()[1]["pole_length"] for _ in range(2000)])
    assert x.min() >= 0.2 and x.max() <= 1.0
    assert x.mean() == pytest.approx(0.6, abs=0.02)
    assert np.histogram(x, bins=4, range=(0.2, 1.0))[0].min() > 400  # no quarter starved


def test_scale_ranges_about_the_default():
    r = scale_ranges(FAM, FAM.check_ranges({"force_mag": [2.0, 30.0]}), 0.5)
    assert r["force_mag"] == pytest.approx((6.0, 20.0))


def test_rank_weights_with_temperature():
    # scores 3, 1, 2 -> ranks 1, 3, 2 -> h = 1, 1/3, 1/2; beta = 0.5 squares them
    w = rank_weights(np.array([3.0, 1.0, 2.0]), 0.5)
    h = np.array([1.0, 1 / 9, 1 / 4])
    np.testing.assert_allclose(w, h / h.sum())
    assert rank_weights(np.array([3.0, 1.0, 2.0]), 0.1)[0] > 0.99  # low temperature: greedy


def test_power_and_staleness_weights():
    np.testing.assert_allclose(power_weights(np.array([1.0, 3.0]), 1.0), [0.25, 0.75])
    np.testing.assert_allclose(staleness_weights(np.array([8, 2]), 10), [0.2, 0.8])


def test_plr_mixes_score_and_staleness():
    plr = PrioritizedLevelReplay(FAM, FAM.bounds(), 0, PLRConfig(temperature=1.0, staleness_coef=0.2))
    for _ in range(2):
        plr.update(plr.sample()[0], 0.0)
    plr.scores = {0: 2.0, 1: 1.0}
    plr.last_sampled = {0: 2, 1: 1}
    plr.clock = 3
    # P_S = (1, 1/2)/1.5 ; P_C = (1, 2)/3
    expected = 0.8 * np.array([2 / 3, 1 / 3]) + 0.2 * np.array([1 / 3, 2 / 3])
    np.testing.assert_allclose(plr.probabilities(), expected)


def test_plr_buffer_replaces_lowest_score_and_replays_high_scores():
    plr = PrioritizedLevelReplay(FAM, FAM.bounds(), 0, PLRConfig(buffer_size=3, replay_prob=1.0))
    for s in (0.1, 0.5, 0.9):
        plr.update(plr._new_level(), s)
    new = plr._new_level()
    plr.update(new, 0.3)
    assert new in plr.buffer and 0 not in plr.buffer  # 0.1 evicted
    counts = np.bincount([plr.sample()[0] for _ in range(300)], minlength=4)
    assert counts[2] > counts[1] and counts[2] > counts[3]  # the top score is replayed most


def test_plr_rejects_bad_options():
    with pytest.raises(ValueError, match="plr_temperature must be > 0, got 0"):
        PLRConfig(temperature=0)
    with pytest.raises(ValueError, match="plr_score must be one of"):
        PLRConfig(score="regret")


def test_segment_scores_split_by_episode_and_level():
    adv = np.array([[1.0], [-1.0], [2.0], [4.0]])
    ids = np.array([[5], [5], [6], [6]])
    dones = np.array([[0], [1], [0], [0]], dtype=bool)
    values = np.zeros((4, 1))
    returns = np.array([[3.0], [1.0], [2.0], [1.0]])
    assert segment_scores(adv, returns, values, ids, dones, "positive_value_loss", {}) == [(5, 0.5), (6, 3.0)]
    assert segment_scores(adv, returns, values, ids, dones, "l1_value_loss", {}) == [(5, 1.0), (6, 3.0)]
    assert segment_scores(adv, returns, values, ids, dones, "max_mc", {5: 10.0}) == [(5, 10.0), (6, 2.0)]


def test_curriculum_widens_towards_harder_levels_when_returns_are_high():
    cur = SelfPacedCurriculum(FAM, FAM.bounds(), 0, threshold=100.0, start_width=0.1, step=0.2, window=5)
    dist = []
    for _ in range(40):
        _, ctx = cur.sample()
        dist.append(abs(ctx["pole_length"] - 0.5))
        cur.update(0, 0.0, episode_return=200.0 - 100 * abs(ctx["pole_length"] - 0.5))  # easy near default
    assert cur.width == 1.0
    assert np.mean(dist[-10:]) > 2 * np.mean(dist[:5])
    stuck = SelfPacedCurriculum(FAM, FAM.bounds(), 0, threshold=1000.0, start_width=0.1)
    for _ in range(40):
        stuck.update(0, 0.0, episode_return=200.0)
    assert stuck.width == 0.1  # never mastered: never widened


def test_alp_gmm_concentrates_on_levels_where_return_is_changing():
    """Pole lengths below 0.8 are "being learnt" (return there grows with practice); above, the return
    never changes (mastered or hopeless). After a few fits the teacher samples the learnable part."""
    from autorl.envs.levels import ALPGMM, ALPGMMConfig

    fixed = {k: [v, v] for k, v in FAM.default().items() if k != "pole_length"}
    ranges = FAM.check_ranges({"pole_length": [0.1, 1.5], **fixed})
    teacher = ALPGMM(FAM, ranges, seed=0, config=ALPGMMConfig(fit_every=50, max_components=4))
    practice = 0
    xs = []
    for _ in range(600):
        i, ctx = teacher.sample()
        assert 0.1 <= ctx["pole_length"] <= 1.5 and ctx["cart_mass"] == FAM.default()["cart_mass"]
        learnable = ctx["pole_length"] < 0.8
        practice += learnable
        # learnable levels: the return climbs and jumps level to level; the others stay at 20
        ret = 20.0 + (practice % 50) * 5.0 * (1 + ctx["pole_length"]) if learnable else 20.0
        teacher.update(i, 0.0, episode_return=ret)
        xs.append(ctx["pole_length"])
    assert teacher.fits >= 5
    early, late = np.array(xs[:100]), np.array(xs[-200:])
    assert np.mean(early < 0.8) == pytest.approx(0.5, abs=0.15)  # uniform before the first fit
    assert np.mean(late < 0.8) > 0.8  # 20 % random + most GMM mass on the learnable side
    snap = teacher.snapshot()
    assert snap["fits"] == teacher.fits and sum(c["p"] for c in snap["levels"]) == pytest.approx(1.0)
    assert all(0.1 - 1e-9 <= c["pole_length"] <= 1.5 + 1e-9 for c in snap["levels"])


def test_alp_gmm_options_are_checked():
    from autorl.envs.levels import ALPGMMConfig

    with pytest.raises(ValueError, match="alp_random_prob"):
        ALPGMMConfig(random_prob=1.5)
    with pytest.raises(ValueError, match="alp_fit_every"):
        ALPGMMConfig(fit_every=1)


@pytest.mark.parametrize("kind", ["dr", "plr", "widening", "alp_gmm"])
def test_a_sampler_state_round_trips_as_plain_data_and_continues_exactly(tmp_path, kind):
    """Checkpoints of env design hold no pickled objects: torch.load(weights_only=True) reads them."""
    import torch

    from autorl.envs.levels import ALPGMM, ALPGMMConfig

    ranges = FAM.check_ranges({})

    def make():
        if kind == "dr":
            return DomainRandomization(FAM, ranges, seed=3)
        if kind == "plr":
            return PrioritizedLevelReplay(FAM, ranges, seed=3, config=PLRConfig(buffer_size=8))
        if kind == "widening":
            return SelfPacedCurriculum(FAM, ranges, seed=3, threshold=5.0, start_width=0.2, step=0.1)
        return ALPGMM(FAM, ranges, seed=3, config=ALPGMMConfig(fit_every=8, random_prob=0.2))

    a = make()
    rng = np.random.default_rng(0)
    for _ in range(60):  # learn something: scores and returns as an agent would give them
        level, ctx = a.sample()
        a.update(level, float(rng.random()), float(10 * ctx["pole_length"] + rng.random()))
    torch.save(a.state_dict(), tmp_path / "s.pt")
    b = make()
    b.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    if kind == "alp_gmm":
        assert a.fits >= 1 and b.gmm is not None
    for _ in range(20):
        assert a.sample() == b.sample()


@pytest.mark.parametrize("name", ["CartPole", "Pendulum", "Acrobot", "MountainCar"])
def test_scaled_ranges_never_leave_the_familys_bounds(name):
    """At width 1, default - (default - low) rounds below low for CartPole's cart_mass (1.0 - 0.9): the
    curriculum then proposed levels the family refuses, and every trial of it failed."""
    from autorl.envs.families import get_family

    family = get_family(name)
    bounds = family.bounds()
    for width in (0.0, 0.3, 0.7, 1.0):
        for key, (lo, hi) in scale_ranges(family, bounds, width).items():
            assert bounds[key][0] <= lo <= hi <= bounds[key][1], (key, width, lo, hi)
            family.validate({key: lo})  # accepted, as a level the curriculum proposes must be
            family.validate({key: hi})
