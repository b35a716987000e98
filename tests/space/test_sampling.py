"""The sampling and perturbing functions population methods use honour transforms, log, steps,
bounds and conditions, as Optuna's samplers do."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autorl.config import SPACES_DIR
from autorl.space import SearchSpace, check_config, from_unit, perturb, sample, to_params, to_unit
from autorl.space.optuna import to_distributions

PPO = SearchSpace.from_yaml(SPACES_DIR / "sb3" / "ppo.yaml")


def test_samples_of_the_ppo_space_are_powers_of_two_on_the_one_minus_gamma_scale() -> None:
    rng = np.random.default_rng(0)
    configs = [sample(PPO, rng) for _ in range(4000)]
    for c in configs:
        assert check_config(PPO, c) == [], c
        assert c["n_steps"] & (c["n_steps"] - 1) == 0 and c["batch_size"] & (c["batch_size"] - 1) == 0
    # 1 - gamma is log-uniform on [1e-4, 0.03]: P(gamma >= 0.99) = log(100) / log(300)
    share = np.mean([c["gamma"] >= 0.99 for c in configs])
    assert share == pytest.approx(math.log(100) / math.log(300), abs=0.03)
    # every power of two of n_steps (32..4096: eight of them) comes up about equally often
    counts = np.bincount([int(math.log2(c["n_steps"])) for c in configs], minlength=13)[5:13]
    assert counts.min() > 0.7 * len(configs) / 8


def test_every_explore_stays_in_the_space_and_moves_gamma_on_its_searched_scale() -> None:
    rng = np.random.default_rng(1)
    config = sample(PPO, rng)
    for _ in range(500):
        new = perturb(PPO, config, rng, (0.8, 1.2), 0.25)
        assert check_config(PPO, new) == [], new
        for name, p in PPO.items():  # only mutable values change
            if not p.mutable:
                assert new[name] == config[name]
        config = new
    # without resampling, gamma moves by multiplying 1 - gamma: it never clips at a bound
    start = {**config, "gamma": 0.999}
    moved = perturb(PPO, start, np.random.default_rng(2), (0.8, 1.2), 0.0)["gamma"]
    assert 1 - moved == pytest.approx(0.001 * 0.8) or 1 - moved == pytest.approx(0.001 * 1.2)


def test_pow2_and_int_values_move_by_a_step_and_conditions_are_honoured() -> None:
    space = SearchSpace.from_dict(
        {
            "n": {"type": "int", "low": 4, "high": 64, "transform": "pow2", "mutable": True},
            "k": {"type": "int", "low": 1, "high": 3, "mutable": True},
            "use": {"type": "categorical", "choices": [True, False], "mutable": True},
            "w": {"type": "float", "low": 0.0, "high": 1.0, "condition": {"use": True}, "mutable": True},
        }
    )
    rng = np.random.default_rng(3)
    seen_n, seen_k = set(), set()
    config = {"n": 16, "k": 2, "use": False}
    for _ in range(300):
        config = perturb(space, config, rng, (0.8, 1.2), 0.1)
        assert check_config(space, config) == [], config
        assert ("w" in config) == config["use"]
        seen_n.add(config["n"])
        seen_k.add(config["k"])
    assert seen_n == {4, 8, 16, 32, 64} and seen_k == {1, 2, 3}


def test_unit_coordinates_round_trip_on_the_searched_scale() -> None:
    for name in ("learning_rate", "gamma", "gae_lambda", "n_steps"):
        p = PPO[name]
        for u in (0.0, 0.25, 0.5, 1.0):
            value = from_unit(p, u)
            assert p.contains(value)
            if p.type.value == "float":
                assert to_unit(p, value) == pytest.approx(u, abs=1e-9)


def test_sampled_configs_are_valid_optuna_params() -> None:
    """What a population records must fit the space's Optuna distributions (ValueError otherwise)."""
    rng = np.random.default_rng(4)
    dists = to_distributions(PPO)
    for _ in range(200):
        params, used = to_params(PPO, sample(PPO, rng))
        for name, value in params.items():
            assert used[name] == dists[name] and dists[name]._contains(dists[name].to_internal_repr(value))
