"""method: metagrad runs one meta-gradient run per trial and refuses targets without meta-gradients."""

import pytest

from autorl.api import sweep
from autorl.config import parse_sweep
from autorl.errors import ConfigError


def _config(tmp_path, **extra):
    return {
        "target": "agents:actor_critic",
        "args": {"env_id": "CartPole-v1"},
        "space": {"gamma": {"type": "fixed", "value": 0.9}, "gae_lambda": {"type": "fixed", "value": 0.5}},
        "method": {"name": "metagrad", "learn": ["gamma", "gae_lambda"]},
        "budget": {"max": 1024, "report_every": 512},
        "trials": 2,
        "out": str(tmp_path / "mg"),
        **extra,
    }


@pytest.mark.slow  # ~6 s
def test_each_trial_is_a_run_whose_eta_moves(tmp_path):
    result = sweep(_config(tmp_path), plots=False)
    df = result.trials
    for n in df["trial"]:  # eta over env steps, logged and plotted next to each run
        assert (result.out / "checkpoints" / f"trial-{n}" / "eta.png").is_file()
        history = (result.out / "checkpoints" / f"trial-{n}" / "eta_history.csv").read_text()
        assert "eta_gamma" in history.splitlines()[0]
    assert len(df) == 2 and set(df["state"]) == {"COMPLETE"}
    assert df["seed"].nunique() == 2
    assert (df["gamma"] == 0.9).all()  # the starting point, as configured
    assert (df["metric_eta_gamma"] != 0.9).all() and (
        df["metric_eta_gae_lambda"] != 0.5
    ).all()  # learned online
    assert (df["metric_eta_ent_coef"] == df["metric_eta_ent_coef"].iloc[0]).all()  # not opted in: fixed


@pytest.mark.parametrize(
    "change, match",
    [
        ({"target": "synthetic:curve", "args": {}, "space": None}, "needs a target with meta-gradients"),
        ({"method": {"name": "metagrad", "learn": ["temperature"]}}, "learn must list some of"),
    ],
)
def test_bad_metagrad_configs(tmp_path, change, match):
    cfg = {k: v for k, v in {**_config(tmp_path), **change}.items() if v is not None}
    with pytest.raises(ConfigError, match=match):
        parse_sweep(cfg, "mg.yaml")
