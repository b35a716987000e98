"""The batched PPO population: members independent of each other, exact copies, resumes and failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from autorl.engine.ppo import HYPERPARAMS, EngineConfig, Population, load_policy
from autorl.errors import ConfigError

torch.set_num_threads(1)

# one rollout of 4 envs x 16 steps, 2 epochs of 2 minibatches: fast, yet every code path runs
SMALL: dict[str, Any] = {"n_envs": 4, "n_steps": 16, "n_epochs": 2, "n_minibatches": 2, "hidden": (16, 16)}
OTHERS = [
    {"learning_rate": 1e-2, "gamma": 0.9, "clip_range": 0.3},
    {"learning_rate": 1e-4, "ent_coef": 0.05, "gae_lambda": 0.8},
    {"max_grad_norm": 5.0, "vf_coef": 1.0, "adam_eps": 1e-8},
]
MINE = {"learning_rate": 3e-3, "ent_coef": 0.01}


def _config(env: str = "CartPole-v1", **overrides: Any) -> EngineConfig:
    return EngineConfig(env, **(SMALL | overrides))


def _members(pop: Population) -> dict[str, torch.Tensor]:
    return pop.state_dict()["members"]


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], rows: Any = slice(None)) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name][rows], b[name][rows]), name


# -- independence and determinism --------------------------------------------------------------------

PENDULUM_NORMALIZED: dict[str, Any] = {"n_steps": 25, "normalize_obs": True, "normalize_reward": True}
INDEPENDENCE = [
    pytest.param(_config(), 1e-4, id="cartpole"),
    # Pendulum truncates at 200 steps: 10 rollouts of 25 steps bootstrap from final observations
    pytest.param(_config("Pendulum-v1", **PENDULUM_NORMALIZED), 1e-4, id="pendulum-normalized"),
    # in float64 only rounding separates them: the difference stays near machine precision
    pytest.param(
        _config("Pendulum-v1", **PENDULUM_NORMALIZED, dtype=torch.float64), 1e-12, id="pendulum-float64"
    ),
]


@pytest.mark.parametrize(("config", "tolerance"), INDEPENDENCE)
def test_a_member_trains_as_if_alone(config: EngineConfig, tolerance: float) -> None:
    alone = Population(config, [MINE], seeds=[3])
    crowd = Population(config, [OTHERS[0], MINE, *OTHERS[1:]], seeds=[7, 3, 5, 9])
    rollout = config.n_envs * config.n_steps
    for _ in range(10):
        alone.train(rollout)
        crowd.train(rollout)
    a, c = _members(alone), _members(crowd)
    assert _relative(c["theta"][1], a["theta"][0]) < tolerance
    assert _relative(c["adam_v"][1], a["adam_v"][0]) < 10 * tolerance
    assert torch.equal(c["steps"][1], a["steps"][0]) and torch.equal(c["counter"][1], a["counter"][0])
    assert _relative(c["theta"][0], a["theta"][0]) > 0.1  # the others really differ
    if config.normalize_obs:
        assert _relative(c["obs_var"][1], a["obs_var"][0]) < tolerance
        assert _relative(c["ret_var"][1], a["ret_var"][0]) < tolerance
    assert torch.allclose(crowd.evaluate(2)[1], alone.evaluate(2)[0], rtol=tolerance)


def test_same_seeds_give_identical_populations() -> None:
    config = _config("Pendulum-v1", normalize_obs=True)
    runs = []
    for seeds in ([1, 2], [1, 2], [1, 3]):
        pop = Population(config, [MINE, OTHERS[0]], seeds=seeds)
        for _ in range(3):
            pop.train(64)
        runs.append(_members(pop))
    _assert_same(runs[0], runs[1])
    _assert_same(runs[0], runs[2], rows=0)
    assert not torch.equal(runs[0]["theta"][1], runs[2]["theta"][1])


def test_evaluation_leaves_training_untouched() -> None:
    config = _config()
    plain, evaluated = (Population(config, [MINE, OTHERS[1]], seeds=[0, 1]) for _ in range(2))
    for _ in range(3):
        plain.train(64)
        evaluated.train(64)
        evaluated.evaluate(3)
    a, b = _members(plain), _members(evaluated)
    assert not torch.equal(a["eval_counter"], b["eval_counter"])
    a.pop("eval_counter"), b.pop("eval_counter")
    _assert_same(a, b)


def test_evaluating_a_subset_leaves_the_others_streams_alone() -> None:
    """Only the members asked for are evaluated (nan for the others), and an unevaluated member's next
    evaluation is the one it would have had: its evaluation stream did not move."""
    config = _config()
    every, subset = (Population(config, [MINE, OTHERS[0], OTHERS[1]], seeds=[4, 5, 6]) for _ in range(2))
    for pop in (every, subset):
        pop.train(64)
    first = every.evaluate(2)
    some = subset.evaluate(2, members=[1])
    assert torch.isnan(some[[0, 2]]).all() and some[1] == first[1]
    again, later = every.evaluate(2), subset.evaluate(2)
    assert later[1] == again[1]  # member 1 evaluated twice on each side
    assert later[[0, 2]].tolist() == first[[0, 2]].tolist()  # members 0 and 2 evaluated once


def test_evaluating_on_seeds_starts_members_alike_and_moves_no_stream() -> None:
    """A race's evaluation: members given one seed start their episodes alike (a copy scores as its
    source), other seeds give other starts, it is repeatable, and no evaluation stream moves."""
    config = _config("Pendulum-v1")
    pop, twin = (Population(config, [MINE, OTHERS[0], OTHERS[1]], seeds=[4, 5, 6]) for _ in range(2))
    for p in (pop, twin):
        p.train(64)
        p.copy(0, 2)  # member 2 is member 0's agent, with its own evaluation stream
    seeded = pop.evaluate(2, members=[0, 2], seeds=[7, 7])
    assert seeded[0] == seeded[2] and torch.isnan(seeded[1])
    assert torch.equal(pop.evaluate(2, members=[0, 2], seeds=[7, 7])[[0, 2]], seeded[[0, 2]])
    other = pop.evaluate(2, members=[2, 0], seeds=[8, 7])  # seeds follow the members' order
    assert other[0] == seeded[0] and other[2] != seeded[2]
    assert torch.equal(pop.evaluate(2), twin.evaluate(2))  # the streams are where they were


def test_training_a_subset_leaves_the_others_alone() -> None:
    config = _config()
    every, subset = (Population(config, [MINE, OTHERS[0], OTHERS[1]], seeds=[4, 5, 6]) for _ in range(2))
    before = _members(subset)
    for _ in range(3):
        every.train(64)
        stats = subset.train(64, members=[1])
    assert [s["budget"] for s in stats] == [3 * 64]
    after, full = _members(subset), _members(every)
    _assert_same(after, before, rows=[0, 2])
    assert _relative(after["theta"][1], full["theta"][1]) < 1e-4
    assert after["steps"].tolist() == [0, 192, 0]
    mask = torch.tensor([True, False, True])
    assert [s["budget"] for s in subset.train(1, members=mask)] == [64, 64]


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])
def test_the_first_minibatch_is_on_policy(env: str) -> None:
    """With one epoch of one minibatch the update sees the rollout's own policy: a ratio of 1."""
    pop = Population(_config(env, n_epochs=1, n_minibatches=1), [MINE, MINE | {"clip_range": 1e-6}], [0, 1])
    for stats in pop.train(64):
        assert abs(stats["approx_kl"]) < 1e-6 and stats["clip_fraction"] == 0
        assert np.isfinite([stats["policy_loss"], stats["value_loss"], stats["explained_variance"]]).all()
    if env == "Pendulum-v1":  # a unit Gaussian's entropy, 0.5 * log(2 pi e)
        assert stats["entropy_loss"] == pytest.approx(-0.5 * np.log(2 * np.pi * np.e), rel=1e-6)
    else:  # two actions, near-uniform at init (a policy head of gain 0.01)
        assert stats["entropy_loss"] == pytest.approx(-np.log(2), rel=1e-3)


def _gae_reference(
    values: np.ndarray,
    next_value: np.ndarray,
    rewards: np.ndarray,
    dones: np.ndarray,
    truncated: np.ndarray,
    final_values: np.ndarray,
    gamma: float,
    lam: float,
) -> np.ndarray:
    """SB3's compute_returns_and_advantage for one member, in float64 numpy, with the truncation bootstrap
    of its collect_rollouts (reward += gamma * V(terminal_observation))."""
    rewards = rewards + gamma * final_values * truncated
    advantages = np.zeros_like(values)
    last = 0.0
    for t in reversed(range(len(values))):
        following = next_value if t == len(values) - 1 else values[t + 1]
        delta = rewards[t] + gamma * following * (1 - dones[t]) - values[t]
        last = delta + gamma * lam * (1 - dones[t]) * last
        advantages[t] = last
    return advantages


def test_advantages_follow_sb3_with_per_member_gamma_and_lambda() -> None:
    from autorl.engine.ppo import _mlp, _Rollout

    config = _config("Pendulum-v1", n_steps=6, n_envs=3)
    pop = Population(config, [{"gamma": 0.9, "gae_lambda": 0.8}, {"gamma": 0.99, "gae_lambda": 0.95}], [0, 1])
    gen = torch.Generator().manual_seed(0)
    buf = _Rollout.empty(config, 2)
    for t in (buf.obs, buf.final_obs, buf.last_obs, buf.rewards):
        t.copy_(torch.randn(t.shape, generator=gen))
    buf.dones.copy_(torch.rand(buf.dones.shape, generator=gen) < 0.3)
    buf.truncated.copy_(buf.dones & (torch.rand(buf.dones.shape, generator=gen) < 0.5))
    m = pop._m
    advantages, returns, values = pop._advantages(m, buf)
    _, critic, _ = pop._layout.split(m.theta)
    critic_of = lambda x: _mlp(critic, x.reshape(2, -1, 3), "tanh").reshape(x.shape[:-1])  # noqa: E731
    for i, (gamma, lam) in enumerate([(0.9, 0.8), (0.99, 0.95)]):
        want = _gae_reference(
            critic_of(buf.obs)[i].double().numpy(),
            critic_of(buf.last_obs)[i].double().numpy(),
            buf.rewards[i].double().numpy(),
            buf.dones[i].double().numpy(),
            buf.truncated[i].double().numpy(),
            critic_of(buf.final_obs)[i].double().numpy(),
            gamma,
            lam,
        )
        np.testing.assert_allclose(advantages[i].numpy(), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(returns, advantages + values)


# -- copies, hyperparameters, resets, saving ----------------------------------------------------------


def test_copy_takes_the_agent_not_the_envs_or_the_stream() -> None:
    config = _config(normalize_obs=True, normalize_reward=True)
    moved, manual = (Population(config, [MINE, OTHERS[0]], seeds=[1, 2]) for _ in range(2))
    for pop in (moved, manual):
        pop.train(128)
    before = _members(moved)
    moved.copy(0, 1)
    after = _members(moved)
    agent = ["theta", "adam_m", "adam_v", "adam_step", "obs_mean", "obs_var", "obs_count"]
    agent += ["ret_mean", "ret_var", "ret_count", "steps", "failed"]
    for name in after:
        want = before[name][0] if name in agent else before[name][1]
        assert torch.equal(after[name][1], want), name
    assert moved.hparams(1) == manual.hparams(1) != moved.hparams(0)

    # dst then trains exactly as one whose agent tensors were written by hand (its own envs, stream, hparams)
    state = manual.state_dict()
    for name in agent:
        state["members"][name][1] = state["members"][name][0]
    manual.load_state_dict(state)
    for pop in (moved, manual):
        pop.train(128)
    _assert_same(_members(moved), _members(manual))


@pytest.mark.parametrize("env", ["Pendulum-v1", "MountainCarContinuous-v0"])
def test_a_failed_member_recovers_when_a_copy_overwrites_it(env: str) -> None:
    """A member that failed on a continuous task, its envs left non-finite (an infinite std times a zero
    draw is nan: the action, the state, the return), is trained again after a PBT copy: it starts fresh
    episodes (it stayed failed: its envs were not the copy's to overwrite)."""
    cfg = EngineConfig(env=env, n_envs=8, n_steps=64, n_epochs=2, n_minibatches=2, normalize_obs=True)
    pop = Population(cfg, [{"learning_rate": 1e-3}] * 2, [0, 1])
    pop.train(512)
    m, nan = pop._m, float("nan")
    m.env_state[1], m.obs[1], m.ret_acc[1], m.ep_return[1], m.failed[1] = nan, nan, nan, nan, True
    pop.copy(0, 1)
    stats = pop.train(512)
    assert pop.failed.tolist() == [False, False] and np.isfinite(stats[1]["policy_loss"])
    assert torch.isfinite(m.env_state[1]).all()


def test_set_hparams_applies_at_once() -> None:
    pop = Population(_config(), [MINE, MINE], seeds=[0, 1])
    pop.train(64)
    pop.set_hparams(1, {"learning_rate": 0.0, "gamma": 0.5})
    assert pop.hparams(1)["learning_rate"] == 0.0 and pop.hparams(1)["gamma"] == 0.5
    assert pop.hparams(0) == pop.hparams(1) | {"learning_rate": 3e-3, "gamma": 0.99}
    before = _members(pop)
    stats = pop.train(64)
    after = _members(pop)
    assert torch.equal(after["theta"][1], before["theta"][1])
    assert not torch.equal(after["theta"][0], before["theta"][0])
    assert after["adam_step"].tolist() == [8, 8]  # 2 rollouts x 2 epochs x 2 minibatches
    assert stats[1]["learning_rate"] == 0.0
    with pytest.raises(
        ConfigError, match=r"unknown hyperparameter 'learning_rte'.*Valid: adam_eps, clip_range"
    ):
        pop.set_hparams(0, {"learning_rte": 1.0})
    with pytest.raises(ConfigError, match=r"gamma: must be finite and in \[0, 1\], got 1.5"):
        pop.set_hparams(0, {"gamma": 1.5})
    assert pop.hparams(0)["gamma"] == 0.99
    assert set(pop.hparams(0)) == set(HYPERPARAMS)


def test_reset_member_starts_a_fresh_agent() -> None:
    config = _config()
    pop = Population(config, [MINE, OTHERS[0]], seeds=[0, 1])
    pop.train(128)
    pop.reset_member(1, OTHERS[2], seed=9)
    fresh = Population(config, [OTHERS[2]], seeds=[9])
    _assert_same({n: t[1:] for n, t in _members(pop).items()}, _members(fresh))
    for p in (pop, fresh):
        p.train(64)
    assert _relative(_members(pop)["theta"][1], _members(fresh)["theta"][0]) < 1e-4


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])
def test_state_dict_round_trip_resumes_exactly(env: str, tmp_path: Path) -> None:
    config = _config(env, normalize_obs=True, normalize_reward=True)
    pop = Population(config, [MINE, OTHERS[0]], seeds=[1, 2])
    pop.train(8 * 64)  # 128 steps per env: the time limits (200 for Pendulum) fall after the resume
    torch.save(pop.state_dict(), tmp_path / "pop.pt")
    resumed = Population(config, [OTHERS[1]], seeds=[5])  # any size, hparams and seeds: all are replaced
    resumed.load_state_dict(torch.load(tmp_path / "pop.pt", weights_only=True))
    assert resumed.size == 2 and resumed.hparams(1) == pop.hparams(1)
    for p in (pop, resumed):
        p.train(8 * 64)
    _assert_same(_members(pop), _members(resumed))
    assert torch.equal(pop.evaluate(2), resumed.evaluate(2))
    with pytest.raises(ValueError, match=r"differ in \['n_steps'\]"):
        Population(
            _config(env, normalize_obs=True, normalize_reward=True, n_steps=8), [{}], [0]
        ).load_state_dict(pop.state_dict())


# -- failures -----------------------------------------------------------------------------------------


def _diverge_by_loss(pop: Population) -> None:
    pop.set_hparams(1, {"learning_rate": 1e30})  # parameters of 1e30: the next loss overflows


def _diverge_by_step(pop: Population) -> None:
    pop.set_hparams(1, {"learning_rate": 1e38})  # lr / (1 - beta1) overflows: the first step is not finite


def _diverge_by_nan(pop: Population) -> None:
    state = pop.state_dict()
    state["members"]["theta"][1, 5] = float("nan")
    pop.load_state_dict(state)


@pytest.mark.parametrize("diverge", [_diverge_by_loss, _diverge_by_step, _diverge_by_nan])
def test_a_diverging_member_fails_alone(diverge: Any) -> None:
    config = _config()
    pop = Population(config, [MINE, OTHERS[0], OTHERS[1]], seeds=[1, 2, 3])
    without = Population(config, [MINE, OTHERS[1]], seeds=[1, 3])
    for p in (pop, without):
        p.train(64)
    diverge(pop)
    theta = _members(pop)["theta"][1]
    for _ in range(4):
        stats = pop.train(64)
        without.train(64)
    assert pop.failed.tolist() == [False, True, False]
    assert stats[1]["failed"] == 1.0 and np.isnan(stats[1]["loss"])
    a, b = _members(pop), _members(without)
    assert _relative(a["theta"][[0, 2]], b["theta"]) < 1e-4
    failed_steps = int(a["steps"][1])
    assert failed_steps < 5 * 64  # it stopped training
    if diverge is _diverge_by_step:
        assert torch.equal(a["theta"][1], theta)  # it keeps its last finite parameters
    if diverge is not _diverge_by_nan:
        assert torch.isfinite(a["theta"][1]).all()
    returns = pop.evaluate(2)
    assert torch.isnan(returns[1]) and torch.isfinite(returns[[0, 2]]).all()
    pop.copy(0, 1)  # a working agent (and a sane learning rate) revive the slot
    pop.set_hparams(1, {"learning_rate": 1e-3})
    pop.train(64)
    assert not pop.failed.any() and int(pop.steps[1]) == int(pop.steps[0])


# -- levels and hooks ---------------------------------------------------------------------------------


def test_level_hooks_see_every_episode() -> None:
    config = _config(n_envs=3)
    calls: list[torch.Tensor] = []
    ended: list[tuple[torch.Tensor, torch.Tensor]] = []

    def level_fn(copies: torch.Tensor) -> dict[str, torch.Tensor]:
        calls.append(copies)
        return {"pole_length": 0.25 + 0.1 * (copies // 3) + 0.01 * len(calls)}

    pop = Population(
        config,
        [MINE, OTHERS[0]],
        seeds=[0, 1],
        level_fn=level_fn,
        on_episode_end=lambda c, r: ended.append((c, r)),
    )
    assert calls[0].tolist() == list(range(6))
    stats = pop.train(3 * 16 * 4)
    copies = torch.cat([c for c, _ in ended])
    returns = torch.cat([r for _, r in ended])
    assert len(calls) == len(ended) + 1 and all(
        torch.equal(c, e) for c, (e, _) in zip(calls[1:], ended, strict=True)
    )
    for member in range(2):
        mine = returns[copies // 3 == member]
        assert stats[member]["episodes"] == len(mine)
        assert stats[member]["episode_return"] == pytest.approx(float(mine.mean()), rel=1e-6)
    # the last level given to each copy is in force
    level = _members(pop)["level/pole_length"].view(-1)
    for copy in range(6):
        last = max(i for i, c in enumerate(calls) if copy in c.tolist())
        assert level[copy] == pytest.approx(0.25 + 0.1 * (copy // 3) + 0.01 * (last + 1))


def test_set_level_changes_the_physics() -> None:
    config = _config()
    pop = Population(config, [MINE, MINE], seeds=[0, 0])
    pop.set_level({"force_mag": 0.0}, member=1, copies=[0, 2])
    level = _members(pop)["level/force_mag"]
    assert level[0].tolist() == [10.0] * 4 and level[1].tolist() == [0.0, 10.0, 0.0, 10.0]
    default = pop.evaluate(3)
    assert default[0] == default[1]  # one seed, one policy
    pop.set_level({"gravity": 30.0}, member=1, evaluation=True)
    changed = pop.evaluate(3)
    assert changed[1] < changed[0]  # the pole falls sooner under triple gravity
    with pytest.raises(ConfigError, match=r"unknown CartPole-v1 parameter 'gravty'\. Did you mean 'gravity'"):
        pop.set_level({"gravty": 1.0})


# -- learning and deployment --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cartpole() -> Population:
    """Four CartPole members trained until all reach a deterministic return of 200, or for 100k steps."""
    config = EngineConfig("CartPole-v1", normalize_obs=True)
    hparams = [{"learning_rate": lr} for lr in (2.5e-4, 5e-4, 1e-3, 1e-3)]
    pop = Population(config, hparams, seeds=range(4))
    best = torch.zeros(4, dtype=torch.float64)
    while int(pop.steps.min()) < 100_000 and (best >= 200).sum() < 4:
        pop.train(8192)
        best = torch.maximum(best, pop.evaluate())
    pop.best = best  # type: ignore[attr-defined]
    return pop


def test_cartpole_learns(cartpole: Population) -> None:
    assert (cartpole.best >= 200).sum() >= 3, cartpole.best  # type: ignore[attr-defined]


def test_load_policy_drives_a_gymnasium_env(cartpole: Population, tmp_path: Path) -> None:
    best = int(cartpole.evaluate().argmax())
    torch.save(cartpole.member_state(best), tmp_path / "agent.pt")
    policy = load_policy(torch.load(tmp_path / "agent.pt", weights_only=True))
    env = gym.make("CartPole-v1")
    total = 0.0
    for episode in range(3):
        obs, _ = env.reset(seed=episode)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total += float(reward)
            done = terminated or truncated
    assert total / 3 >= 200
    assert policy(np.zeros((5, 4))).shape == (5,)


def test_load_policy_continuous() -> None:
    pop = Population(_config("Pendulum-v1", normalize_obs=True), [MINE], seeds=[0])
    pop.train(64)
    policy = load_policy(pop.member_state(0))
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=0)
    action = policy(obs)
    assert action.shape == (1,) and action.dtype == np.float32
    env.step(action)
    state = pop.member_state(0)
    state["actor"][-1][1] = state["actor"][-1][1] + 5.0  # a mean action far beyond the bound
    assert load_policy(state)(np.zeros((7, 3))).tolist() == [[2.0]] * 7


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])
def test_evaluate_is_load_policy_on_fresh_episodes(env: str) -> None:
    """evaluate() equals stepping each member's deployed policy through its evaluation starts by hand."""
    from autorl.engine import rng
    from autorl.engine.envs import make
    from autorl.engine.ppo import _EVAL

    pop = Population(_config(env, normalize_obs=True), [MINE, OTHERS[0]], seeds=[0, 1])
    pop.train(256)
    counters = _members(pop)["eval_counter"]
    returns = pop.evaluate(3)
    for member in range(2):
        policy = load_policy(pop.member_state(member))
        seed = torch.tensor([member], dtype=torch.int64)
        spec = make(env, 1).spec
        u = rng.uniform(seed, counters[member : member + 1], (3, spec.reset_dims), stream=_EVAL)[0]
        batch = make(env, 3)
        obs, total, done = batch.reset(u), np.zeros(3), np.zeros(3, dtype=bool)
        while not done.all():
            step = batch.step(torch.as_tensor(policy(obs.numpy())), u)
            total += np.where(done, 0.0, step.reward.numpy())
            done |= step.done.numpy()
            obs = step.obs
        assert returns[member].item() == pytest.approx(total.mean(), rel=1e-5)


@pytest.mark.slow
def test_pendulum_improves() -> None:
    config = EngineConfig(
        "Pendulum-v1",
        n_envs=16,
        n_steps=64,
        n_epochs=10,
        n_minibatches=16,
        normalize_obs=True,
        normalize_reward=True,
    )
    hparams = {"learning_rate": 1e-3, "gamma": 0.9, "gae_lambda": 0.95, "clip_range": 0.2}
    pop = Population(config, [hparams] * 2, seeds=[0, 1])
    start = pop.evaluate()
    pop.train(40_000)
    end = pop.evaluate()
    assert (end - start).min() > 400, (start, end)  # from about -1200 to -400 or better


# -- configuration ------------------------------------------------------------------------------------


def test_config_and_arguments_are_checked() -> None:
    with pytest.raises(ConfigError, match="n_minibatches: must divide n_envs \\* n_steps = 64, got 3"):
        _config(n_minibatches=3)
    with pytest.raises(ConfigError, match="Did you mean 'CartPole-v1'"):
        EngineConfig("Cartpole-v1")
    with pytest.raises(ConfigError, match="lr_schedule: a linear schedule needs total_steps >= 1, got None"):
        _config(lr_schedule="linear")
    with pytest.raises(ValueError, match="one entry per member"):
        Population(_config(), [{}, {}], seeds=[0])
    pop = Population(_config(), [{}], seeds=[0])
    with pytest.raises(IndexError, match=r"member must be in \[0, 1\), got 1"):
        pop.hparams(1)
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        pop.train(0)


def test_linear_schedules_reach_zero() -> None:
    config = _config(lr_schedule="linear", clip_schedule="linear", total_steps=256)
    pop = Population(config, [{"learning_rate": 1e-3, "clip_range": 0.2}], seeds=[0])
    rates = [pop.train(64)[0] for _ in range(4)]
    assert [r["learning_rate"] for r in rates] == pytest.approx([7.5e-4, 5e-4, 2.5e-4, 0.0])
    assert [r["clip_range"] for r in rates] == pytest.approx([0.15, 0.1, 0.05, 0.0])
    assert [r["budget"] for r in rates] == [64, 128, 192, 256]


@pytest.mark.slow  # ~15-30 s: inductor compiles the minibatch step
def test_a_compiled_update_trains_as_the_eager_one() -> None:
    """``compile=True`` compiles the update's minibatch step: the members train as they do eagerly, to
    the engine's member-independence tolerance (compiled kernels round differently)."""
    eager = Population(_config(), [MINE, OTHERS[0]], seeds=[3, 4])
    compiled = Population(_config(compile=True), [MINE, OTHERS[0]], seeds=[3, 4])
    for pop in (eager, compiled):
        for _ in range(10):
            pop.train(64)
    a, c = _members(eager), _members(compiled)
    assert _relative(c["theta"], a["theta"]) < 1e-4
    assert torch.equal(c["steps"], a["steps"])
    assert compiled._minibatch != compiled._minibatch_grad  # it really ran compiled
    assert eager._minibatch == eager._minibatch_grad
