"""rl-zoo3's ``lin_<x>`` schedules on SB3 targets: linear from x to 0 over the trial's whole budget,
although the target trains in increments, across save/load and reconfigure; malformed ones refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autorl.config import parse_sweep
from autorl.errors import ConfigError
from autorl.targets.base import TrialContext
from autorl.targets.sb3 import DQNTarget, PPOTarget

BUDGET = 512
PPO = {
    "env": "CartPole-v1",
    "n_envs": 2,
    "n_steps": 32,  # a rollout is 64 env steps
    "batch_size": 32,
    "n_epochs": 2,
    "eval_episodes": 1,
    "learning_rate": "lin_0.001",
    "clip_range": "lin_0.2",
}


def _lr(target: PPOTarget) -> float:
    return float(target.model.policy.optimizer.param_groups[0]["lr"])


def _ppo(budget: int = BUDGET, **changes: object) -> PPOTarget:
    return PPOTarget({**PPO, **changes}, TrialContext(seed=0, budget=budget, report_every=64))


def test_the_learning_rate_applied_falls_linearly_over_the_budget_across_increments_and_a_reload(
    tmp_path: Path,
) -> None:
    t = _ppo()
    for _ in range(3):
        t.train(64)
        n = t.model.num_timesteps
        # the last update of a train() call read the schedules after the rollout that ended at n
        assert _lr(t) == pytest.approx(1e-3 * (1 - n / BUDGET), rel=1e-9)
        assert t.model.clip_range(t.model._current_progress_remaining) == pytest.approx(
            0.2 * (1 - n / BUDGET)
        )
    t.save(tmp_path / "ckpt")
    again = _ppo()
    again.load(tmp_path / "ckpt")
    for _ in range(2):
        again.train(100)  # not a multiple of a rollout: SB3 finishes the one it is in
        n = again.model.num_timesteps
        assert n < BUDGET and _lr(again) == pytest.approx(1e-3 * (1 - n / BUDGET), rel=1e-9)
    again.train(BUDGET)  # past the budget the schedule stays at 0, never negative
    assert _lr(again) == 0.0


def test_an_incremental_run_trains_exactly_as_one_sb3_run_of_the_budget() -> None:
    """What rl-zoo3 does with lin_x: one learn(n_timesteps) with ``lambda p: p * x``."""
    ref = _ppo(256, learning_rate=1e-3, clip_range=0.2)
    ref.model.learning_rate = lambda p: p * 1e-3
    ref.model._setup_lr_schedule()
    ref.model.clip_range = lambda p: p * 0.2
    ref.model.learn(256)
    ours = _ppo(256)
    for _ in range(4):
        ours.train(64)
    assert ours.model.num_timesteps == ref.model.num_timesteps == 256
    a, b = (torch.nn.utils.parameters_to_vector(x.model.policy.parameters()) for x in (ref, ours))
    assert torch.equal(a, b)


def test_reconfigure_keeps_an_unchanged_schedule_and_takes_a_new_one() -> None:
    t = _ppo()
    t.train(128)
    t.reconfigure({**PPO})  # what a population passes for a member whose schedule did not change
    assert _lr(t) == pytest.approx(1e-3 * (1 - 128 / BUDGET))
    t.reconfigure({"learning_rate": 5e-4, "clip_range": "lin_0.3"})
    assert _lr(t) == 5e-4 and t.model.clip_range(0.5) == pytest.approx(0.15)
    t.reconfigure({"learning_rate": "lin_0.002"})
    assert _lr(t) == pytest.approx(2e-3 * (1 - 128 / BUDGET))
    t.train(64)
    assert _lr(t) == pytest.approx(2e-3 * (1 - 192 / BUDGET))


def test_dqn_exploration_decays_over_the_budget_not_over_each_increment() -> None:
    cfg = {
        "env": "CartPole-v1",
        "exploration_fraction": 0.5,
        "exploration_final_eps": 0.05,
        "learning_starts": 0,
        "buffer_size": 1000,
        "eval_episodes": 1,
    }
    t = DQNTarget(cfg, TrialContext(seed=0, budget=400, report_every=50))
    for _ in range(4):
        t.train(50)
        n = t.model.num_timesteps
        assert t.model.exploration_rate == pytest.approx(1.0 - 0.95 * min(1.0, n / 200))


def test_normalize_discounts_the_reward_with_the_configs_gamma() -> None:
    t = _ppo(normalize=True, gamma=0.9)
    assert t.env.gamma == 0.9
    t.reconfigure({"gamma": 0.95})
    assert t.env.gamma == 0.95 and t.model.gamma == 0.95


@pytest.mark.parametrize(
    ("args", "rule"),
    [
        (
            {"learning_rate": "lin_abc"},
            "learning_rate: a schedule is written lin_<x> with x a positive number",
        ),
        ({"clip_range": "lin_-0.2"}, "clip_range: a schedule is written lin_<x>"),
        ({"learning_rate": "linear"}, "learning_rate: a schedule is written lin_<x>"),
        ({"gamma": "lin_0.99"}, "gamma: a linear schedule .* is only for learning_rate, clip_range"),
    ],
)
def test_a_malformed_or_misplaced_schedule_is_one_config_error(args: dict, rule: str, tmp_path: Path) -> None:
    cfg = {"target": "sb3:ppo", "args": {"env": "CartPole-v1", **args}, "budget": {"max": 100}}
    with pytest.raises(ConfigError, match=f"args.{rule}") as exc:
        parse_sweep({**cfg, "method": "random", "out": str(tmp_path)}, "s.yaml")
    assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match=f"method.config.{rule}"):
        parse_sweep(
            {
                **cfg,
                "args": {"env": "CartPole-v1"},
                "method": {"name": "fixed", "config": args},
                "out": str(tmp_path),
            },
            "s.yaml",
        )
