"""Families validate contexts and the wrapper really changes the dynamics."""

import gymnasium as gym
import numpy as np
import pytest

from autorl.envs import ContextParam, ContextualEnv, Family, get_family, register_family
from autorl.errors import ConfigError


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown context key 'pole_len'.*valid: pole_length, cart_mass"):
        get_family("CartPole").validate({"pole_len": 1.0})


def test_out_of_range_names_rule_and_value():
    with pytest.raises(ConfigError, match=r"pole_length must be within \[0.05, 2.5\], got 5.0"):
        get_family("CartPole").validate({"pole_length": 5.0})


def test_unknown_family_and_bad_train_range():
    with pytest.raises(ConfigError, match="CartPole"):
        get_family("CartPol")
    with pytest.raises(ConfigError, match="low <= high"):
        get_family("CartPole").check_ranges({"force_mag": [20.0, 3.0]})


def _run(context, actions):
    env = ContextualEnv(gym.make("CartPole-v1"), "CartPole")
    obs, info = env.reset(seed=0, options={"context": context})
    for a in actions:
        obs, *_ = env.step(a)
    return env, obs, info


def test_cartpole_context_sets_attributes_and_changes_dynamics():
    env, obs_long, info = _run({"pole_length": 2.0, "pole_mass": 0.5}, [1] * 5)
    base = env.unwrapped
    assert base.length == 2.0 and base.masspole == 0.5
    assert base.total_mass == pytest.approx(1.5) and base.polemass_length == pytest.approx(1.0)
    assert info["context"]["pole_length"] == 2.0 and info["level_id"] == -1
    _, obs_default, _ = _run({}, [1] * 5)
    assert not np.allclose(obs_long, obs_default)  # same seed and actions, different physics


def test_every_builtin_family_applies_its_extremes():
    for name in ("CartPole", "Pendulum", "MountainCar", "MountainCarContinuous", "Acrobot"):
        fam = get_family(name)
        env = ContextualEnv(family=fam)
        high = {p.name: p.high for p in fam.params}
        env.reset(seed=0, options={"context": high})
        for p in fam.params:
            assert getattr(env.unwrapped, p.attr) == p.high
        env.step(env.action_space.sample())


def test_user_family_registers_and_duplicates_are_refused():
    fam = Family("MyCartPoleGravity", "CartPole-v1", (ContextParam("g", "gravity", 9.8, 5.0, 15.0),))
    register_family(fam)
    env = ContextualEnv(family="MyCartPoleGravity", source=lambda: (7, {"g": 12.0}))
    _, info = env.reset(seed=0)
    assert env.unwrapped.gravity == 12.0 and info["level_id"] == 7
    with pytest.raises(ValueError, match="already registered"):
        register_family(fam)
