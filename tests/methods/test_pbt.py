"""PBT/PB2: exploit copies state, explored values survive restore, checkpoints bounded, resume works."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from autorl.methods.pbt import PBTOptions, explore, pb2_explore, run_population
from autorl.space.base import SearchSpace
from autorl.targets import TrialContext

SPACE = SearchSpace.from_dict(
    {
        "lr": {"type": "float", "low": 1.0e-3, "high": 1.0, "log": True, "mutable": True},
        "width": {"type": "int", "low": 1, "high": 8},
    }
)


class Toy:
    """Score grows by lr per step (lr near 0.3 best: above it the gain drops); state is a counter."""

    loads: ClassVar[list[tuple[str, float]]] = []

    def __init__(self, config: dict[str, Any], ctx: TrialContext) -> None:
        self.config, self.steps, self.value = dict(config), 0, 0.0
        self.lr = float(config.get("lr", 0.01))
        self.used: list[float] = []

    def train(self, budget: int) -> dict[str, float]:
        for _ in range(budget):
            self.value += self.lr if self.lr < 0.3 else 0.6 - self.lr
            self.used.append(self.lr)
        self.steps += budget
        return {"score": self.value, "budget": float(self.steps)}

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        (path / "s.json").write_text(json.dumps({"steps": self.steps, "value": self.value, "lr": self.lr}))

    def load(self, path: Path) -> None:
        s = json.loads((path / "s.json").read_text())
        self.steps, self.value, self.lr = s["steps"], s["value"], s["lr"]  # the donor's lr (ray#62173)
        Toy.loads.append((str(path), self.lr))

    def reconfigure(self, config: dict[str, Any]) -> None:
        self.lr = float(config["lr"])


def _toy(out: Path, *, budget: int, seed: int, resume: bool = False, **opts: Any) -> Any:
    """PBT over the Toy target: 4 members, interval 10."""
    return run_population(
        Toy,
        SPACE,
        {},
        out,
        budget=budget,
        interval=10,
        metric="score",
        seed=seed,
        opts=PBTOptions(population=4, **opts),
        resume=resume,
    )


def test_explore_changes_only_mutable_within_bounds() -> None:
    rng = np.random.default_rng(0)
    cfg = {"lr": 0.5, "width": 3}
    for _ in range(50):
        new = explore(SPACE, cfg, rng, PBTOptions())
        assert new["width"] == 3 and 1.0e-3 <= new["lr"] <= 1.0
    assert explore(SPACE, cfg, np.random.default_rng(1), PBTOptions(resample_probability=0))["lr"] in (
        0.4,
        0.6,
    )


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="population"):
        PBTOptions(population=1).check()
    with pytest.raises(ValueError, match="quantile"):
        PBTOptions(quantile=0.9).check()


def test_pbt_improves_and_records(tmp_path: Path) -> None:
    members, summary = _toy(tmp_path, budget=100, seed=0)
    assert summary["total_steps"] == 400 and summary["exploits"] > 0
    best = max(m.score for m in members)
    initial = [m.schedule[0]["lr"] for m in members]
    assert best > 100 * max(lr if lr < 0.3 else 0.6 - lr for lr in initial)
    for f in ["pbt_schedule.csv", "pbt_lineage.csv", "best_schedule.yaml", "plots/pbt_schedules.png"]:
        assert (tmp_path / f).is_file(), f
    lineage = (tmp_path / "pbt_lineage.csv").read_text().splitlines()
    assert len(lineage) == summary["exploits"] + 1


def test_explored_values_survive_restore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trained: list[tuple[int, float, float]] = []
    orig = Toy.train

    def spy(self: Toy, budget: int) -> dict[str, float]:
        trained.append((id(self), self.lr, self.config["lr"]))
        return orig(self, budget)

    monkeypatch.setattr(Toy, "train", spy)
    import autorl.methods.pbt as pbt

    explored: list[dict[str, Any]] = []
    initial_schedules: list[dict[str, Any]] = []
    orig_explore, orig_sample = pbt.explore, pbt.sample_config
    monkeypatch.setattr(
        pbt, "explore", lambda *a, **k: explored.append(orig_explore(*a, **k)) or explored[-1]
    )
    monkeypatch.setattr(
        pbt,
        "sample_config",
        lambda *a, **k: initial_schedules.append(orig_sample(*a, **k)) or initial_schedules[-1],
    )
    members, _ = _toy(tmp_path, budget=40, seed=3)
    # every explored value is trained with (Toy.load restores the donor's lr, as ray#62173 did), and
    # nothing but initial or explored values is ever trained with
    trained_lrs = {round(lr, 12) for _, lr, _ in trained}
    assert explored and all(round(e["lr"], 12) in trained_lrs for e in explored)
    initial = {round(s["lr"], 12) for s in initial_schedules}
    assert trained_lrs <= initial | {round(e["lr"], 12) for e in explored}
    for m in members:  # schedules follow the lineage: steps only grow, and end with the current config
        assert m.schedule[-1]["lr"] == m.config["lr"]
        assert [s["step"] for s in m.schedule] == sorted(s["step"] for s in m.schedule)


def test_checkpoints_bounded_and_donors_have_checkpoints(tmp_path: Path) -> None:
    Toy.loads.clear()
    _, summary = _toy(tmp_path, budget=60, seed=1)
    dirs = list((tmp_path / "pbt_checkpoints").iterdir())
    assert len(dirs) == 4  # only the latest per member (ray#4287)
    assert all(Path(p).parent == tmp_path / "pbt_checkpoints" for p, _ in Toy.loads)
    assert summary["max_checkpoint_bytes"] <= 4 * max(f.stat().st_size for d in dirs for f in d.iterdir()) * 2


def test_resume_loses_at_most_one_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full, _ = _toy(tmp_path / "a", budget=50, seed=2)
    calls = {"n": 0}
    orig = Toy.train

    def dying(self: Toy, budget: int) -> dict[str, float]:
        calls["n"] += 1
        if calls["n"] == 4 * 3 + 2:  # killed in the 4th interval
            raise KeyboardInterrupt
        return orig(self, budget)

    monkeypatch.setattr(Toy, "train", dying)
    with pytest.raises(KeyboardInterrupt):
        _toy(tmp_path / "b", budget=50, seed=2)
    state = json.loads((tmp_path / "b" / "pbt_state.json").read_text())
    assert min(m["steps"] for m in state["members"]) == 30
    monkeypatch.setattr(Toy, "train", orig)
    resumed, _ = _toy(tmp_path / "b", budget=50, seed=2, resume=True)
    assert [m.score for m in resumed] == pytest.approx([m.score for m in full])
    assert [m.config for m in resumed] == [m.config for m in full]


def test_pb2_picks_within_bounds_and_runs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    hist = [
        (t, {"lr": lr, "width": 2}, 10 * lr if lr < 0.3 else 6 - 10 * lr)
        for t in (10, 20)
        for lr in (0.01, 0.05, 0.2, 0.9)
    ]
    new = pb2_explore(SPACE, {"lr": 0.01, "width": 2}, hist, rng)
    assert 1.0e-3 <= new["lr"] <= 1.0 and new["width"] == 2
    members, summary = _toy(tmp_path, budget=60, seed=0, pb2=True)
    assert summary["exploits"] > 0 and max(m.score for m in members) > 0


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


def test_init_range_draws_the_first_population_only() -> None:
    from autorl.methods.pbt import sample_config

    space = SearchSpace.from_dict(
        {
            "lr": {
                "type": "float",
                "low": 1e-5,
                "high": 1e-1,
                "log": True,
                "mutable": True,
                "init": [1e-5, 2e-5],
            }
        }
    )
    rng = np.random.default_rng(0)
    first = [sample_config(space, rng)["lr"] for _ in range(200)]
    assert 1e-5 <= min(first) and max(first) <= 2e-5
    opts = PBTOptions(resample_probability=1.0)
    later = [explore(space, {"lr": 1.5e-5}, rng, opts)["lr"] for _ in range(200)]
    assert max(later) > 1e-3  # resampling reaches the whole range, not just init
    assert space["lr"].to_dict()["init"] == [1e-5, 2e-5]  # round-trips to YAML


@pytest.mark.parametrize(
    "init, rule", [([1e-6, 1e-5], "low <= a <= b <= high"), ([2e-5, 1e-5], "low <= a"), ("x", "init must be")]
)
def test_init_range_is_validated(init: Any, rule: str) -> None:
    from autorl.errors import ConfigError

    with pytest.raises(ConfigError, match=rule) as exc:
        SearchSpace.from_dict({"lr": {"type": "float", "low": 1e-5, "high": 1e-1, "init": init}})
    assert exc.value.key == "lr"


def test_fixed_baseline_never_exploits(tmp_path: Path) -> None:
    members, s = _toy(tmp_path, budget=40, seed=0, exploit=False)
    assert s["exploits"] == 0 and s["exploit_seconds"] == 0
    assert all(len(m.schedule) == 1 and m.config == {k: m.schedule[0][k] for k in m.config} for m in members)
    assert all(len(m.curve) == 4 for m in members)  # evaluated at every interval like PBT


def _pbt_config(make_config: Any, tmp_path: Path, **over: Any) -> dict[str, Any]:
    from tests.conftest import toy

    return make_config(
        target=toy("Counter"),
        space={"x": {"type": "float", "low": 0.0, "high": 1.0, "mutable": True, "init": [0.0, 0.1]}},
        metric="value",
        direction="maximize",
        budget={"max": 40, "report_every": 10},
        method={"name": "pbt", "population": 4},
        out=str(tmp_path / "pbt_run"),
        **over,
    )


def test_pbt_sweep_end_to_end_and_replay(make_config: Any, tmp_path: Path) -> None:
    """`autorl sweep` with method pbt writes the usual tables plus schedules; `autorl replay` retrains
    the best schedule from scratch and gets the value the schedule implies."""
    import pandas as pd
    import yaml
    from click.testing import CliRunner

    from autorl.cli import main

    path = tmp_path / "pbt.yaml"
    path.write_text(yaml.safe_dump(_pbt_config(make_config, tmp_path)))
    res = CliRunner().invoke(main, ["sweep", str(path), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "autorl replay" in res.output
    out = tmp_path / "pbt_run"
    df = pd.read_csv(out / "trials.csv")
    assert len(df) == 4 and (df["state"] == "COMPLETE").all() and (df["wall_s"] >= 0).all()
    assert (df["budget"] == 40).all() and (df["metric_population_steps"] == 160).all()
    files = ("pbt_schedule.csv", "pbt_lineage.csv", "best_schedule.yaml", "pbt_summary.json", "best.yaml")
    for f in (*files, "plots/pbt_schedules.png"):
        assert (out / f).is_file(), f
    lineage = pd.read_csv(out / "pbt_lineage.csv")
    assert len(lineage) == 3  # one exploit per interval boundary (quantile 0.25 of 4 = 1 member)
    best = yaml.safe_load((out / "best_schedule.yaml").read_text())
    # exploits move x out of init: the best schedule ends above the 0.1 the fixed population is stuck at
    assert best["schedule"][-1]["x"] > 0.1 and best["score"] == pytest.approx(df["value"].max())
    # the value a schedule implies: sum over segments of x * segment length (the Counter's contract)
    steps = [s["step"] for s in best["schedule"]] + [40]
    expected = sum(s["x"] * (b - a) for s, a, b in zip(best["schedule"], steps, steps[1:], strict=False))
    res = CliRunner().invoke(main, ["replay", str(out), "--seeds", "7"])
    assert res.exit_code == 0, res.output
    replay = pd.read_csv(out / "replay.csv")
    assert replay["seed"].tolist() == [7] and replay["value"].iloc[0] == pytest.approx(expected)
    # the schedule follows the lineage (donors' past included), so a replay reproduces the best score
    assert expected == pytest.approx(best["score"])
    res = CliRunner().invoke(main, ["replay", str(tmp_path)])
    assert res.exit_code == 2 and "best_schedule.yaml is missing" in res.output


def test_pbt_budget_total_is_split_over_members(make_config: Any, tmp_path: Path) -> None:
    from autorl.api import sweep

    cfg = _pbt_config(make_config, tmp_path)
    cfg["budget"] = {"max": 40, "report_every": 10, "total": 80}
    df = sweep(cfg, plots=False).trials
    assert (df["budget"] == 20).all() and (df["metric_population_steps"] == 80).all()
    cfg["budget"] = {"max": 40, "report_every": 10, "total": 240}  # the population spends all of total
    cfg["out"] = str(tmp_path / "pbt_run2")
    df = sweep(cfg, plots=False).trials
    assert (df["budget"] == 60).all() and (df["metric_population_steps"] == 240).all()
    from autorl.methods.pbt import replay_best

    replay = replay_best(tmp_path / "pbt_run2", seeds=[1])  # as long as the member trained, not max
    assert replay["budget"].tolist() == [60]


def test_init_refused_for_static_methods(make_config: Any, tmp_path: Path) -> None:
    from autorl.config import parse_sweep
    from autorl.errors import ConfigError
    from autorl.methods.base import check_method

    cfg = _pbt_config(
        make_config,
        tmp_path,
    )
    cfg["method"] = "tpe"
    with pytest.raises(ConfigError, match="only used by population methods") as exc:
        check_method(parse_sweep(cfg))
    assert exc.value.key == "space.x.init"


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
        budget={"max": 1000, "report_every": 500},
        method={"name": "pbt", "population": 2},
    )
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


@pytest.mark.parametrize("name", sorted(MODEL_ARGS))
def test_research_models_run_pbt_with_their_default_space(name: str, tmp_path: Path) -> None:
    """Exploit (load a donor, reconfigure the mutable keys) works for every built-in model target."""
    from autorl.targets import TARGETS, target_info

    info = target_info(name)
    space = SearchSpace.from_yaml(Path(__file__).resolve().parents[2] / "search_spaces" / str(info.space))
    assert any(p.mutable for p in space.values())
    metric = info.metric if isinstance(info.metric, str) else info.metric[0]
    members, s = run_population(
        TARGETS.get(name),
        space,
        MODEL_ARGS[name],
        tmp_path,
        budget=4,
        interval=2,
        metric=metric,
        maximize=info.direction == "maximize",
        seed=0,
        opts=PBTOptions(population=2),
    )
    assert s["exploits"] == 1 and all(m.steps == 4 and np.isfinite(m.score) for m in members)


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
