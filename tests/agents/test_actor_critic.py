"""Tests of the single-file actor-critic agent and its meta-gradients."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from autorl.agents.actor_critic import (
    ETA_NAMES,
    ActorCriticConfig,
    ActorCriticNet,
    ActorCriticTarget,
    Rollout,
    eta_to_raw,
    gae,
    gae_targets,
    inner_update,
    meta_loss,
    raw_to_eta,
)
from autorl.errors import ConfigError
from autorl.targets import TARGETS, TrialContext, run_target, target_info

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ a task where a short horizon is better
class DelayedRewardEnv(gym.Env):
    """Two steps at most: in the first state "grab" pays 1 and ends the episode, "wait" pays nothing and
    leads to a second state where any action pays 1.5 and ends it.

    Waiting is better for gamma > 2/3, grabbing for gamma < 2/3. With a meta-objective that discounts by
    gamma_ref = 0.3 the agent's gamma (started at 0.95, where it learns to wait) must fall for its updates to
    serve that objective; with gamma_ref = 0.99 it has no reason to.
    """

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.second = False
        return np.array([1.0, 0.0], dtype=np.float32), {}

    def step(self, action):
        if self.second:
            return np.array([0.0, 1.0], dtype=np.float32), 1.5, True, False, {}
        if int(action) == 0:
            return np.array([1.0, 0.0], dtype=np.float32), 1.0, True, False, {}
        self.second = True
        return np.array([0.0, 1.0], dtype=np.float32), 0.0, False, False, {}


DELAYED_ID = "autorl-test/DelayedReward-v0"
if DELAYED_ID not in gym.registry:
    gym.register(DELAYED_ID, entry_point=DelayedRewardEnv)


# ------------------------------------------------------------------ helpers
def _tiny_batch(rng: torch.Generator, T: int = 5, N: int = 2, obs_dim: int = 3) -> Rollout:
    dones = torch.zeros(T, N, dtype=torch.float64)
    dones[2, 0] = 1.0
    terminated = dones.clone()
    dones[4, 1] = 1.0  # a truncation: bootstrapped, trace cut
    return Rollout(
        obs=torch.randn(T, N, obs_dim, generator=rng, dtype=torch.float64),
        actions=torch.randint(0, 2, (T, N), generator=rng),
        logprobs=torch.full((T, N), math.log(0.5), dtype=torch.float64),
        rewards=torch.randn(T, N, generator=rng, dtype=torch.float64),
        next_obs=torch.randn(T, N, obs_dim, generator=rng, dtype=torch.float64),
        terminated=terminated,
        dones=dones,
    )


def _train(config: dict, seed: int, steps: int, calls: int = 1) -> ActorCriticTarget:
    agent = ActorCriticTarget(config, TrialContext(seed=seed))
    for _ in range(calls):
        agent.train(steps)
    return agent


# ------------------------------------------------------------------ correctness of the pieces
def test_gae_with_lambda_one_is_discounted_return_minus_value():
    T, N = 6, 1
    rewards = torch.arange(1.0, T + 1).view(T, N)
    v = torch.linspace(0.5, 3.0, T + 1).view(T + 1, N)  # V(s_0..s_T); next_values[t] = V(s_{t+1})
    values, next_values = v[:-1], v[1:]
    zeros = torch.zeros(T, N)
    g = 0.9
    adv = gae(rewards, values, next_values, zeros, zeros, torch.tensor(g), torch.tensor(1.0))
    expected = [
        sum(g**k * rewards[t + k, 0] for k in range(T - t)) + g ** (T - t) * v[T, 0] - v[t, 0]
        for t in range(T)
    ]
    assert torch.allclose(adv[:, 0], torch.tensor(expected), atol=1e-5)
    # lambda = 0 is the one-step TD error.
    adv0 = gae(rewards, values, next_values, zeros, zeros, torch.tensor(g), torch.tensor(0.0))
    assert torch.allclose(adv0, rewards + g * next_values - values)
    # A terminal step stops both the bootstrap and the trace.
    term = zeros.clone()
    term[2] = 1.0
    adv_t = gae(rewards, values, next_values, term, term, torch.tensor(g), torch.tensor(1.0))
    assert adv_t[2, 0].item() == pytest.approx(3.0 - v[2, 0].item())


@pytest.mark.parametrize(
    "variant",
    [
        # One epoch: later RMSProp epochs use statistics of detached gradients, constants by design.
        {"inner_optimizer": "rmsprop", "update_epochs": 1},
        {
            "inner_optimizer": "sgd",
            "clip_coef": 0.2,
            "norm_adv": True,
            "condition_on_eta": True,
            "update_epochs": 2,
        },
    ],
)
def test_meta_gradient_matches_finite_differences(variant):
    torch.manual_seed(0)
    rng = torch.Generator().manual_seed(1)
    cfg = ActorCriticConfig(
        lr=0.05,
        max_grad_norm=0.5,
        ref_gamma=0.9,
        ref_gae_lambda=0.8,
        **{f"meta_{n}": True for n in ETA_NAMES},
        **variant,
    )
    eta_dim = len(ETA_NAMES) if cfg.condition_on_eta else 0
    net = ActorCriticNet(3, gym.spaces.Discrete(2), (4,), eta_dim).double()
    params = {k: v.detach().clone().requires_grad_() for k, v in net.named_parameters()}
    state = {
        k: torch.rand(v.shape, generator=rng, dtype=torch.float64) * 0.1 + 0.01 for k, v in params.items()
    }
    b1, b2 = _tiny_batch(rng), _tiny_batch(rng)
    init = {"gamma": 0.8, "gae_lambda": 0.7, "ent_coef": 0.05, "vf_coef": 0.5, "pg_coef": 1.0}
    raw0 = torch.tensor([eta_to_raw(n, init[n]) for n in ETA_NAMES], dtype=torch.float64)

    def objective(raw: torch.Tensor, targets=None) -> torch.Tensor:
        eta = {n: raw_to_eta(n, raw[i]) for i, n in enumerate(ETA_NAMES)}
        new, _, _ = inner_update(net, params, state, b1, eta, cfg, create_graph=True)
        return meta_loss(net, new, b2, cfg, targets)

    # The meta-objective's advantages are semi-gradient (held fixed): freeze them at eta0 for the
    # finite differences, and check that the agent's own meta-gradient equals the frozen one.
    raw = raw0.clone().requires_grad_()
    (grad,) = torch.autograd.grad(objective(raw), raw)
    eta0 = {n: raw_to_eta(n, raw0[i]) for i, n in enumerate(ETA_NAMES)}
    new0 = {k: v.detach() for k, v in inner_update(net, params, state, b1, eta0, cfg, False)[0].items()}
    ref = {k: v.double() for k, v in cfg.reference_eta().items()}
    inputs = torch.cat([b2.obs, b2.next_obs]).flatten(0, 1)
    if cfg.condition_on_eta:
        from autorl.agents.actor_critic import _eta_features

        inputs = torch.cat([inputs, _eta_features(ref, inputs.shape[0]).double()], -1)
    targets = tuple(t.detach() for t in gae_targets(net, new0, b2, ref, inputs))
    raw_t = raw0.clone().requires_grad_()
    (grad_frozen,) = torch.autograd.grad(objective(raw_t, targets), raw_t)
    assert torch.allclose(grad, grad_frozen, rtol=1e-10, atol=1e-14)
    raw0_obj = lambda r: objective(r, targets)  # noqa: E731
    eps = 1e-6
    fd = torch.zeros_like(raw0)
    for i in range(len(raw0)):
        e = torch.zeros_like(raw0)
        e[i] = eps
        fd[i] = (raw0_obj(raw0 + e) - raw0_obj(raw0 - e)) / (2 * eps)
    assert grad.abs().max() > 1e-4, "meta-gradient is zero: the test would not catch a broken graph"
    assert torch.allclose(grad, fd, rtol=1e-4, atol=1e-8), (grad, fd)


def test_eta_parameterisation_round_trips_and_stays_in_range():
    for name, value in (("gamma", 0.97), ("gae_lambda", 0.3), ("ent_coef", 0.01), ("vf_coef", 2.0)):
        back = raw_to_eta(name, torch.tensor(eta_to_raw(name, value), dtype=torch.float64))
        assert back.item() == pytest.approx(value, rel=1e-9)
    assert 0 < raw_to_eta("gamma", torch.tensor(50.0)).item() <= 1
    assert raw_to_eta("ent_coef", torch.tensor(-50.0)).item() >= 0


# ------------------------------------------------------------------ eta moves the expected way
def test_gamma_falls_when_a_short_horizon_is_better():
    base = {
        "env_id": DELAYED_ID,
        "num_envs": 4,
        "num_steps": 10,
        "lr": 1.0e-3,
        "gamma": 0.95,
        "gae_lambda": 0.9,
        "meta_gamma": True,
        "meta_lr": 0.1,
        "ref_gae_lambda": 0.9,
        # Only the policy term judges: the value term would pull gamma towards gamma_ref whatever the task.
        "ref_vf_coef": 0.0,
        "ref_ent_coef": 0.0,
        "eval_episodes": 1,
    }
    short = _train({**base, "ref_gamma": 0.3}, seed=0, steps=2000)
    long = _train({**base, "ref_gamma": 0.99}, seed=0, steps=2000)
    assert short.current_eta()["gamma"] < 0.5
    assert long.current_eta()["gamma"] > 0.95
    # And the agents act on it: the short-horizon one grabs (return 1), the other waits (return 1.5).
    assert short.evaluate(1) == 1.0
    assert long.evaluate(1) == 1.5


# ------------------------------------------------------------------ end to end
def test_discrete_smoke_through_run_target():
    ctx = TrialContext(seed=0, budget=1024, report_every=512, metric="eval_return")
    cfg = {"meta_gamma": True, "meta_gae_lambda": True, "eval_episodes": 2}
    result = run_target(ActorCriticTarget, cfg, ctx)
    m = result.metrics
    assert len(result.curve) == 2
    assert m["env_steps"] == 1024
    assert 0 < m["eval_return"] <= 500
    assert 0 <= m["meta_time_share"] < 1
    assert m["eta_gamma"] != pytest.approx(0.99, abs=1e-6)  # eta moved
    assert m["eta_ent_coef"] == pytest.approx(0.01)  # not learned: untouched


def test_continuous_smoke_with_all_eta_and_conditioning():
    cfg = {
        "env_id": "Pendulum-v1",
        "num_envs": 4,
        "num_steps": 8,
        "clip_coef": 0.2,
        "update_epochs": 2,
        "condition_on_eta": True,
        "reward_scale": 0.1,
        "eval_episodes": 1,
        **{f"meta_{n}": True for n in ETA_NAMES},
    }
    agent = _train(cfg, seed=0, steps=640)
    eta = agent.current_eta()
    assert all(math.isfinite(v) for v in eta.values())
    assert all(eta[n] != pytest.approx(getattr(agent.cfg, n), abs=1e-7) for n in ETA_NAMES)
    m = agent.train(64)
    assert -2000 < m["eval_return"] <= 0
    assert agent.history and "eta_vf_coef" in agent.history[-1]


def test_same_seed_same_run_other_seed_other_run():
    cfg = {"meta_gamma": True, "meta_gae_lambda": True, "eval_episodes": 2}
    a, b, c = (_train(cfg, seed=s, steps=768) for s in (3, 3, 4))
    for k in a.params:
        assert torch.equal(a.params[k], b.params[k])
    assert a.current_eta() == b.current_eta()
    assert a.current_eta() != c.current_eta()


def test_checkpoint_round_trip_continues_exactly(tmp_path):
    cfg = {"meta_gamma": True, "meta_gae_lambda": True, "meta_ent_coef": True, "eval_episodes": 2}
    a = _train(cfg, seed=0, steps=512)
    a.save(tmp_path / "ckpt")
    m_a = a.train(512)
    b = ActorCriticTarget(cfg, TrialContext(seed=99))  # a different seed: everything must come from the file
    b.load(tmp_path / "ckpt")
    m_b = b.train(512)
    for key in ("eval_return", "eta_gamma", "eta_gae_lambda", "eta_ent_coef", "env_steps"):
        assert m_a[key] == m_b[key], key
    for k in a.params:
        assert torch.equal(a.params[k], b.params[k])


def test_a_metagrad_trial_writes_its_eta_history_and_plot(tmp_path):
    """One trial of ``method: metagrad`` (its flags on, as the method sets them) leaves eta's history and
    its plot beside the trial."""
    config = {"eval_episodes": 1, "log_every": 2, "meta_gamma": True, "meta_gae_lambda": True}
    ctx = TrialContext(seed=0, budget=512, report_every=128, checkpoint_dir=tmp_path, metric="eval_return")
    metrics = run_target(ActorCriticTarget, config, ctx).metrics
    assert {"eval_return", "eta_gamma", "eta_gae_lambda", "meta_time_share"} <= set(metrics)
    lines = (tmp_path / "eta_history.csv").read_text().splitlines()
    assert lines[0].startswith("env_steps,eta_gamma") and len(lines) > 3
    assert (tmp_path / "eta.png").stat().st_size > 1000


def test_reconfigure_changes_lr_and_eta():
    agent = ActorCriticTarget({"meta_gamma": True}, TrialContext(seed=0))
    agent.reconfigure({"lr": 1.0e-3, "meta_lr": 0.02, "gamma": 0.9, "ent_coef": 0.02})
    assert agent.cfg.lr == 1.0e-3
    assert agent.meta_opt.param_groups[0]["lr"] == 0.02
    assert agent.current_eta()["gamma"] == pytest.approx(0.9)
    assert agent.current_eta()["ent_coef"] == pytest.approx(0.02)
    with pytest.raises(ConfigError, match="hidden"):
        agent.reconfigure({"hidden": 32})


def test_config_errors_name_key_rule_and_suggestion():
    with pytest.raises(ConfigError, match="did you mean 'gae_lambda'"):
        ActorCriticConfig.from_dict({"gae_lamda": 0.9})
    with pytest.raises(ConfigError, match=r"gamma: must lie in \(0, 1\) when learned.*got 1.0"):
        ActorCriticConfig.from_dict({"gamma": 1.0, "meta_gamma": True})
    assert ActorCriticConfig.from_dict({"gamma": 0.99, "one_minus_gamma": 0.01}).gamma == 0.99


def test_registered_target_and_its_search_space():
    from autorl.space.base import SearchSpace

    assert TARGETS.get("agents:actor_critic") is ActorCriticTarget
    info = target_info("agents:actor_critic")
    space = SearchSpace.from_yaml(REPO / "search_spaces" / info.space)
    valid = {f for f in ActorCriticConfig.__dataclass_fields__}
    assert set(space) <= valid
    assert {"meta_lr", "gamma", "gae_lambda"} <= set(space)
