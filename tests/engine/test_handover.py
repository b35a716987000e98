"""An engine:ppo configuration handed over to SB3: every setting carried, what has no equivalent refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from click.testing import CliRunner

from autorl.api import sweep
from autorl.cli import main
from autorl.engine.handover import to_sb3
from autorl.errors import ConfigError
from autorl.targets import TrialContext, target_info
from autorl.targets.sb3 import SB3Target, check_args

TUNED: dict[str, Any] = {
    "env": "Acrobot-v1",
    "n_envs": 16,
    "n_steps": 64,
    "n_epochs": 10,
    "n_minibatches": 8,
    "hidden": [32, 32],
    "activation": "relu",
    "normalize_obs": True,
    "normalize_reward": True,
    "lr_schedule": "linear",
    "eval_episodes": 5,
    "learning_rate": 3e-3,
    "clip_range": 0.3,
    "ent_coef": 0.01,
    "vf_coef": 0.7,
    "gamma": 0.97,
    "gae_lambda": 0.9,
    "max_grad_norm": 1.5,
    "threads": 1,  # speed only: not carried
}


def test_every_setting_reaches_sb3s_ppo() -> None:
    """The SB3 model the sb3:ppo target builds from the handed-over configuration has the engine's
    settings: rollout and minibatch shapes, every hyperparameter, the networks, Adam's eps and
    VecNormalize's gamma."""
    handed = to_sb3(TUNED)
    assert handed["target"] == "sb3:ppo" and handed["vecnormalize"]["gamma"] == 0.97
    check_args(dict(handed["args"]), list(handed["params"]), "ppo")  # keys sb3:ppo takes
    agent = SB3Target({**handed["args"], **handed["params"]}, TrialContext(seed=0, budget=10_240))
    model = agent.model
    assert (model.n_envs, model.n_steps, model.batch_size, model.n_epochs) == (16, 64, 128, 10)
    assert (model.gamma, model.gae_lambda, model.ent_coef, model.vf_coef, model.max_grad_norm) == (
        0.97, 0.9, 0.01, 0.7, 1.5
    )  # fmt: skip
    assert model.clip_range(1.0) == pytest.approx(0.3)
    assert model.learning_rate(1.0) == pytest.approx(3e-3) and model.learning_rate(0.5) == pytest.approx(
        1.5e-3
    )
    linears = [m for m in model.policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [32, 32]
    assert isinstance(model.policy.mlp_extractor.policy_net[1], torch.nn.ReLU) and model.policy.ortho_init
    assert model.policy.optimizer.defaults["eps"] == 1e-5  # the engine's Adam eps
    assert agent.env.gamma == 0.97 and agent.env.norm_obs and agent.env.norm_reward  # VecNormalize


def test_a_continuous_task_carries_its_log_std() -> None:
    params = to_sb3({"env": "Pendulum-v1", "log_std_init": -0.5})["params"]
    assert params["log_std_init"] == -0.5
    assert "log_std_init" not in to_sb3({"env": "CartPole-v1"})["params"]


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"objective": "unclipped"}, "objective"),
        ({"adam_eps": 1e-8}, "adam_eps"),
        ({"normalize_obs": True, "normalize_reward": False}, "normalize_obs"),
        ({"dtype": "float64"}, "dtype"),
        ({"env": "NoSuchTask-v0"}, "env"),
    ],
)
def test_what_sb3_has_no_equivalent_for_is_refused_naming_the_key(change: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        to_sb3({"env": "CartPole-v1", **change})
    assert err.value.key == key and "\n" not in str(err.value)


def test_best_yaml_carries_the_handover_and_train_with_sb3_retrains_it(tmp_path: Path) -> None:
    cfg = {
        "target": "engine:ppo",
        "args": {"env": "CartPole-v1", "n_envs": 8, "n_steps": 32, "n_epochs": 2, "n_minibatches": 2},
        "space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True}},
        "budget": {"max": 1024, "report_every": 512},
        "method": "random",
        "trials": 2,
        "out": str(tmp_path / "run"),
    }
    out = sweep(cfg, plots=False).out
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["with"]["sb3"] == to_sb3({**best["args"], **best["params"]})
    res = CliRunner().invoke(main, ["train", str(out / "best.yaml"), "--with", "sb3", "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert "3 " in res.output and "eval_return" in res.output
    res = CliRunner().invoke(main, ["train", str(out / "best.yaml"), "--with", "zoo"])
    assert res.exit_code != 0 and "hands over to: sb3; not to 'zoo'" in res.output
    assert target_info("sb3:ppo").handover == {}  # SB3 results have nothing to hand over to
