"""Targets change hyperparameters mid-run for population methods: SB3's reconfigure after a copy, the
immutable keys each target declares, and every research model through a real PBT sweep."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from autorl.config import SPACES_DIR
from autorl.space import SearchSpace
from autorl.targets import TrialContext


def test_sb3_ppo_reconfigure_and_exploit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("stable_baselines3")
    from autorl.targets import TARGETS

    cls = TARGETS.get("sb3:ppo")
    args = {
        "env": "CartPole-v1",
        "n_envs": 1,
        "n_steps": 64,
        "batch_size": 32,
        "n_epochs": 1,
        "eval_episodes": 1,
    }
    donor = cls({**args, "learning_rate": 1.0e-3, "gamma": 0.99}, TrialContext(seed=0, budget=256))
    donor.train(64)
    donor.save(tmp_path / "d")
    m = cls({**args, "learning_rate": 1.0e-3, "gamma": 0.99}, TrialContext(seed=1, budget=256))
    m.load(tmp_path / "d")
    m.reconfigure({"learning_rate": 3.0e-4, "gamma": 0.95, "clip_range": 0.1})
    seen: list[float] = []
    orig = m.model.train

    def spy() -> None:
        seen.append(m.model.policy.optimizer.param_groups[0]["lr"])
        orig()
        seen.append(m.model.policy.optimizer.param_groups[0]["lr"])

    monkeypatch.setattr(m.model, "train", spy)
    res = m.train(64)
    assert seen[-1] == pytest.approx(3.0e-4)
    assert m.model.gamma == 0.95 and m.model.rollout_buffer.gamma == 0.95
    assert m.model.clip_range(1.0) == pytest.approx(0.1)
    assert res["budget"] == 128  # the donor's counter was copied


OFF_POLICY = {"learning_starts": 32, "buffer_size": 1000, "batch_size": 32}


@pytest.mark.parametrize(
    "algo, env, extra, change",
    [
        ("a2c", "CartPole-v1", {"n_steps": 8}, {"n_steps": 16, "ent_coef": 0.01}),
        ("dqn", "CartPole-v1", OFF_POLICY, {"exploration_final_eps": 0.3, "train_freq": 2}),
        ("sac", "Pendulum-v1", {**OFF_POLICY, "ent_coef": 0.1}, {"ent_coef": 0.02, "tau": 0.01}),
        ("td3", "Pendulum-v1", OFF_POLICY, {"tau": 0.01, "target_policy_noise": 0.1}),
    ],
)
def test_sb3_off_policy_and_a2c_exploit_then_train_with_new_values(
    tmp_path: Path, algo: str, env: str, extra: dict[str, Any], change: dict[str, Any]
) -> None:
    """Load a donor, reconfigure, train: every optimiser (SAC/TD3: actor and critic) and the changed
    attributes hold the new values while training, and the donor's step counter came along."""
    pytest.importorskip("stable_baselines3")
    from autorl.targets import TARGETS
    from autorl.targets.sb3 import _optimizers

    cls = TARGETS.get(f"sb3:{algo}")
    args = {"env": env, "eval_episodes": 1, "learning_rate": 1.0e-3, **extra}
    donor = cls(args, TrialContext(seed=0, budget=256))
    donor.train(64)
    donor.save(tmp_path / "d")
    m = cls(args, TrialContext(seed=1, budget=256))
    m.load(tmp_path / "d")
    m.reconfigure({"learning_rate": 3.0e-4, **change})
    res = m.train(64)
    lrs = [g["lr"] for o in _optimizers(m.model) for g in o.param_groups]
    assert lrs == pytest.approx([3.0e-4] * len(lrs)) and len(_optimizers(m.model)) >= (
        2 if algo in ("sac", "td3") else 1
    )
    if algo == "dqn":
        assert m.model.exploration_rate == pytest.approx(0.3) and m.model.train_freq.frequency == 2
    if algo == "sac":
        assert float(m.model.ent_coef_tensor) == pytest.approx(0.02)
    if algo == "a2c":
        assert m.model.rollout_buffer.buffer_size == 16
    for key, value in change.items():
        if key not in ("train_freq", "n_steps"):
            assert getattr(m.model, key) == pytest.approx(value)
    assert res["budget"] >= 128  # the donor's counter was copied
    if algo != "a2c":
        with pytest.raises(ValueError, match="cannot change 'buffer_size' during training"):
            m.reconfigure({"buffer_size": 500})


def test_mutable_net_arch_is_refused_before_a_pbt_sweep(make_config: Any, tmp_path: Path) -> None:
    from autorl.config import parse_sweep
    from autorl.errors import ConfigError

    cfg = make_config(
        target="sb3:ppo",
        args={"env": "CartPole-v1"},
        space={
            "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "mutable": True},
            "net_arch": {"type": "categorical", "choices": ["tiny", "small"], "mutable": True},
        },
        metric="eval_return",
        direction="maximize",
        budget={"max": 4096, "report_every": 2048},  # SB3's PPO rollout: 2,048 steps
        method={"name": "pbt", "population": 2},
    )
    del cfg["trials"]  # a population's size is its method option
    with pytest.raises(ConfigError, match="cannot change 'net_arch' during training") as exc:
        parse_sweep(cfg, "pbt.yaml")
    assert exc.value.key == "space.net_arch.mutable" and exc.value.file == "pbt.yaml"
    cfg["space"]["net_arch"]["mutable"] = False
    parse_sweep(cfg, "pbt.yaml")  # sampled once per member: fine


MODEL_ARGS = {
    "models:autoencoder": {"width": 32, "channels": 8, "batch_size": 32},
    "models:dat": {"dim": 16, "batch_size": 32, "deform_stages": "2,3"},
    "models:data2vec": {"dim": 16, "depth": 2, "heads": 2, "batch_size": 32, "total_steps": 100},
    "models:hashgrid": {"image_size": 16, "n_levels": 4, "log2_table_size": 6, "n_min": 2, "n_max": 16},
    "models:relicv2": {"batch_size": 32, "width": 8},
    "models:stylex": {"channels": 8, "style_dim": 16, "attfind_images": 16, "top_k": 3},
}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=[] if n == "models:autoencoder" else pytest.mark.slow)
        for n in sorted(MODEL_ARGS)
    ],
)
def test_research_models_run_pbt_with_their_default_space(name: str, tmp_path: Path) -> None:
    """Exploit (load a donor, reconfigure the mutable keys) works for every built-in model target."""
    from autorl.api import sweep
    from autorl.targets import target_info

    info = target_info(name)
    space = SearchSpace.from_yaml(SPACES_DIR / str(info.space))
    assert any(p.mutable for p in space.values())
    cfg = {
        "target": name,
        "args": MODEL_ARGS[name],
        "budget": {"max": 4, "report_every": 2},
        "method": {"name": "pbt", "population": 2},
        "out": str(tmp_path / "pbt"),
    }
    result = sweep(cfg, plots=False)
    summary = json.loads((result.out / "population_summary.json").read_text())
    assert summary["exploits"] == 1 and (result.trials["budget"] == 4).all()
    assert set(result.trials["state"]) == {"COMPLETE"} and result.trials["value"].notna().all()


@pytest.mark.parametrize("name", sorted(MODEL_ARGS))
def test_research_models_declare_what_cannot_change(name: str, make_config: Any) -> None:
    """Each model's default space marks only changeable keys mutable (a pbt sweep of it validates), and
    reconfigure refuses a new value for an immutable key instead of ignoring it."""
    from autorl.config import parse_sweep
    from autorl.errors import ConfigError
    from autorl.targets import TARGETS, TrialContext, target_info

    cls = TARGETS.get(name)
    info = target_info(name)
    assert cls.immutable and "learning_rate" not in cls.immutable
    cfg = make_config(
        target=name,
        args=MODEL_ARGS[name],
        space=str(info.space),
        metric=info.metric,
        direction=info.direction.value if hasattr(info.direction, "value") else info.direction,
        budget={"max": 4, "report_every": 2},
        method={"name": "pbt", "population": 2},
    )
    del cfg["trials"]
    parse_sweep(cfg, "pbt.yaml")  # would raise for a mutable key in the model's immutable set
    target = cls(MODEL_ARGS[name], TrialContext(seed=0, budget=4))
    key = next(
        k
        for k in sorted(cls.immutable)
        if isinstance(getattr(target.cfg, k), int) and not isinstance(getattr(target.cfg, k), bool)
    )
    with pytest.raises(ConfigError, match="can change mid-run"):
        target.reconfigure({key: getattr(target.cfg, key) + 1})
    target.reconfigure({key: getattr(target.cfg, key), "learning_rate": 1e-3})  # unchanged: a no-op
    assert target.cfg.learning_rate == pytest.approx(1e-3)
