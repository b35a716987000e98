"""The ``fixed`` method: a sweep that runs one given configuration (a mapping or a file), nothing searched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from autorl.api import sweep
from autorl.cli import main
from autorl.config import load_sweep, parse_sweep
from autorl.errors import ConfigError
from autorl.evaluate import train_best
from autorl.methods import METHODS, MethodContext, MethodKind, method_spec
from autorl.space import SearchSpace
from autorl.yamlio import load_yaml
from tests.conftest import toy

CONFIG = {"x": 0.25, "y": 2, "net": [8, 8]}


@pytest.fixture
def fixed_config(tmp_path: Path):
    """A fixed sweep on a toy target that reports what each trial ran; no space, no trials. An override
    of None removes a key."""

    def make(**overrides):
        cfg = {
            "target": toy("echo"),
            "args": {"y": 1, "z": 3},
            "method": {"name": "fixed", "config": CONFIG},
            "budget": {"max": 1},
            "seed": 0,
            "out": str(tmp_path / "run"),
            **overrides,
        }
        return {k: v for k, v in cfg.items() if v is not None}

    return make


def test_fixed_is_a_registered_baseline() -> None:
    assert "fixed" in METHODS and method_spec("fixed").kind is MethodKind.BASELINE
    assert method_spec("fixed").baseline and not method_spec("random").baseline
    with pytest.raises(ValueError, match="config is required"):
        METHODS.get("fixed")(MethodContext(space=SearchSpace()))


def test_a_fixed_sweep_runs_exactly_the_given_config_once_and_params_win_over_args(fixed_config) -> None:
    r = sweep(fixed_config(), plots=False)
    assert len(r.trials) == 1 and r.trials["state"].tolist() == ["COMPLETE"]
    row = r.trials.iloc[0]
    # what the target received: the config's values, over the args' (y), with the args it does not set (z)
    assert (row["value"], row["metric_got_y"], row["metric_got_z"]) == (0.25, 2.0, 3.0)
    assert (row["x"], row["y"], row["net"]) == (0.25, 2, [8, 8])
    best = load_yaml(r.out / "best.yaml")
    assert best["params"] == CONFIG and best["args"] == {"y": 1, "z": 3}
    retrained = train_best(r.out / "best.yaml", seeds=[7])
    assert retrained["got_y"].tolist() == [2.0] and retrained["value"].tolist() == [0.25]
    recorded = load_yaml(r.out / "config.yaml")
    assert recorded["method"] == {"name": "fixed", "config": CONFIG} and recorded["trials"] == 1
    assert recorded["space"] == {k: {"type": "fixed", "value": v} for k, v in CONFIG.items()}


def test_trials_are_training_seeds_of_the_same_config(fixed_config) -> None:
    r = sweep(fixed_config(trials=4), plots=False)
    assert len(r.trials) == 4 and set(r.trials["x"]) == {0.25} and set(r.trials["metric_got_y"]) == {2.0}
    assert r.trials["metric_got_seed"].nunique() == 4


def test_the_config_may_be_a_file_next_to_the_sweep(fixed_config, tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "base.yaml").write_text("# a baseline\nx: 0.5\ny: 3\n")
    cfg = fixed_config(method={"name": "fixed", "config": "base.yaml"})
    (tmp_path / "conf" / "sweep.yaml").write_text(yaml.safe_dump(cfg))
    s = load_sweep(tmp_path / "conf" / "sweep.yaml")
    assert {k: p.value for k, p in s.space.items()} == {"x": 0.5, "y": 3}
    assert s.method_options == {"config": {"x": 0.5, "y": 3}}
    # what a worker process rebuilds the sweep from holds the values, not a path it might not find
    again = parse_sweep(json.loads(json.dumps(s.portable())), "<config>")
    assert again.space.to_dict() == s.space.to_dict() and again.config.trials == 1


def test_the_sweeps_space_is_not_used_and_no_default_space_is_needed(fixed_config) -> None:
    s = parse_sweep(fixed_config(space={"x": {"type": "float", "low": -1.0, "high": 1.0}}))
    assert list(s.space) == list(CONFIG) and s.space["x"].value == 0.25
    assert parse_sweep(fixed_config(space=None)).space.to_dict() == s.space.to_dict()


def test_rungs_and_a_minimum_budget_are_harmless(fixed_config) -> None:
    s = parse_sweep(fixed_config(budget={"max": 10, "min": 2, "report_every": 2}, trials=3))
    assert s.config.trials == 3 and s.spec.baseline


@pytest.mark.parametrize(
    ("method", "rule"),
    [
        ({"name": "fixed"}, "method.config: is required"),
        ("fixed", "method.config: is required"),
        ({"name": "fixed", "config": {}}, "method.config: must give at least one hyperparameter"),
        ({"name": "fixed", "config": [1, 2]}, "method.config: must be a mapping of hyperparameters"),
        (
            {"name": "fixed", "config": "missing.yaml"},
            "method.config: baseline file 'missing.yaml' not found",
        ),
        (
            {"name": "fixed", "config": "list.yaml"},
            r"method.config: must be a mapping .*list.yaml\), got list",
        ),
        ({"name": "fixed", "config": "empty.yaml"}, r"method.config: must give at least one .*empty.yaml"),
        (
            {"name": "fixed", "config": {"x": {"type": "float", "low": 0.0, "high": 1.0}}},
            "method.config.x: a baseline gives values, not a search space",
        ),
        ({"name": "fixed", "config": {"x": 1}, "points": 3}, "method: unknown option.*points.*valid: config"),
    ],
)
def test_bad_configs_are_one_line_errors_naming_the_key(fixed_config, tmp_path, method, rule) -> None:
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(fixed_config(method=method)))
    with pytest.raises(ConfigError, match=rule) as exc:
        load_sweep(tmp_path / "sweep.yaml")
    assert "\n" not in str(exc.value)


def test_the_target_checks_the_configs_keys_and_values(tmp_path: Path) -> None:
    cfg = {
        "target": "sb3:ppo",
        "args": {"env": "CartPole-v1", "n_envs": 2},
        "budget": {"max": 256},
        "out": str(tmp_path / "run"),
    }
    with pytest.raises(ConfigError, match=r"method.config: n_step not understood by sb3:ppo .*'n_steps'"):
        parse_sweep({**cfg, "method": {"name": "fixed", "config": {"n_step": 64}}})
    with pytest.raises(ConfigError, match=r"args: n_env not understood"):
        parse_sweep(
            {
                **cfg,
                "args": {"env": "CartPole-v1", "n_env": 2},
                "method": {"name": "fixed", "config": {"n_steps": 64}},
            }
        )
    with pytest.raises(ConfigError, match=r"method.config.n_minibatches: must divide n_envs \* n_steps = 64"):
        parse_sweep(
            {
                **cfg,
                "target": "engine:ppo",
                "method": {"name": "fixed", "config": {"n_envs": 2, "n_steps": 32, "n_minibatches": 3}},
            }
        )


@pytest.mark.slow
def test_an_sb3_baseline_overrides_args_in_the_model_it_trains(tmp_path: Path) -> None:
    cfg = {
        "target": "sb3:ppo",
        "args": {"env": "CartPole-v1", "n_envs": 1, "eval_episodes": 1},
        "method": {"name": "fixed", "config": {"n_envs": 2, "n_steps": 16, "batch_size": 32, "n_epochs": 1}},
        "budget": {"max": 64},
        "out": str(tmp_path / "run"),
    }
    r = sweep(cfg, plots=False)
    assert r.trials["state"].tolist() == ["COMPLETE"] and r.trials["budget"].tolist() == [64.0]


def test_list_methods_shows_its_kind() -> None:
    out = CliRunner().invoke(main, ["list", "methods"]).output
    line = next(x for x in out.splitlines() if "│ fixed" in x)
    assert "baseline" in line
