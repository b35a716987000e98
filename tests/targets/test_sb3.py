"""SB3 targets: every algorithm trains and evaluates; seeds are honoured; budgets record real env steps."""

import pytest
import torch

from autorl.targets import TARGETS, TrialContext, run_target, target_info

ENVS = {
    "ppo": "CartPole-v1",
    "a2c": "CartPole-v1",
    "dqn": "CartPole-v1",
    "sac": "Pendulum-v1",
    "td3": "Pendulum-v1",
}
SMALL = {
    "ppo": {"n_steps": 64, "batch_size": 32, "n_epochs": 2},
    "a2c": {"n_steps": 16},
    "dqn": {"learning_starts": 50, "buffer_size": 1000},
    "sac": {"learning_starts": 50, "buffer_size": 1000, "batch_size": 32},
    "td3": {"learning_starts": 50, "buffer_size": 1000, "batch_size": 32, "noise_std": 0.1},
}


@pytest.mark.parametrize("algo", sorted(ENVS))
def test_each_algorithm_trains_evaluates_and_records_env_steps(algo):
    cls = TARGETS.get(f"sb3:{algo}")
    cfg = {"env": ENVS[algo], "eval_episodes": 2, "net_arch": "tiny", **SMALL[algo]}
    r = run_target(cls, cfg, TrialContext(seed=1, budget=200, report_every=100, metric="eval_return"))
    assert len(r.curve) == 2 and r.budget_used >= 200
    assert r.metrics["budget"] == r.budget_used
    assert target_info(f"sb3:{algo}").unit == "env_steps"
    assert torch.get_num_threads() == 1


def test_same_seed_same_result_and_another_seed_differs():
    cls = TARGETS.get("sb3:ppo")
    cfg = {"env": "CartPole-v1", "eval_episodes": 3, "n_steps": 64, "batch_size": 32, "n_epochs": 2}

    def run(seed):
        return run_target(
            cls, cfg, TrialContext(seed=seed, budget=256, report_every=128, metric="eval_return")
        ).curve

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_agents_sharing_a_process_train_as_each_would_alone():
    """Population members share a worker process: one member's training or construction (SB3 seeds the
    process-wide generators) must not change another's actions and minibatches."""
    cls = TARGETS.get("sb3:ppo")
    cfg = {"env": "CartPole-v1", "eval_episodes": 2, "n_steps": 64, "batch_size": 32, "n_epochs": 2}

    def params(agent):
        return torch.cat([p.detach().flatten() for p in agent.model.policy.parameters()])

    alone = cls(cfg, TrialContext(seed=1, budget=256))
    alone_curve = [alone.train(128)["eval_return"], alone.train(128)["eval_return"]]
    a = cls(cfg, TrialContext(seed=1, budget=256))
    b = cls(cfg, TrialContext(seed=2, budget=256))  # built after a: reseeds the generators
    curve = [a.train(128)["eval_return"]]
    b.train(128)
    curve.append(a.train(128)["eval_return"])
    assert curve == alone_curve
    assert torch.equal(params(a), params(alone))


def test_ppo_overshoot_is_recorded_not_hidden():
    cls = TARGETS.get("sb3:ppo")
    t = cls({"env": "CartPole-v1", "n_envs": 2, "n_steps": 128, "eval_episodes": 1}, TrialContext(seed=0))
    m = t.train(100)  # one whole rollout is 2 x 128 steps
    assert m["budget"] == 256


@pytest.mark.parametrize("algo", ["dqn", "sac"])
def test_an_off_policy_agent_stops_at_its_budget_and_keeps_every_transition(algo):
    """SB3 collects train_freq steps before it checks the total: 100 steps at train_freq 7 would be 105,
    and a sweep charging whole trials would fit fewer of them."""
    cls = TARGETS.get(f"sb3:{algo}")
    cfg = {"env": ENVS[algo], "eval_episodes": 1, "net_arch": "tiny", "train_freq": 7, **SMALL[algo]}
    t = cls(cfg, TrialContext(seed=0, budget=150))
    assert t.train(100)["budget"] == 100
    assert t.train(50)["budget"] == 150
    assert t.model.replay_buffer.size() == 150  # the shorter last chunk lost no transition
    assert t.model.train_freq.frequency == 7


def test_reconfigure_learning_rate_reaches_the_optimiser():
    cls = TARGETS.get("sb3:ppo")
    t = cls(
        {
            "env": "CartPole-v1",
            "n_steps": 64,
            "batch_size": 32,
            "n_epochs": 1,
            "eval_episodes": 1,
            "learning_rate": 1e-3,
        },
        TrialContext(seed=0),
    )
    t.train(64)
    t.reconfigure({"learning_rate": 5e-5, "gamma": 0.9, "clip_range": 0.05})
    t.train(64)
    assert t.model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(5e-5)
    assert t.model.gamma == 0.9 and t.model.rollout_buffer.gamma == 0.9
    assert t.model.clip_range(1.0) == pytest.approx(0.05)


def test_evaluating_on_a_seed_is_repeatable_and_trains_nothing():
    """A race's evaluation: episodes start from the seed (the same seed, the same value; another seed,
    other episodes) and the agent does not move."""
    cls = TARGETS.get("sb3:sac")
    agent = cls({"env": "Pendulum-v1", "eval_episodes": 2, **SMALL["sac"]}, TrialContext(seed=1, budget=100))
    agent.train(100)
    first = agent.evaluate(7)
    assert agent.evaluate(8)["eval_return"] != first["eval_return"]
    assert agent.evaluate(7) == first and first["budget"] == 100
    assert target_info("sb3:sac").evaluates and target_info("sb3:ppo").evaluates
