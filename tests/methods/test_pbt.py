"""PBT and PB2 decisions: pure functions of the members, their history and a random generator."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from autorl.errors import ConfigError
from autorl.methods import Member, MethodContext, build_population
from autorl.methods.pbt import PB2, PBT
from autorl.space import SearchSpace

SPACE = SearchSpace.from_dict(
    {
        "lr": {"type": "float", "low": 1.0e-3, "high": 1.0, "log": True, "mutable": True},
        "width": {"type": "int", "low": 1, "high": 8},
    }
)


def _members(scores: list[float | None], failed: tuple[int, ...] = ()) -> list[Member]:
    return [
        Member(i, {"lr": 0.01 * (i + 1), "width": 2}, 10, s, failed=i in failed) for i, s in enumerate(scores)
    ]


def test_bottom_quantile_copies_the_top_and_explores_only_mutable_values() -> None:
    pbt = PBT(SPACE, maximize=True, quantile=0.25)
    members = _members([1.0, 5.0, 3.0, 2.0, 8.0, 7.0, 6.0, 4.0])
    for seed in range(20):
        copies = pbt.decide(members, [], np.random.default_rng(seed))
        assert {c.member for c in copies} <= {0, 3} and copies  # the worst two
        for c in copies:
            assert c.donor in (4, 5)  # the best two
            assert c.config["width"] == 2 and 1.0e-3 <= c.config["lr"] <= 1.0
    minimise = PBT(SPACE, maximize=False).decide(members, [], np.random.default_rng(0))
    assert {c.member for c in minimise} <= {4, 5} and {c.donor for c in minimise} <= {0, 3}


def test_perturbation_multiplies_by_a_factor_unless_it_resamples() -> None:
    pbt = PBT(SPACE, resample_probability=0.0)
    members = _members([0.0, 1.0, 2.0, 3.0])
    copies = pbt.decide(members, [], np.random.default_rng(1))
    donor = members[copies[0].donor]
    assert copies[0].config["lr"] == pytest.approx(donor.config["lr"] * 0.8) or copies[0].config[
        "lr"
    ] == pytest.approx(donor.config["lr"] * 1.2)


def test_a_failed_member_is_always_replaced_and_never_a_donor() -> None:
    pbt = PBT(SPACE, quantile=0.25)
    members = _members([9.0, None, 3.0, 2.0, 8.0, 7.0, 6.0, 4.0], failed=(0, 1))
    copies = pbt.decide(members, [], np.random.default_rng(0))
    assert {0, 1} <= {c.member for c in copies}
    assert {c.donor for c in copies} <= {4, 5}


def test_a_member_without_a_finite_score_yet_is_neither_replaced_nor_a_donor() -> None:
    """Deciding on training returns, a member none of whose episodes has ended has a nan (or no) score:
    it is no failure, so it keeps training as it is."""
    pbt = PBT(SPACE, quantile=0.25)
    members = _members([float("nan"), None, 3.0, 2.0, 8.0, 7.0, 6.0, 4.0])
    for seed in range(10):
        copies = pbt.decide(members, [], np.random.default_rng(seed))
        assert {c.member for c in copies} == {2, 3} and {c.donor for c in copies} <= {4, 5}


def test_the_fixed_baseline_never_exploits() -> None:
    assert (
        PBT(SPACE, exploit=False).decide(_members([1.0, 2.0, 3.0, 4.0]), [], np.random.default_rng(0)) == []
    )


def test_pb2_picks_within_bounds_from_the_history() -> None:
    pb2 = PB2(SPACE, quantile=0.25)
    history = [
        (t, {"lr": lr, "width": 2}, 10 * lr if lr < 0.3 else 6 - 10 * lr)
        for t in (10, 20)
        for lr in (0.01, 0.05, 0.2, 0.9)
    ]
    copies = pb2.decide(_members([1.0, 2.0, 3.0, 4.0]), history, np.random.default_rng(0))
    assert copies and all(1.0e-3 <= c.config["lr"] <= 1.0 and c.config["width"] == 2 for c in copies)


def test_decisions_are_reproducible_from_the_generator() -> None:
    members = _members([1.0, 5.0, 3.0, 2.0])
    a = PBT(SPACE).decide(members, [], np.random.default_rng(7))
    b = PBT(SPACE).decide(members, [], np.random.default_rng(7))
    assert a == b


@pytest.mark.parametrize(
    "options, rule",
    [
        ({"population": 1}, "population must be an int >= 2"),
        ({"quantile": 0.9}, "quantile must be in"),
        ({"factors": [0.8]}, "factors must be two positive numbers"),
        ({"interval": 0}, "interval must be a positive int"),
    ],
)
def test_options_are_validated(options: dict[str, Any], rule: str) -> None:
    ctx = MethodContext(SPACE, budget_max=100)
    with pytest.raises(ValueError, match=rule):
        build_population("pbt", ctx, options)


def test_interval_defaults_to_report_every_and_fits_a_member_budget() -> None:
    assert build_population("pbt", MethodContext(SPACE, budget_max=100, report_every=25), {}).interval == 25
    split = MethodContext(SPACE, budget_max=100, budget_total=120, report_every=50)
    assert build_population("pbt", split, {"population": 4}).interval == 30  # total // population


def test_a_member_budget_too_small_for_the_population_is_refused() -> None:
    with pytest.raises(ValueError, match="leaves no budget for 8 members"):
        build_population("pbt", MethodContext(SPACE, budget_max=100, budget_total=4), {})


def test_init_range_draws_the_first_population_only() -> None:
    space = SearchSpace.from_dict(
        {
            "lr": {
                "type": "float",
                "low": 1e-5,
                "high": 1e-1,
                "log": True,
                "mutable": True,
                "init": [1e-5, 2e-5],
            }
        }
    )
    pbt = PBT(space, resample_probability=1.0)
    first = [c["lr"] for c in pbt.initial(200, np.random.default_rng(0))]
    assert 1e-5 <= min(first) and max(first) <= 2e-5
    members = [Member(i, {"lr": 1.5e-5}, 1, float(i)) for i in range(4)]
    later = [c.config["lr"] for s in range(100) for c in pbt.decide(members, [], np.random.default_rng(s))]
    assert max(later) > 1e-3  # resampling reaches the whole range, not just init
    assert space["lr"].to_dict()["init"] == [1e-5, 2e-5]  # round-trips to YAML


@pytest.mark.parametrize(
    "init, rule", [([1e-6, 1e-5], "low <= a <= b <= high"), ([2e-5, 1e-5], "low <= a"), ("x", "init must be")]
)
def test_init_range_is_validated(init: Any, rule: str) -> None:
    with pytest.raises(ConfigError, match=rule) as exc:
        SearchSpace.from_dict({"lr": {"type": "float", "low": 1e-5, "high": 1e-1, "init": init}})
    assert exc.value.key == "lr"
