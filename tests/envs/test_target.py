"""envdesign:sb3 trains, evaluates on held-out levels, saves/loads, and runs as method: plr."""

import pandas as pd
import pytest

import autorl.envs
import autorl.methods.envdesign
from autorl.api import sweep
from autorl.config import parse_sweep
from autorl.envs.plots import heatmap, plot_level_history
from autorl.envs.target import EnvDesignTarget
from autorl.errors import ConfigError
from autorl.targets import TrialContext

TINY = {
    "n_envs": 2,
    "n_steps": 64,
    "batch_size": 64,
    "n_epochs": 1,
    "n_test_levels": 4,
    "n_train_eval_levels": 2,
    "train_ranges": {"pole_length": [0.1, 1.5], "force_mag": [3.0, 20.0]},
}


def test_plr_run_scores_levels_and_saves(tmp_path):
    t = EnvDesignTarget({**TINY, "level_sampler": "plr"}, TrialContext(seed=0))
    m = t.train(512)
    assert m["budget"] == 512 and {"heldout_return", "heldout_in_range", "gen_gap"} <= set(m)
    assert t.sampler.buffer and t.levels_log[-1]["buffer_size"] == len(t.sampler.buffer)
    assert all(0.1 <= t.sampler.levels[i]["pole_length"] <= 1.5 for i in t.sampler.buffer)
    df = t.last_eval
    assert len(df) == 6 and df["in_range"].sum() == 4
    assert heatmap(df, "pole_length", "force_mag", tmp_path / "h.png", bins=2).is_file()
    assert plot_level_history(t.levels_log, tmp_path / "l.png").is_file()
    t.save(tmp_path / "ck")
    u = EnvDesignTarget({**TINY, "level_sampler": "plr"}, TrialContext(seed=0))
    u.load(tmp_path / "ck")
    assert u.sampler.scores == t.sampler.scores and u.model.num_timesteps == 512
    assert u.evaluate()["heldout_return"] == pytest.approx(m["heldout_return"])


def test_bad_sampler_is_refused():
    with pytest.raises(ConfigError, match="level_sampler must be one of"):
        EnvDesignTarget({"level_sampler": "adr"}, TrialContext(seed=0))


def test_a_level_sampler_registered_in_one_call_is_chosen_by_name(monkeypatch):
    """Level samplers are a registry, not an if-chain: a user's sampler is chosen by ``level_sampler``
    like a built-in one, and a typo names the closest."""
    from autorl.envs import LEVEL_SAMPLERS, register_level_sampler
    from autorl.envs.levels import DefaultSampler
    from autorl.envs.target import make_sampler

    class Heavy(DefaultSampler):
        name = "heavy"

        def sample(self):
            level, context = super().sample()
            return level, {**context, "pole_mass": 0.9}

    monkeypatch.setattr(LEVEL_SAMPLERS, "_entries", dict(LEVEL_SAMPLERS._entries))
    register_level_sampler("heavy", lambda family, ranges, config, seed: Heavy(family, ranges, seed))
    family = autorl.envs.get_family("CartPole")
    sampler = make_sampler(family, family.bounds(), {"level_sampler": "heavy"}, seed=0)
    assert isinstance(sampler, Heavy) and sampler.sample()[1]["pole_mass"] == 0.9
    with pytest.raises(ConfigError, match=r"level_sampler must be one of .*heavy.*did you mean 'heavy'"):
        make_sampler(family, family.bounds(), {"level_sampler": "Heavy"}, seed=0)


def _cfg(tmp_path, method):
    return {
        "target": "envdesign:sb3",
        "args": TINY,
        "space": {"learning_rate": {"type": "fixed", "value": 3.0e-4}},
        "method": method,
        "budget": {"max": 256, "report_every": 256},
        "trials": 2,
        "out": str(tmp_path / "s"),
    }


@pytest.mark.slow  # ~7 s; PLR on the engine stays in the fast suite (tests/engine/test_target.py)
def test_sweep_with_method_plr(tmp_path):
    res = sweep(_cfg(tmp_path, {"name": "plr", "temperature": 0.3}), plots=False)
    df = res.trials
    assert len(df) == 2 and set(df["state"]) == {"COMPLETE"} and df["seed"].nunique() == 2
    trial = tmp_path / "s" / "checkpoints" / "trial-0"  # per-trial level table and plots
    levels = pd.read_csv(trial / "heldout_levels.csv")
    assert len(levels) == 6 and {"pole_length", "force_mag", "return", "in_range"} <= set(levels.columns)
    assert (trial / "level_history.png").is_file() and (trial / "heldout_heatmap.png").is_file()


def test_envdesign_methods_refuse_other_targets(tmp_path):
    cfg = {**_cfg(tmp_path, "dr"), "target": "synthetic:curve", "args": {}, "space": None}
    cfg = {k: v for k, v in cfg.items() if v is not None}
    with pytest.raises(ConfigError, match="needs an environment-design target"):
        parse_sweep(cfg, "dr.yaml")


def test_unknown_arg_is_refused_before_trials(tmp_path):
    cfg = _cfg(tmp_path, "plr")
    cfg["args"] = {**TINY, "plr_temprature": 0.2}
    with pytest.raises(ConfigError, match="plr_temprature not understood by envdesign:sb3"):
        parse_sweep(cfg, "plr.yaml")


def test_curriculum_alp_gmm_run_and_validation_levels(tmp_path):
    """The default curriculum teacher is ALP-GMM; it fits on real episodes, survives save/load, and
    validation levels (for an outer loop) are scored apart from the held-out test levels."""
    from autorl.envs.levels import ALPGMM

    cfg = {**TINY, "level_sampler": "curriculum", "alp_fit_every": 10, "n_val_levels": 4}
    t = EnvDesignTarget(cfg, TrialContext(seed=0))
    m = t.train(1024)
    assert isinstance(t.sampler, ALPGMM) and t.sampler.fits >= 1
    assert "val_return" in m and t.val_levels and t.val_levels != t.test_levels
    assert "alp_max" in t.levels_log[-1] and plot_level_history(t.levels_log, tmp_path / "a.png").is_file()
    t.save(tmp_path / "ck")
    u = EnvDesignTarget(cfg, TrialContext(seed=0))
    u.load(tmp_path / "ck")
    assert u.sampler.fits == t.sampler.fits and len(u.sampler.history_r) == len(t.sampler.history_r)


@pytest.mark.slow  # ~5 s: keeps the default run under 5 minutes
def test_sweep_with_method_curriculum_options(tmp_path):
    res = sweep(_cfg(tmp_path, {"name": "curriculum", "teacher": "widening", "threshold": 50.0}), plots=False)
    assert set(res.trials["state"]) == {"COMPLETE"}
    with pytest.raises(ConfigError, match="teacher must be one of alp_gmm, widening"):
        parse_sweep(_cfg(tmp_path, {"name": "curriculum", "teacher": "spl"}), "c.yaml")
    with pytest.raises(ConfigError, match="alp_random_prob must be in"):
        parse_sweep(_cfg(tmp_path, {"name": "curriculum", "random_prob": 2.0}), "c.yaml")


@pytest.mark.parametrize(
    "algo, family, sampler, ranges",
    [
        ("dqn", "CartPole", "dr", {"pole_length": [0.2, 1.0]}),
        pytest.param(
            "sac",
            "Pendulum",
            "curriculum",
            {"mass": [0.5, 2.0], "length": [0.5, 1.5]},
            marks=pytest.mark.slow,
        ),
    ],
)
def test_off_policy_agents_train_on_sampled_levels(algo, family, sampler, ranges):
    cfg = {
        "algo": algo,
        "family": family,
        "level_sampler": sampler,
        "train_ranges": ranges,
        "n_envs": 1,
        "learning_starts": 32,
        "buffer_size": 1000,
        "batch_size": 32,
        "n_test_levels": 2,
        "n_train_eval_levels": 1,
        "alp_fit_every": 3,
    }
    t = EnvDesignTarget(cfg, TrialContext(seed=0))
    m = t.train(1000 if algo == "sac" else 600)
    assert m["budget"] >= 600 and len(t.sampler.levels) >= 3  # episodes ended, new levels were drawn
    key = next(iter(ranges))
    assert all(ranges[key][0] <= lv[key] <= ranges[key][1] for lv in t.sampler.levels)


def test_plr_needs_an_on_policy_agent():
    with pytest.raises(ConfigError, match="plr scores levels by value losses"):
        EnvDesignTarget({**TINY, "algo": "dqn", "level_sampler": "plr"}, TrialContext(seed=0))
