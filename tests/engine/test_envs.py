"""The batched classic-control envs follow gymnasium's trajectories, reset as SB3 does and keep dtypes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import pytest
import torch

from autorl.engine.envs import BATCHED_ENVS, SPECS, BatchedEnv, CartPole, make, register_env
from autorl.envs.families import get_family

torch.set_num_threads(1)

Policy = Callable[[np.random.Generator, np.ndarray], np.ndarray]


def _family(env_id: str) -> Any:
    return get_family(env_id.split("-v")[0])


def _cartpole_pd(rng: np.random.Generator, obs: np.ndarray) -> np.ndarray:
    """A PD controller on the pole (and weakly the cart), overridden by a random push 10% of the time."""
    x, x_dot, theta, theta_dot = obs.T
    push = 10 * theta + 2 * theta_dot + 0.05 * x + 0.2 * x_dot > 0
    random = rng.random(len(obs)) < 0.1
    return np.where(random, rng.integers(0, 2, len(obs)), push).astype(np.int64)


def _acrobot_pump(rng: np.random.Generator, obs: np.ndarray) -> np.ndarray:
    """Torque along the second joint's velocity (pumps energy), random 10% of the time."""
    pump = np.where(obs[:, 5] > 0, 2, 0)
    return np.where(rng.random(len(obs)) < 0.1, rng.integers(0, 3, len(obs)), pump).astype(np.int64)


def _mountain_car_pump(rng: np.random.Generator, obs: np.ndarray) -> np.ndarray:
    pump = np.where(obs[:, 1] > 0, 2, 0)
    return np.where(rng.random(len(obs)) < 0.2, rng.integers(0, 3, len(obs)), pump).astype(np.int64)


def _continuous_pump(rng: np.random.Generator, obs: np.ndarray) -> np.ndarray:
    """Push along the velocity, with noise that often leaves the action space (clipped by the dynamics)."""
    return (np.sign(obs[:, 1:2]) + rng.normal(0.0, 0.5, (len(obs), 1))).astype(np.float64)


def _pendulum_random(rng: np.random.Generator, obs: np.ndarray) -> np.ndarray:
    return rng.uniform(-3.0, 3.0, (len(obs), 1))  # beyond [-2, 2] and beyond smaller max_torques


def _gym_obs(env: gym.Env) -> np.ndarray:
    """The observation gymnasium builds from its env's current state."""
    base: Any = env.unwrapped
    if hasattr(base, "_get_ob"):
        return np.asarray(base._get_ob())  # Acrobot
    if hasattr(base, "_get_obs"):
        return np.asarray(base._get_obs())  # Pendulum
    return np.asarray(base.state, dtype=np.float32)


class Case(NamedTuple):
    """How to drive one env: a policy, the steps to compare, the changed contexts (one per extra copy)
    and the episode ends that must happen in that run."""

    policy: Policy
    steps: int
    contexts: list[dict[str, float]]
    ends: tuple[str, ...]


CASES: dict[str, Case] = {
    "CartPole-v1": Case(
        _cartpole_pd,
        1000,
        [
            {"pole_length": 0.9, "cart_mass": 0.6, "pole_mass": 0.3, "force_mag": 14.0, "gravity": 12.0},
            {"pole_length": 0.1, "cart_mass": 2.5, "pole_mass": 0.05, "force_mag": 25.0, "gravity": 5.0},
            {"pole_length": 1.5, "cart_mass": 0.3, "pole_mass": 0.8, "force_mag": 4.0, "gravity": 18.0},
        ],
        ("terminated", "truncated"),
    ),
    "Acrobot-v1": Case(  # 200 steps: the dynamics are chaotic, rounding differences grow
        _acrobot_pump,
        200,
        [
            {"link_length_1": 0.6, "link_length_2": 1.7, "link_mass_1": 2.0, "link_mass_2": 0.5},
            {"link_length_1": 1.8, "link_length_2": 0.4, "link_mass_1": 0.5, "link_mass_2": 2.5},
        ],
        ("terminated",),
    ),
    "MountainCar-v0": Case(
        _mountain_car_pump,
        1000,
        [{"force": 0.002, "gravity": 0.004}, {"force": 0.0007, "gravity": 0.0015}],
        ("terminated", "truncated"),
    ),
    "MountainCarContinuous-v0": Case(
        _continuous_pump, 1000, [{"power": 0.004}, {"power": 0.0008}], ("terminated",)
    ),
    "Pendulum-v1": Case(
        _pendulum_random,
        1000,
        [
            {"mass": 2.0, "length": 0.5, "gravity": 15.0, "max_torque": 1.0},
            {"mass": 0.4, "length": 2.2, "gravity": 3.0, "max_torque": 1.7},
        ],
        ("truncated",),  # Pendulum never terminates
    ),
}


def _conformance(
    env_id: str, policy: Policy, steps: int, contexts: list[dict[str, float]], seed: int
) -> dict[str, int]:
    """Step the batched env (float64) and one gymnasium env per copy with the same actions; compare.

    Where an episode ends, the gymnasium env is reset to the batched env's next initial state. Returns
    counts of terminations and truncations.
    """
    family, spec = _family(env_id), SPECS[env_id]
    full = [family.validate(c) for c in contexts]
    rng = np.random.default_rng(seed)
    n = len(contexts)
    env = make(env_id, n, dtype=torch.float64)
    env.set_params({k: torch.tensor([c[k] for c in full], dtype=torch.float64) for k in spec.params})
    gyms = [gym.make(env_id, disable_env_checker=True) for _ in range(n)]
    env.reset(torch.from_numpy(rng.random((n, spec.reset_dims))))
    for g, context, state in zip(gyms, full, env.state.numpy(), strict=True):
        g.reset(seed=0)
        family.apply(g, context)
        g.unwrapped.state = state.copy()  # type: ignore[attr-defined]

    counts = {"terminated": 0, "truncated": 0}
    for t in range(steps):
        obs = env.obs().numpy()
        np.testing.assert_allclose(obs, [_gym_obs(g) for g in gyms], rtol=0, atol=1e-6, err_msg=f"obs {t}")
        actions = policy(rng, obs)
        result = env.step(torch.from_numpy(actions), torch.from_numpy(rng.random((n, spec.reset_dims))))
        steps_out = [g.step(int(a) if spec.n_actions else a) for g, a in zip(gyms, actions, strict=True)]
        gym_obs, gym_reward, gym_term, gym_trunc, _ = (np.array(col) for col in zip(*steps_out, strict=True))
        gym_trunc = gym_trunc & ~gym_term  # TimeLimit also flags a termination on the last step
        where = f"{env_id} step {t}"
        np.testing.assert_array_equal(result.terminated.numpy(), gym_term, err_msg=where)
        np.testing.assert_array_equal(result.truncated.numpy(), gym_trunc, err_msg=where)
        np.testing.assert_allclose(result.final_obs.numpy(), gym_obs, rtol=0, atol=1e-6, err_msg=where)
        np.testing.assert_allclose(result.reward.numpy(), gym_reward, rtol=0, atol=1e-6, err_msg=where)
        for i in np.flatnonzero(gym_term | gym_trunc):
            gyms[i].reset()
            gyms[i].unwrapped.state = env.state[i].numpy().copy()  # type: ignore[attr-defined]
        states = np.array([np.asarray(g.unwrapped.state, dtype=np.float64) for g in gyms])  # type: ignore[attr-defined]
        np.testing.assert_allclose(env.state.numpy(), states, rtol=0, atol=1e-6, err_msg=where)
        counts["terminated"] += int(gym_term.sum())
        counts["truncated"] += int(gym_trunc.sum())
    return counts


@pytest.mark.parametrize("env_id", list(CASES))
def test_follows_gymnasium_trajectories_with_per_copy_parameters(env_id: str) -> None:
    """Copy 0 keeps the default parameters, the others each get their own."""
    case = CASES[env_id]
    counts = _conformance(env_id, case.policy, case.steps, [{}, *case.contexts], seed=1)
    for end in case.ends:
        assert counts[end] > 0, f"no episode was {end}: the run does not exercise it"


def test_follows_gymnasium_with_default_parameters_under_random_actions() -> None:
    """Short random episodes: many terminations and resets, all copies at the defaults."""

    def random_actions(rng: np.random.Generator, obs: np.ndarray) -> np.ndarray:
        return rng.integers(0, 2, len(obs))

    counts = _conformance("CartPole-v1", random_actions, 1000, [{}] * 4, seed=2)
    assert counts["terminated"] > 100


@pytest.mark.parametrize("env_id", list(SPECS))
def test_initial_states_are_gymnasium_reset_draws(env_id: str) -> None:
    """The same uniforms give gymnasium's reset state: seeding both from one PCG64 stream."""
    env = make(env_id, 1, dtype=torch.float64)
    g = gym.make(env_id, disable_env_checker=True)
    for seed in range(5):
        g.reset(seed=seed)
        u = np.random.default_rng(seed).random((1, SPECS[env_id].reset_dims))
        state = env.initial_state(torch.from_numpy(u))[0].numpy()
        np.testing.assert_array_equal(state, np.asarray(g.unwrapped.state, dtype=np.float64))  # type: ignore[attr-defined]


@pytest.mark.parametrize("env_id", list(SPECS))
def test_specs_match_gymnasium_and_the_context_families(env_id: str) -> None:
    spec, g = SPECS[env_id], gym.make(env_id)
    assert spec.max_steps == g.spec.max_episode_steps  # type: ignore[union-attr]
    assert (spec.obs_dim,) == g.observation_space.shape
    if spec.n_actions is not None:
        assert spec.n_actions == g.action_space.n  # type: ignore[attr-defined]
    else:
        assert spec.action_low == tuple(g.action_space.low) and spec.action_high == tuple(g.action_space.high)  # type: ignore[attr-defined]
    assert dict(spec.params) == _family(env_id).default()


def test_truncates_at_the_time_limit_and_resets() -> None:
    env = make("Pendulum-v1", 3, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    env.reset(torch.rand(3, 2, generator=gen, dtype=torch.float64))
    torque = torch.zeros(3, 1, dtype=torch.float64)
    for _ in range(199):
        result = env.step(torque, torch.rand(3, 2, generator=gen, dtype=torch.float64))
        assert not result.done.any()
    twin = make("Pendulum-v1", 3, dtype=torch.float64)  # the same states, not at the limit
    twin.set_state(env.state)
    u = torch.rand(3, 2, generator=gen, dtype=torch.float64)
    result = env.step(torque, u)
    assert result.truncated.all() and not result.terminated.any()
    assert env.elapsed.tolist() == [0, 0, 0]
    torch.testing.assert_close(env.state, env.initial_state(u), rtol=0, atol=0)
    torch.testing.assert_close(result.obs, env.obs(), rtol=0, atol=0)
    twin_result = twin.step(torque, u)
    assert not twin_result.done.any()
    torch.testing.assert_close(result.final_obs, twin_result.obs, rtol=0, atol=0)
    assert not torch.allclose(result.final_obs, result.obs)


def test_auto_reset_uses_the_done_copies_rows_of_u_reset_only() -> None:
    """Copies 0-2 terminate (2 also at the time limit), 3 is truncated, 4-5 go on."""
    n = 6
    state = torch.zeros(n, 4, dtype=torch.float64)
    state[:3, 2], state[:3, 3] = 0.2, 2.0  # theta + 0.02 * theta_dot > 12 degrees
    state[3:, 0] = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    elapsed = torch.tensor([3, 10, 499, 499, 0, 7])

    def step(u_reset: torch.Tensor) -> tuple[BatchedEnv, Any]:
        env = make("CartPole-v1", n, dtype=torch.float64)
        env.set_state(state)
        env.elapsed = elapsed.clone()
        return env, env.step(torch.ones(n, dtype=torch.int64), u_reset)

    gen = torch.Generator().manual_seed(0)
    u_a, u_b = torch.rand(2, n, 4, generator=gen, dtype=torch.float64)
    (env_a, a), (env_b, b) = step(u_a), step(u_b)
    assert a.terminated.tolist() == [True, True, True, False, False, False]
    assert a.truncated.tolist() == [False, False, False, True, False, False]
    done = a.done
    for env, res, u in ((env_a, a, u_a), (env_b, b, u_b)):
        torch.testing.assert_close(res.obs[done], env.initial_state(u[done]), rtol=0, atol=0)
        torch.testing.assert_close(env.state[done], env.initial_state(u[done]), rtol=0, atol=0)
        assert env.elapsed.tolist() == [0, 0, 0, 0, 1, 8]
        assert torch.equal(res.final_obs[~done], res.obs[~done])
    assert (a.final_obs[:3, 2] > 12 * 2 * np.pi / 360).all()  # the terminal observation
    assert torch.equal(a.final_obs, b.final_obs)
    assert torch.equal(a.obs[~done], b.obs[~done]) and torch.equal(env_a.state[~done], env_b.state[~done])
    assert not torch.equal(a.obs[done], b.obs[done])


def test_set_params_where_changes_only_those_copies() -> None:
    env = make("CartPole-v1", 5)
    gravity = env.params["gravity"]
    mask = torch.tensor([True, False, True, False, False])
    env.set_params({"gravity": 20.0, "pole_length": torch.arange(5.0)}, where=mask)
    assert env.params["gravity"] is gravity  # updated in place
    assert env.params["gravity"].tolist() == pytest.approx([20.0, 9.8, 20.0, 9.8, 9.8])
    assert env.params["pole_length"].tolist() == [0.0, 0.5, 2.0, 0.5, 0.5]
    env.set_params({"cart_mass": torch.full((5,), 2.0)})
    assert env.params["cart_mass"].tolist() == [2.0] * 5
    assert env.params["pole_mass"].tolist() == pytest.approx([0.1] * 5)


def test_unknown_names_are_refused_with_the_closest_match() -> None:
    env = make("CartPole-v1", 2)
    with pytest.raises(ValueError, match=r"'pole_lenght'.*Did you mean 'pole_length'.*Valid: cart_mass"):
        env.set_params({"gravity": 1.0, "pole_lenght": 1.0})
    assert env.params["gravity"].tolist() == pytest.approx([9.8, 9.8])  # nothing changed
    with pytest.raises(ValueError, match=r"'cartpole-v1'.*Did you mean 'CartPole-v1'.*Valid: Acrobot-v1"):
        make("cartpole-v1", 2)
    with pytest.raises(ValueError, match=r"float32 or torch\.float64"):
        make("CartPole-v1", 2, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"shape \[2\]"):
        env.step(torch.ones(2, 1, dtype=torch.int64), torch.rand(2, 4))
    with pytest.raises(ValueError, match=r"u_reset must have shape \[2, 4\]"):
        env.step(torch.ones(2, dtype=torch.int64), torch.rand(2, 3))


class _MyCartPole(CartPole):
    """CartPole-v1 under a user's name."""

    spec = dataclasses.replace(CartPole.spec, name="MyCartPole-v0")


def test_a_registered_env_is_made_listed_and_trained(monkeypatch: pytest.MonkeyPatch) -> None:
    from autorl.engine.ppo import EngineConfig, Population

    monkeypatch.setattr(BATCHED_ENVS, "_entries", dict(BATCHED_ENVS._entries))
    assert register_env(_MyCartPole) is _MyCartPole
    assert "MyCartPole-v0" in list(SPECS) and SPECS["MyCartPole-v0"] is _MyCartPole.spec
    assert BATCHED_ENVS.entry("MyCartPole-v0").description == "CartPole-v1 under a user's name."
    assert isinstance(make("MyCartPole-v0", 2), _MyCartPole)
    small: dict[str, Any] = {"n_envs": 4, "n_steps": 16, "n_epochs": 2, "n_minibatches": 2, "hidden": (8,)}
    mine = Population(EngineConfig("MyCartPole-v0", **small), [{}], seeds=[0])
    stats = mine.train(64)
    assert stats[0]["budget"] == 64 and stats[0]["failed"] == 0.0
    builtin = Population(EngineConfig("CartPole-v1", **small), [{}], seeds=[0])
    builtin.train(64)
    assert torch.equal(mine.state_dict()["members"]["theta"], builtin.state_dict()["members"]["theta"])
    with pytest.raises(ValueError, match="batched env 'MyCartPole-v0' is already registered"):
        register_env(_MyCartPole)
    with pytest.raises(TypeError, match="BatchedEnv subclass"):
        register_env(int)  # type: ignore[arg-type]
    monkeypatch.undo()
    assert "MyCartPole-v0" not in SPECS


@pytest.mark.parametrize("env_id", list(SPECS))
def test_float32_throughout(env_id: str) -> None:
    spec, n = SPECS[env_id], 16
    env32, env64 = make(env_id, n), make(env_id, n, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    u = torch.rand(n, spec.reset_dims, generator=gen)
    obs = env32.reset(u)
    env64.reset(u.double())
    assert obs.dtype == torch.float32 and all(p.dtype == torch.float32 for p in env32.params.values())
    for t in range(300):
        if spec.n_actions is not None:
            action = torch.randint(0, spec.n_actions, (n,), generator=gen)
        else:
            action = torch.rand(n, 1, generator=gen) * 4 - 2
        u = torch.rand(n, spec.reset_dims, generator=gen)
        r32, r64 = (
            env32.step(action, u),
            env64.step(action.double() if action.is_floating_point() else action, u),
        )
        for x in (r32.obs, r32.reward, r32.final_obs, env32.state):
            assert x.dtype == torch.float32
        assert r32.terminated.dtype == r32.truncated.dtype == torch.bool
        if t < 10:  # before float32 rounding has compounded
            torch.testing.assert_close(r32.obs, r64.obs.float(), rtol=0, atol=1e-4)
