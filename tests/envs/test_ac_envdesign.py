"""envdesign:actor_critic: the meta-gradient agent trains on sampler-chosen levels and resumes exactly."""

import numpy as np
import pytest

import autorl.envs
import autorl.methods.envdesign  # noqa: F401
from autorl.api import sweep
from autorl.config import parse_sweep
from autorl.envs.ac import EnvDesignACTarget
from autorl.envs.levels import ALPGMM, DomainRandomization
from autorl.errors import ConfigError
from autorl.targets import TrialContext

TINY = {
    "num_envs": 2,
    "num_steps": 16,
    "n_test_levels": 4,
    "n_train_eval_levels": 2,
    "eval_episodes": 1,
    "train_ranges": {"pole_length": [0.1, 1.5], "force_mag": [3.0, 20.0]},
}


def test_dr_levels_reach_the_agent_and_checkpoint_resumes_exactly(tmp_path):
    cfg = {**TINY, "level_sampler": "dr", "meta_gamma": True}
    a = EnvDesignACTarget(cfg, TrialContext(seed=0, budget=1024))
    m = a.train(512)
    assert isinstance(a.sampler, DomainRandomization) and len(a.sampler.levels) > 2
    poles = [lv["pole_length"] for lv in a.sampler.levels]
    assert 0.1 <= min(poles) and max(poles) <= 1.5 and np.std(poles) > 0.1  # really randomised
    assert {"heldout_return", "heldout_in_range", "heldout_out_of_range", "eval_return", "eta_gamma"} <= set(
        m
    )
    a.save(tmp_path / "ck")
    b = EnvDesignACTarget(cfg, TrialContext(seed=0, budget=1024))
    b.load(tmp_path / "ck")
    assert b.sampler is b.env.envs.envs[0].source.__self__ and len(b.sampler.levels) == len(a.sampler.levels)
    ma, mb = a.train(256), b.train(256)
    assert ma["heldout_return"] == mb["heldout_return"] and ma["eta_gamma"] == mb["eta_gamma"]
    assert a.sampler.levels == b.sampler.levels  # the restored sampler kept drawing the same levels


def test_alp_gmm_curriculum_learns_from_the_agents_episodes():
    a = EnvDesignACTarget({**TINY, "level_sampler": "curriculum", "alp_fit_every": 5}, TrialContext(seed=1))
    a.train(768)
    assert isinstance(a.sampler, ALPGMM) and len(a.sampler.history_r) > 10 and a.sampler.fits >= 1
    assert a.levels_log and "fits" in a.levels_log[-1]


def test_plr_and_unknown_keys_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="use dr or curriculum here"):
        EnvDesignACTarget({**TINY, "level_sampler": "plr"}, TrialContext(seed=0))
    cfg = {
        "target": "envdesign:actor_critic",
        "args": {**TINY, "n_envs": 4},
        "method": "dr",
        "budget": {"max": 256},
        "out": str(tmp_path / "s"),
    }
    with pytest.raises(ConfigError, match="n_envs not understood by envdesign:actor_critic"):
        parse_sweep(cfg, "ac.yaml")


@pytest.mark.slow  # ~10 s; the SB3 curriculum sweeps run in the fast suite
def test_sweep_with_method_curriculum(tmp_path):
    cfg = {
        "target": "envdesign:actor_critic",
        "args": TINY,
        "space": {"lr": {"type": "fixed", "value": 1.0e-3}},
        "method": {"name": "curriculum", "teacher": "widening"},
        "budget": {"max": 256},
        "trials": 2,
        "out": str(tmp_path / "s"),
    }
    res = sweep(cfg, plots=False)
    assert set(res.trials["state"]) == {"COMPLETE"} and res.trials["value"].notna().all()
