"""An engine member exported as an SB3 PPO model acts and values as the member does."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from autorl.engine.export import save_sb3, to_sb3
from autorl.engine.ppo import EngineConfig, Population, load_policy

torch.set_num_threads(1)

CASES = [
    pytest.param("CartPole-v1", True, "tanh", id="cartpole-normalized"),
    pytest.param("Pendulum-v1", True, "relu", id="pendulum-normalized-relu"),
    pytest.param("Pendulum-v1", False, "tanh", id="pendulum"),
]


def _member(env: str, normalize: bool, activation: str) -> dict:
    config = EngineConfig(
        env,
        n_envs=4,
        n_steps=32,
        n_epochs=2,
        n_minibatches=2,
        hidden=(16, 8),
        activation=activation,
        normalize_obs=normalize,
    )
    pop = Population(config, [{"learning_rate": 1e-2}], [3])
    pop.train(512)  # away from the init, and (normalised) away from VecNormalize's starting statistics
    return pop.member_state(0)


def _observations(env_id: str) -> np.ndarray:
    env = gym.make(env_id)
    env.reset(seed=0)
    obs = [env.observation_space.sample() for _ in range(64)]
    return np.asarray(obs, dtype=np.float32)


def _critic(state: dict, obs: np.ndarray) -> np.ndarray:
    act = np.tanh if state["activation"] == "tanh" else (lambda x: np.maximum(x, 0.0))
    x = obs.astype(np.float64)
    for i, (w, b) in enumerate(state["critic"]):
        x = x @ w.double().numpy() + b.double().numpy()
        x = act(x) if i < len(state["critic"]) - 1 else x
    return x[:, 0]


@pytest.mark.parametrize(("env", "normalize", "activation"), CASES)
def test_the_sb3_model_acts_and_values_as_the_member(env: str, normalize: bool, activation: str) -> None:
    state = _member(env, normalize, activation)
    model = to_sb3(state)
    raw = _observations(env)
    seen = model.get_env().normalize_obs(raw) if normalize else raw
    actions, _ = model.predict(seen, deterministic=True)
    np.testing.assert_allclose(actions, load_policy(state)(raw), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        values = model.policy.predict_values(torch.as_tensor(seen, dtype=torch.float32))[:, 0].numpy()
    np.testing.assert_allclose(values, _critic(state, seen), rtol=1e-4, atol=1e-5)
    if state["log_std"] is not None:
        assert torch.equal(model.policy.log_std.detach(), state["log_std"])


def test_saved_model_and_statistics_load_back_with_sb3(tmp_path: Path) -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    state = _member("CartPole-v1", True, "tanh")
    out = save_sb3(state, tmp_path / "agent")
    model = PPO.load(out / "model.zip", device="cpu")
    env = VecNormalize.load(str(out / "vecnormalize.pkl"), DummyVecEnv([lambda: gym.make("CartPole-v1")]))
    raw = _observations("CartPole-v1")
    actions, _ = model.predict(env.normalize_obs(raw), deterministic=True)
    assert (actions == load_policy(state)(raw)).all()
    assert env.training is False and env.norm_reward is False  # frozen statistics, raw rewards
    plain = save_sb3(_member("Pendulum-v1", False, "tanh"), tmp_path / "plain")
    assert sorted(p.name for p in plain.iterdir()) == ["model.zip"]
