"""The engine's PPO is stable-baselines3's PPO, checked against SB3 itself rather than a re-implementation.

From the same parameters, start states and action noise, a rollout (with its truncation bootstrap and
GAE) matches SB3's ``collect_rollouts``. From the same rollout and minibatch order, several epochs of
updates match SB3's ``train``. Both hold to float32 rounding, so the two differ only in their random
draws (initial weights, noise, resets, minibatch order).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any
from unittest import mock

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.env_util import make_vec_env

import autorl.engine.ppo as engine_ppo
from autorl.engine.ppo import EngineConfig, Population, _Members, _Rollout

torch.set_num_threads(1)

HPARAMS = {"gamma": 0.9, "gae_lambda": 0.95, "learning_rate": 1e-3, "clip_range": 0.2, "ent_coef": 0.01}


def _sb3(env_id: str, n_envs: int, n_steps: int, batch_size: int, n_epochs: int) -> PPO:
    env = make_vec_env(env_id, n_envs=n_envs, seed=0)
    return PPO("MlpPolicy", env, n_steps=n_steps, batch_size=batch_size, n_epochs=n_epochs, seed=0, **HPARAMS)


def _theta(model: PPO) -> torch.Tensor:
    """SB3's policy parameters as one engine member's flat vector ``[1, size]``."""
    policy, parts = model.policy, []
    extractor = policy.mlp_extractor
    for net, head in ((extractor.policy_net, policy.action_net), (extractor.value_net, policy.value_net)):
        for layer in [*(m for m in net if isinstance(m, torch.nn.Linear)), head]:
            parts += [layer.weight.detach().T.reshape(-1), layer.bias.detach()]
    if hasattr(policy, "log_std"):
        parts.append(policy.log_std.detach())
    return torch.cat(parts)[None].clone()


def _engine(model: PPO, n_minibatches: int) -> tuple[Population, _Members]:
    """A population of one with ``model``'s shapes, hyperparameters and parameters."""
    env_id = model.env.envs[0].spec.id
    config = EngineConfig(
        env_id,
        n_envs=model.n_envs,
        n_steps=model.n_steps,
        n_epochs=model.n_epochs,
        n_minibatches=n_minibatches,
    )
    pop = Population(config, [HPARAMS], [0])
    pop._m.theta = _theta(model)
    return pop, pop._m


def _start(model: PPO) -> Any:
    """SB3's learn() up to its first rollout (its envs reset): the callback a rollout needs."""
    _, callback = model._setup_learn(model.n_steps * model.n_envs, None, True, "test", False)
    callback.on_training_start(locals(), globals())
    return callback


def _sb3_rollout(model: PPO, callback: Any, sample: Any = None) -> None:
    patch = mock.patch.object(DiagGaussianDistribution, "sample", sample) if sample else nullcontext()
    with patch:
        model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)


def _dones(model: PPO) -> torch.Tensor:
    """Done at step t of SB3's buffer: the episode start it records at t + 1."""
    buf = model.rollout_buffer
    return torch.as_tensor(np.concatenate([buf.episode_starts[1:], model._last_episode_starts[None]]) > 0)


def _close(engine: torch.Tensor, sb3: Any, what: str) -> None:
    want = torch.as_tensor(np.asarray(sb3), dtype=torch.float32)
    scale = max(float(want.abs().mean()), 1.0)
    err = float((engine.reshape(want.shape) - want).abs().max())
    assert err < 1e-5 * scale, f"{what}: max difference {err:.3g} at scale {scale:.3g}"


def test_a_pendulum_rollout_is_sb3s() -> None:
    """200 steps of 2 Pendulums, each truncated at the last one: observations, clipped actions, log
    probabilities, rewards, the truncation bootstrap and GAE, from the same starts and noise."""
    model = _sb3("Pendulum-v1", n_envs=2, n_steps=200, batch_size=100, n_epochs=1)
    with torch.no_grad():  # a policy far from its init, so actions get clipped and log std matters
        gen = torch.Generator().manual_seed(0)
        for p in model.policy.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=gen))
        model.policy.log_std.fill_(0.3)
    pop, m = _engine(model, n_minibatches=1)
    callback = _start(model)
    states = np.array([e.unwrapped.state for e in model.env.envs])
    m.env_state = torch.as_tensor(states, dtype=torch.float32)[None]
    m.obs = torch.as_tensor(model._last_obs)[None]
    noise = torch.randn(200, 2, 1, generator=gen)
    step = iter(range(200))

    def sample(dist: DiagGaussianDistribution) -> torch.Tensor:
        return dist.distribution.mean + dist.distribution.stddev * noise[next(step)]

    _sb3_rollout(model, callback, sample)
    buf = model.rollout_buffer
    rollout = _Rollout.empty(pop.config, 1)
    with mock.patch.object(engine_ppo.rng, "normal", lambda *_, **__: noise[None]):
        pop._collect(m, pop._load_env(m), rollout, torch.zeros(2, 1), torch.arange(2))
    advantages, returns, values = pop._advantages(m, rollout)

    assert bool(rollout.truncated[0, -1].all()) and int(rollout.truncated.sum()) == 2
    assert float((rollout.actions.abs() > 2).float().mean()) > 0.05  # the clipping path ran
    assert torch.equal(rollout.dones[0], _dones(model))
    for name, engine, sb3 in [
        ("observations", rollout.obs, buf.observations),
        ("actions", rollout.actions, buf.actions),
        ("log probabilities", rollout.log_probs, buf.log_probs),
        ("values", values, buf.values),
        ("advantages", advantages, buf.advantages),  # SB3's rewards hold gamma * V(final obs)
        ("returns", returns, buf.returns),
    ]:
        _close(engine, sb3, name)
    kept = ~rollout.truncated[0]
    _close(rollout.rewards[0][kept], buf.rewards[kept.numpy()], "rewards")


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_updates_on_one_rollout_are_sb3s(env_id: str) -> None:
    """4 epochs of 4 minibatches on SB3's own rollout, in SB3's minibatch order: the same parameters."""
    model = _sb3(env_id, n_envs=2, n_steps=128, batch_size=64, n_epochs=4)
    pop, m = _engine(model, n_minibatches=4)
    before = m.theta.clone()
    _sb3_rollout(model, _start(model))
    buf = model.rollout_buffer
    rollout = _Rollout.empty(pop.config, 1)
    rollout.obs.copy_(torch.as_tensor(buf.observations))  # SB3's [n_steps, n_envs, ...] as member 0's
    actions = torch.as_tensor(buf.actions)
    rollout.actions.copy_(actions[..., 0].long() if rollout.actions.dtype == torch.int64 else actions)
    rollout.log_probs.copy_(torch.as_tensor(buf.log_probs))
    rollout.rewards.copy_(torch.as_tensor(buf.rewards))  # with SB3's truncation bootstrap already in them
    rollout.dones.copy_(_dones(model)[None])
    rollout.truncated.zero_()
    rollout.last_obs.copy_(torch.as_tensor(model._last_obs)[None])
    advantages, returns, _ = pop._advantages(m, rollout)
    _close(advantages, buf.advantages, "advantages")

    # SB3 flattens env-major (env * n_steps + step), the engine step-major: give both SB3's order
    n = 2 * 128
    j = np.arange(n)
    engine_index = (j % 128) * 2 + j // 128
    rank = torch.as_tensor(np.argsort(engine_index))[None]  # argsort(rank) == engine_index
    with mock.patch.object(engine_ppo.rng, "bits", lambda *_, **__: rank):
        pop._update(m, rollout, advantages, returns)
    with mock.patch("numpy.random.permutation", np.arange):
        model.train()
    sb3_step, engine_step = _theta(model) - before, m.theta - before
    relative = float((engine_step - sb3_step).norm() / sb3_step.norm())
    assert relative < 1e-4, relative
