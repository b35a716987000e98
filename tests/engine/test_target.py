"""engine:ppo and envdesign:engine driven by every kind of method: trials, batches of trials, PBT as
one computation, environment design with per-copy levels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from autorl.api import sweep
from autorl.config import parse_sweep
from autorl.errors import ConfigError

SMALL = {
    "env": "CartPole-v1",
    "n_envs": 8,
    "n_steps": 16,
    "n_epochs": 2,
    "n_minibatches": 2,
    "eval_episodes": 2,
}


def _cfg(tmp_path: Path, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "target": "engine:ppo",
        "args": dict(SMALL),
        "space": {
            "learning_rate": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True, "mutable": True}
        },
        "budget": {"max": 1024, "report_every": 256},
        "method": "random",
        "trials": 4,
        "out": str(tmp_path / "run"),
    }
    cfg.update(over)
    return cfg


def test_each_trial_trains_one_agent_and_reports_every_interval(tmp_path: Path) -> None:
    result = sweep(_cfg(tmp_path), plots=False)
    df = result.trials
    assert len(df) == 4 and set(df["state"]) == {"COMPLETE"} and (df["budget"] == 1024).all()
    curves = pd.read_csv(result.out / "curves.csv")
    assert curves.groupby("trial")["step"].apply(list).tolist() == [[256, 512, 768, 1024]] * 4


def test_a_batch_trains_its_trials_together_and_refills_pruned_slots(tmp_path: Path) -> None:
    space = {
        "learning_rate": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
        "n_epochs": {"type": "categorical", "choices": [1, 2]},  # two shapes: two groups in one batch
    }
    cfg = _cfg(
        tmp_path,
        space=space,
        trials=10,
        batch=4,
        method={"name": "asha", "reduction_factor": 2},
        budget={"max": 1024, "min": 256, "report_every": 256},
    )
    result = sweep(cfg, plots=False)
    df = result.trials
    assert len(df) == 10 and (df["state"] == "PRUNED").any() and (df["state"] == "COMPLETE").any()
    assert df["log"].nunique() == 1  # all ten went through the one worker's batch, refilled as slots freed
    assert (df.loc[df["state"] == "PRUNED", "budget"] < 1024).all()
    assert set(df["n_epochs"]) == {1, 2}
    curves = pd.read_csv(result.out / "curves.csv")
    assert curves["trial"].nunique() == 10  # every trial its own curve


def test_a_batch_evaluates_a_trial_only_where_its_value_is_read(tmp_path: Path) -> None:
    """Random search reads only a trial's last value: a batch evaluates its members there alone (and
    at multiples of budget.evaluate_every); a pruner reads every report, so every report is evaluated."""

    def steps(result: Any) -> list[list[int]]:
        curves = pd.read_csv(result.out / "curves.csv")
        return curves.groupby("trial")["step"].apply(list).tolist()

    result = sweep(_cfg(tmp_path, batch=4), plots=False)
    assert steps(result) == [[1024]] * 4  # 4 reports, 1 evaluation
    assert (result.trials["state"] == "COMPLETE").all() and result.trials["value"].notna().all()

    every = _cfg(tmp_path, batch=4, budget={"max": 1024, "report_every": 256, "evaluate_every": 512})
    more = sweep({**every, "out": str(tmp_path / "every")}, plots=False)
    assert steps(more) == [[512, 1024]] * 4
    # the evaluations left out move the evaluation streams as evaluations would: same final values
    assert more.trials["value"].tolist() == result.trials["value"].tolist()

    asha = {"name": "asha", "reduction_factor": 2}
    rungs = {"max": 1024, "min": 256, "report_every": 256}
    asha_cfg = _cfg(tmp_path, batch=4, method=asha, budget=rungs, out=str(tmp_path / "asha"))
    result = sweep(asha_cfg, plots=False)
    curves = steps(result)
    assert all(s == [256, 512, 768, 1024][: len(s)] for s in curves) and max(map(len, curves)) == 4


def test_a_batch_evaluates_by_each_trials_own_piece(tmp_path: Path) -> None:
    """Rollouts of 128 and 256 steps, reports every 128, max 512: the 128-step trial's report at 384
    cannot end it (384 + 128 = 512), so only its last is evaluated, though a 256-step piece could."""
    space = {"n_steps": {"type": "categorical", "choices": [16, 32]}}
    cfg = _cfg(tmp_path, space=space, method={"name": "grid", "points": 1}, trials=2, batch=2)
    result = sweep({**cfg, "budget": {"max": 512, "report_every": 128}}, plots=False)
    curves = pd.read_csv(result.out / "curves.csv").groupby("trial")["step"].apply(list)
    steps = dict(zip(result.trials["n_steps"], curves.loc[result.trials["trial"]], strict=True))
    assert steps == {16: [512], 32: [512]}


def test_an_engine_batch_evaluates_the_members_asked_and_any_that_failed() -> None:
    from autorl.engine.target import EngineBatch

    configs = [{**SMALL, "learning_rate": lr} for lr in (1e-3, 1e-3, 1e30)]
    batch = EngineBatch(configs, [0, 1, 2], budget=256)
    out = batch.train(128, evaluate=[1])
    assert "eval_return" not in out[0] and np.isfinite(out[1]["eval_return"])
    assert np.isnan(out[2]["eval_return"])  # diverged: nan, though not asked
    assert all(np.isfinite(out[m]["train_return"]) or out[m]["episodes"] == 0 for m in (0, 1))
    again = batch.train(128)  # default: every member that trained
    assert all("eval_return" in again[m] for m in (0, 1, 2))


def test_a_batched_trial_stops_at_its_budget_and_a_batch_at_the_sweeps_total(tmp_path: Path) -> None:
    # rollouts of 8 x 16 = 128 steps; reports every 300: the last interval is what is left, not 300
    cfg = _cfg(tmp_path, trials=8, batch=4, budget={"max": 1000, "report_every": 300, "total": 4000})
    df = sweep(cfg, plots=False).trials
    assert (df["budget"] <= 1000 + 128).all()  # at most the rollout that crosses max
    # budget.total fits 4 trials of 1000: the batch never starts a fifth that could only end past it
    assert len(df) == 4 and set(df["state"]) == {"COMPLETE"}


def test_an_exact_budget_trains_every_shape_to_the_same_steps(tmp_path: Path) -> None:
    """Rollouts of 8 x 16 = 128 and 8 x 32 = 256 steps: asked for 300, they end at 384 and 512; with
    budget.exact both train 512."""
    space = {"n_steps": {"type": "categorical", "choices": [16, 32]}}
    grid = {"name": "grid", "points": 1}
    for exact, steps in ((False, {384, 512}), (True, {512})):
        cfg = _cfg(tmp_path, space=space, method=grid, trials=2, batch=2, out=str(tmp_path / f"run-{exact}"))
        df = sweep({**cfg, "budget": {"max": 300, "exact": exact}}, plots=False).trials
        assert set(df["state"]) == {"COMPLETE"} and set(df["budget"]) == steps, df[["n_steps", "budget"]]


def test_batches_on_two_workers(tmp_path: Path) -> None:
    df = sweep(_cfg(tmp_path, trials=6, batch=3, workers=2), plots=False).trials
    assert len(df) == 6 and set(df["state"]) == {"COMPLETE"} and df["log"].nunique() == 2


def test_a_diverging_member_fails_its_trial_only(tmp_path: Path) -> None:
    space = {"learning_rate": {"type": "categorical", "choices": [1e-3, 1e30]}}
    cfg = _cfg(tmp_path, space=space, method={"name": "grid", "points": 1}, trials=2, batch=2)
    df = sweep(cfg, plots=False).trials.set_index("learning_rate")
    assert df.loc[1e-3, "state"] == "COMPLETE"
    assert df.loc[1e30, "state"] == "FAIL" and "diverged" in df.loc[1e30, "error"]


def test_pbt_on_the_engine_copies_by_index_and_records_each_member(tmp_path: Path) -> None:
    space = {
        "learning_rate": {
            "type": "float",
            "low": 1e-5,
            "high": 1e-2,
            "log": True,
            "mutable": True,
            "init": [1e-5, 3e-5],
        }
    }
    cfg = _cfg(
        tmp_path,
        space=space,
        budget={"max": 2048, "report_every": 256},
        method={"name": "pbt", "population": 4},
    )
    del cfg["trials"]
    result = sweep(cfg, plots=False)
    df = result.trials
    assert len(df) == 4 and set(df["state"]) == {"COMPLETE"} and sorted(df["member"]) == [0, 1, 2, 3]
    summary = json.loads((result.out / "population_summary.json").read_text())
    assert summary["exploits"] == 7 and summary["intervals"] == 8
    ckpts = list((result.out / "checkpoints").glob("engine-*/*/engine.pt"))
    assert len(ckpts) == 1  # one population checkpoint (one shard, workers: 1), no file per copy
    state = torch.load(ckpts[0], weights_only=True)  # tensors and plain data
    assert len(state["groups"]) == 1 and state["groups"][0]["members"] == [0, 1, 2, 3]
    assert df["learning_rate"].max() > 3e-5  # explore moved some member out of the poor start


def test_members_trained_together_each_take_the_whole_jobs_wall_time(tmp_path: Path) -> None:
    """An engine population's interval is one job: each member's seconds are the job's, not a 1/4 share
    (the PBT table showed wall_s 1.57 for members that trained 100,000 steps)."""
    import time

    from autorl.executors.population import EngineJob, engine_step
    from autorl.executors.trial import SweepRef

    cfg = _cfg(tmp_path, budget={"max": 2048, "report_every": 512}, method={"name": "pbt", "population": 4})
    del cfg["trials"]
    ref = SweepRef.of(parse_sweep(cfg))
    configs = {i: {"learning_rate": 1e-3} for i in range(4)}
    job = EngineJob(
        ref,
        configs,
        None,
        "checkpoints/engine/a",
        {i: 512 for i in range(4)},
        steps=dict.fromkeys(range(4), 0),
    )
    start = time.perf_counter()
    outcome = engine_step(job, link=None)  # type: ignore[arg-type]  # an interval asks nothing
    took = time.perf_counter() - start
    results = outcome.results
    assert set(outcome.seconds) == {"train", "evaluate", "checkpoint", "other"}
    assert outcome.seconds["train"] > 0 and outcome.seconds["evaluate"] > 0
    assert sorted(results) == [0, 1, 2, 3] and len({r.seconds for r in results.values()}) == 1
    assert results[0].seconds >= 0.5 * took  # the whole job (but saving its checkpoint), not took / 4


def test_a_population_on_the_engine_shares_its_shapes(tmp_path: Path) -> None:
    space = {
        "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "mutable": True},
        "n_epochs": {"type": "categorical", "choices": [1, 2]},
    }
    cfg = _cfg(tmp_path, space=space, method={"name": "pbt", "population": 4})
    del cfg["trials"]
    with pytest.raises(ConfigError, match="every member shares 'n_epochs'") as err:
        parse_sweep(cfg, "pbt.yaml")
    assert err.value.key == "space.n_epochs"


@pytest.mark.parametrize(
    "change, key, rule",
    [
        (
            {
                "target": "sb3:ppo",
                "args": {"env": "CartPole-v1"},
                "space": "sb3/ppo.yaml",
                "batch": 4,
                "budget": {"max": 4096, "report_every": 4096},
            },
            "batch",
            "trains one configuration at a time",
        ),
        ({"args": {**SMALL, "n_epoch": 3}}, "args.n_epoch", "did you mean 'n_epochs'"),
        ({"args": {**SMALL, "env": "Pong-v5"}}, "args.env", "unknown batched env"),
        ({"args": {**SMALL, "objective": "clipped"}}, "args.objective", "Did you mean 'clip'"),
    ],
)
def test_bad_engine_configs_are_refused(tmp_path: Path, change: dict[str, Any], key: str, rule: str) -> None:
    with pytest.raises(ConfigError, match=rule) as err:
        parse_sweep(_cfg(tmp_path, **change), "s.yaml")
    assert err.value.key == key


@pytest.mark.parametrize(
    "method",
    ["dr", "plr", pytest.param("curriculum", marks=pytest.mark.slow)],  # curriculum: ~5 s
)
def test_environment_design_on_the_engine_gives_each_copy_its_level(
    tmp_path: Path, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = {**SMALL, "family": "CartPole", "train_ranges": {"pole_length": [0.2, 1.0]}, "n_test_levels": 4}
    cfg = _cfg(
        tmp_path, target="envdesign:engine", args=args, method=method, trials=2, metric="heldout_return"
    )
    result = sweep(cfg, plots=False)
    df = result.trials
    assert set(df["state"]) == {"COMPLETE"} and df["value"].notna().all()
    assert {"metric_heldout_in_range", "metric_heldout_out_of_range", "metric_gen_gap"} <= set(df.columns)
    # the best config retrains as its trials trained: with the method's level sampler
    best = yaml.safe_load((result.out / "best.yaml").read_text())
    assert best["args"]["level_sampler"] == method
    import autorl.evaluate

    seen: list[dict[str, Any]] = []

    def spy(target: str, args: dict[str, Any], *rest: Any, **kw: Any) -> pd.DataFrame:
        seen.append(args)
        return pd.DataFrame([{"seed": 0, "heldout_return": 1.0}])

    monkeypatch.setattr(autorl.evaluate, "evaluate_config", spy)
    autorl.evaluate.reevaluate(result.out, top=1, n_seeds=1)
    assert seen and seen[0]["level_sampler"] == method


def test_environment_designs_held_out_values_do_not_depend_on_the_evaluations_left_out(
    tmp_path: Path,
) -> None:
    args = {**SMALL, "family": "CartPole", "train_ranges": {"pole_length": [0.2, 1.0]}, "n_test_levels": 3}
    values = []
    for every in (None, 256):
        budget = {"max": 768, "report_every": 256, **({"evaluate_every": every} if every else {})}
        cfg = _cfg(tmp_path, target="envdesign:engine", args=args, trials=2, batch=2, budget=budget)
        result = sweep(
            {**cfg, "metric": "heldout_return", "out": str(tmp_path / f"run-{every}")}, plots=False
        )
        values.append(result.trials["value"].tolist())
    assert values[0] == values[1] and all(np.isfinite(values[0]))


def test_levels_reach_the_copies_and_plr_scores_them() -> None:
    from autorl.envs.engine import EnvDesignEngineTarget
    from autorl.targets import TrialContext

    cfg = {
        **SMALL,
        "family": "CartPole",
        "train_ranges": {"pole_length": [0.2, 1.0]},
        "level_sampler": "plr",
        "n_test_levels": 2,
    }
    target = EnvDesignEngineTarget(cfg, TrialContext(seed=0, budget=512))
    lengths = target.engine.groups[0].pop._m.level["pole_length"].view(-1)
    assert len(set(lengths.tolist())) == SMALL["n_envs"] and lengths.min() >= 0.2 and lengths.max() <= 1.0
    target.train(512)
    sampler = target.levels().sampler
    assert sampler.scores and all(np.isfinite(v) for v in sampler.scores.values())  # scored from rollouts


def test_a_trained_member_runs_on_a_gymnasium_env_in_a_few_lines(tmp_path: Path) -> None:
    import gymnasium as gym

    from autorl.engine.ppo import load_policy
    from autorl.engine.target import EngineTarget
    from autorl.targets import TrialContext

    agent = EngineTarget({**SMALL, "learning_rate": 1e-3}, TrialContext(seed=0, budget=2048))
    agent.train(2048)
    torch.save(agent.member_state(), tmp_path / "agent.pt")
    policy = load_policy(torch.load(tmp_path / "agent.pt", weights_only=True))
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    steps, done = 0, False
    while not done:
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        steps, done = steps + 1, terminated or truncated
    assert steps > 0
    agent.save(tmp_path / "ckpt")
    again = EngineTarget({**SMALL, "learning_rate": 1e-3}, TrialContext(seed=1, budget=2048))
    again.load(tmp_path / "ckpt")
    assert again.member_state()["steps"] == agent.member_state()["steps"]


def test_test_seeds_of_an_engine_incumbent_train_as_one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """autorl train / reeval / compare retrain an engine config on its test seeds together."""
    from autorl.config import Budget
    from autorl.engine.target import EngineBatch, EngineTarget
    from autorl.evaluate import evaluate_config

    built: list[list[int]] = []

    class Spy(EngineBatch):
        def __init__(self, configs: Any, seeds: Any, budget: int, out: Path | None = None) -> None:
            built.append(list(seeds))
            super().__init__(configs, seeds, budget, out)

    monkeypatch.setattr(EngineTarget, "batch", Spy)
    df = evaluate_config(
        "engine:ppo", SMALL, {"learning_rate": 1e-3}, [7, 8, 9], Budget(max=512), "eval_return"
    )
    assert built == [[7, 8, 9]]  # one computation for the three seeds
    assert df["seed"].tolist() == [7, 8, 9] and (df["budget"] >= 512).all()
    assert df["eval_return"].notna().all()


TRAINING = ("policy_loss", "value_loss", "entropy_loss", "approx_kl", "clip_fraction")


class _Lookahead:
    """A HOOF-like test method: each interval it forks every member twice, once with its own learning
    rate and once with three times it, keeps what the forks reported and what the members reported after
    their next interval (in its state), and changes nothing."""

    def __init__(self, space: Any) -> None:
        self.space = space
        self.seen: dict[str, list[Any]] = {"forks": [], "members": []}

    def initial(self, size: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        return [{"learning_rate": 1e-3 * (i + 1)} for i in range(size)]

    def decide(self, members: Any, history: Any, rng: np.random.Generator) -> list[Any]:
        from autorl.methods import Branch

        if not members[0].branches:
            self.seen["members"].append([dict(m.metrics) for m in members])
            return [
                Branch(
                    m.index,
                    (
                        {"learning_rate": m.config["learning_rate"]},
                        {"learning_rate": 3 * m.config["learning_rate"]},
                    ),
                )
                for m in members
            ]
        self.seen["forks"].append([[dict(b) for b in m.branches] for m in members])
        return []

    def state_dict(self) -> dict[str, Any]:
        return self.seen

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seen = state or {"forks": [], "members": []}


def build_lookahead(ctx: Any, worker: int = 0, *, population: int = 2) -> Any:
    from autorl.methods import PopulationPlan

    return PopulationPlan(population, ctx.report_every, _Lookahead(ctx.space))


def test_a_branch_forks_members_that_update_on_their_own_next_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A method may ask for forks of a member (a declared Branch): each fork trains one rollout from all
    that the member is, its envs and random stream too, so a fork with the member's own configuration
    reports what the member reports after its next interval (to the engine's tolerance for a member
    computed in another group): the forks updated on the member's next batch. A target whose members
    cannot fork is refused for such a method."""
    from autorl.methods import METHODS, MethodKind, register_method

    monkeypatch.setattr(METHODS, "_entries", dict(METHODS._entries))
    register_method("test_lookahead", "forks every member each interval", MethodKind.POPULATION, forks=True)(
        build_lookahead
    )
    lr = {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True, "mutable": True}}
    cfg = _cfg(tmp_path, space=lr, budget={"max": 512, "report_every": 128}, method="test_lookahead")
    del cfg["trials"]
    result = sweep(cfg, plots=False)
    state = json.loads((result.out / "population.json").read_text())
    seen, final = state["method_state"], [m["metrics"] for m in state["members"]]
    assert len(seen["forks"]) == len(seen["members"]) == 3  # after each interval but the last
    for interval, forks in enumerate(seen["forks"]):
        members_next = seen["members"][interval + 1] if interval < 2 else final
        for m, (same, tripled) in enumerate(forks):
            for key in TRAINING:  # to the engine's member-independence tolerance (test_ppo.py)
                assert same[key] == pytest.approx(members_next[m][key], rel=1e-4, abs=1e-7), (
                    interval,
                    m,
                    key,
                )
            assert tripled["policy_loss"] != same["policy_loss"]  # another learning rate, another update
            assert same["budget"] == tripled["budget"] == 128 * (interval + 2)  # one rollout past the member
    lineage = pd.read_csv(result.out / "population_lineage.csv")
    assert set(lineage["event"]) == {"branch"} and len(lineage) == 6
    sb3 = {
        **cfg,
        "target": "sb3:ppo",
        "args": {"env": "CartPole-v1", "n_steps": 128},
        "out": str(tmp_path / "sb3"),
    }
    with pytest.raises(ConfigError, match="compares forks of a member on the same batch"):
        parse_sweep(sb3)


@pytest.mark.slow  # ~20 s: a subprocess sweep, a kill and a resume beside an uninterrupted reference
def test_kill_9_of_an_engine_population_loses_at_most_checkpoint_every_and_resumes_to_the_same_result(
    tmp_path: Path,
) -> None:
    """The live population is written only every ``checkpoint_every`` seconds, population.json only with
    it: a kill -9 finds both from the same save, no older than that time plus one interval, and the
    resume ends where an uninterrupted run ends."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cfg = _cfg(
        tmp_path,
        budget={"max": 49152, "report_every": 512},  # 96 intervals: still running when killed
        method={"name": "pbt", "population": 4},
        checkpoint_every=0.5,
    )
    del cfg["trials"]
    reference = sweep({**cfg, "out": str(tmp_path / "ref")}, plots=False).trials
    path = tmp_path / "pbt.yaml"
    path.write_text(yaml.safe_dump(cfg))
    command = [sys.executable, "-m", "autorl.cli", "sweep", str(path), "--quiet", "--no-plots"]
    proc = subprocess.Popen(command, start_new_session=True)
    state = Path(cfg["out"]) / "population.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
        state.is_file() and json.loads(state.read_text())["intervals"] >= 2
    ):
        time.sleep(0.05)
    time.sleep(1.2)  # two cadences into the run
    os.killpg(proc.pid, signal.SIGKILL)  # the process group this test started
    killed = time.time()
    proc.wait()
    saved = json.loads(state.read_text())
    assert not saved["done"] and saved["intervals"] >= 2
    assert killed - state.stat().st_mtime < 0.5 + 1.5  # checkpoint_every, plus an interval's margin
    for member in saved["members"]:  # the checkpoint population.json names was written
        assert (Path(cfg["out"]) / member["checkpoint"] / "engine.pt").is_file()
    res = subprocess.run([*command, "--resume"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    df = pd.read_csv(Path(cfg["out"]) / "trials.csv")
    assert df["value"].tolist() == pytest.approx(reference["value"].tolist())


def test_population_json_is_written_only_with_the_checkpoint_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between checkpoints (``checkpoint_every``) the live population moves on in its worker, and
    population.json is not written: every write names a checkpoint holding that very state (written
    every interval, it would name a checkpoint a resume finds missing or behind)."""
    from autorl.executors import population

    writes: list[tuple[int, list[int]]] = []
    save = population.PopulationState.save

    def recording(self: Any, out: Path) -> None:
        engine = [m.checkpoint for m in self.members]
        on_disk = [
            int(
                torch.load(out / c / "engine.pt", weights_only=True)["groups"][0]["pop"]["members"][
                    "steps"
                ].sum()
            )
            if c is not None and (out / c / "engine.pt").is_file()
            else -1
            for c in dict.fromkeys(engine)
        ]
        writes.append((sum(m.steps for m in self.members), on_disk))
        save(self, out)

    monkeypatch.setattr(population.PopulationState, "save", recording)
    cfg = _cfg(tmp_path, budget={"max": 2048, "report_every": 256}, method={"name": "pbt", "population": 4})
    del cfg["trials"]
    sweep({**cfg, "checkpoint_every": 3600}, plots=False)  # no checkpoint before the end
    assert writes[-1][0] == 4 * 2048
    for steps, on_disk in writes:
        assert on_disk == [steps], (steps, on_disk)  # one checkpoint, holding the state it describes
    assert len(writes) <= 3  # not once per interval (8 intervals)


def test_a_batch_sends_each_steps_reports_in_one_message(tmp_path: Path, monkeypatch: Any) -> None:
    """A batch of 4 trials reporting 4 times asks the orchestrator 4 times (one list per step), not 16."""
    from autorl.executors.sweep import _TrialLoop
    from autorl.executors.trial import Report
    from autorl.executors.workers import EventKind

    asks: list[Any] = []
    handle = _TrialLoop.handle

    def counting(self: _TrialLoop, ev: Any) -> None:
        if ev.kind is EventKind.ASK and isinstance(ev.payload, (Report, list)):
            asks.append(ev.payload)
        handle(self, ev)

    monkeypatch.setattr(_TrialLoop, "handle", counting)
    result = sweep(_cfg(tmp_path, batch=4), plots=False)
    assert (result.trials["state"] == "COMPLETE").all() and len(result.trials) == 4
    assert len(asks) == 4 and all(isinstance(a, list) and len(a) == 4 for a in asks)
    assert [sorted(r.step for r in a) for a in asks] == [[s] * 4 for s in (256, 512, 768, 1024)]
