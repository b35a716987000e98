"""Racing the incumbent on fresh seeds inside a sweep: it corrects misleading single-seed values, is
charged to the sweep's budget, and a killed sweep resumes its race."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import yaml

from autorl.api import sweep
from autorl.config import parse_sweep
from autorl.errors import ConfigError
from autorl.results import make_storage
from autorl.results.race import race_key
from autorl.targets import TrialContext
from autorl.targets.synthetic import CurveTarget
from tests.conftest import toy
from tests.executors.test_embedded import AUTORL, _starts, kill_sweep_when, resume_sweep


def _noisy(tmp_path: Path, race: dict[str, Any] | bool | None, **over: Any) -> dict[str, Any]:
    # value = x + N(0, 1) drawn from the seed: x = 1 is better by one standard deviation
    cfg: dict[str, Any] = {
        "target": toy("noisy"),
        "space": {"x": {"type": "categorical", "choices": [0.0, 1.0]}},
        "budget": {"max": 1},
        "method": "random",
        "trials": 16,
        "seed": 2,  # its single-seed values mislead: the best tuning value is an x = 0 trial's
        "out": str(tmp_path / ("raced" if race else "plain")),
    }
    if race is not None:
        cfg["race"] = race  # a mapping, or the switch true/false
    cfg.update(over)
    return cfg


@pytest.fixture(scope="module")
def raced(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The noisy sweep, racing: shared by the tests that read it."""
    return sweep(_noisy(tmp_path_factory.mktemp("race"), {"share": 0.5, "seeds": 5}), plots=False)


def test_racing_names_the_better_configuration_where_single_seed_values_mislead(
    tmp_path: Path, raced: Any
) -> None:
    plain = sweep(_noisy(tmp_path, None), plots=False)
    assert yaml.safe_load((plain.out / "best.yaml").read_text())["params"] == {"x": 0.0}

    best = yaml.safe_load((raced.out / "best.yaml").read_text())
    assert best["params"] == {"x": 1.0}
    race = best["race"]
    assert len(race["seeds"]) == len(race["values"]) >= 2 and min(race["seeds"]) >= 800_000_000
    assert best["value"] == race["mean"] and race["ci95"][0] < race["mean"] < race["ci95"][1]
    df = pd.read_csv(raced.out / "trials.csv")
    assert len(df) == 16  # race blocks are trials of the sweep's count
    blocks = df[df["race_of"].notna()]
    assert 0 < len(blocks) <= 8  # within its share of the budget
    # a block runs its configuration's parameters on the race's seeds
    for _, row in blocks.iterrows():
        assert row["x"] == df.loc[df["trial"] == row["race_of"], "x"].item() and row["seed"] >= 800_000_000
    assert df.loc[df["trial"] == best["trial"], "incumbent"].item() is True


def test_race_blocks_are_charged_to_budget_total(tmp_path: Path) -> None:
    result = sweep(_noisy(tmp_path, {"share": 0.5}, trials=100, budget={"max": 1, "total": 10}), plots=False)
    df = result.trials
    assert len(df) == 10 and df["race_of"].notna().sum() >= 1
    assert df["budget"].sum() == 10


def test_budget_total_keeps_the_race_its_share_when_one_batch_could_spend_it_all(tmp_path: Path) -> None:
    """Eight trials' budget and a batch of eight: without a reserve the first batch spends it all and
    the race never runs. The sampler's trials stop at (1 - share) of the total; the race gets the rest,
    as members of the same batch."""
    cfg = {
        "target": "engine:ppo",
        "args": {"env": "CartPole-v1", "n_envs": 8, "n_steps": 16, "eval_episodes": 2},
        "space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        "method": "random",
        "trials": 100,
        "budget": {"max": 512, "total": 8 * 512},
        "batch": 8,
        "race": {"share": 0.25, "seeds": 10},
        "out": str(tmp_path / "batched"),
    }
    df = sweep(cfg, plots=False).trials
    blocks = df[df["race_of"].notna()]
    assert len(df) - len(blocks) == 6 and len(blocks) == 2
    assert df["budget"].sum() <= 8 * 512


def test_a_racing_run_written_before_exact_budgets_resumes_or_says_to_add_exact_false(
    tmp_path: Path,
) -> None:
    """A racing sweep now rounds its budget by default (budget.exact). A run written before recorded
    exact as null: it resumes unchanged where the rounding changes nothing, and where it would change
    the budget, its resume is refused in one line saying to add budget.exact: false, then resumes."""
    from autorl.results.rundir import check_run_dir, write_run_files

    def old_run(cfg: dict[str, Any]) -> None:  # what the code before the default wrote
        before = parse_sweep({**cfg, "budget": {**cfg["budget"], "exact": False}})
        write_run_files(before)
        written = yaml.safe_load((before.out / "config.yaml").read_text())
        written["budget"]["exact"] = None
        (before.out / "config.yaml").write_text(yaml.safe_dump(written))

    toy_run = _noisy(tmp_path, {"share": 0.5, "seeds": 2}, trials=4)  # pieces of 1: nothing rounds
    old_run(toy_run)
    assert parse_sweep(toy_run).config.budget.exact is True
    check_run_dir(parse_sweep(toy_run), resume=True, trials=lambda: 4)
    small = {"n_steps": {"type": "int", "low": 64, "high": 512, "transform": "pow2"}}
    sb3_run = {
        "target": "sb3:ppo",
        "args": {"env": "CartPole-v1", "n_envs": 4},
        "space": small,
        "budget": {"max": 20000},  # rounds to 20,480
        "method": "random",
        "race": True,
        "out": str(tmp_path / "sb3"),
    }
    old_run(sb3_run)
    with pytest.raises(ConfigError, match=r"add budget\.exact: false to its config to resume it") as err:
        check_run_dir(parse_sweep(sb3_run), resume=True, trials=lambda: 4)
    assert "\n" not in str(err.value) and "budget.max (20480, was 20000)" in str(err.value)
    told = {**sb3_run, "budget": {**sb3_run["budget"], "exact": False}}
    check_run_dir(parse_sweep(told), resume=True, trials=lambda: 4)


@pytest.mark.slow  # ~12 s: kill -9 and resume of sweeps runs in the fast suite (test_embedded.py)
def test_a_killed_racing_sweep_resumes_its_race(tmp_path: Path) -> None:
    log = tmp_path / "starts.jsonl"
    cfg = {
        "target": toy("slow"),
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}, "sleep": {"type": "fixed", "value": 0.4}},
        "direction": "maximize",
        "budget": {"max": 1},
        "method": "random",
        "trials": 14,
        "race": {"share": 0.5, "seeds": 4},
        "out": str(tmp_path / "run"),
        "name": "race",
    }
    path = tmp_path / "race.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "TOY_LOG": str(log)}
    kill_sweep_when(path, env, lambda: sum(s["seed"] >= 800_000_000 for s in _starts(log)) >= 2)  # mid-race
    storage = make_storage(f"journal:{tmp_path / 'run' / 'study.log'}")
    before = optuna.load_study(study_name="race", storage=storage).get_trials()
    cut = [t for t in before if t.state.name == "RUNNING"]
    assert cut and race_key(cut[0]) is not None, "the kill should have caught a race block mid-run"

    resume_sweep(path, env)
    after = optuna.load_study(study_name="race", storage=storage).get_trials()
    finished = [t for t in after if t.state.name == "COMPLETE"]
    assert len(finished) == 14
    keys = [race_key(t) for t in finished if race_key(t) is not None]
    retry = next(t for t in after if t.user_attrs.get("retry_of") == cut[0].number)
    assert race_key(retry) == race_key(cut[0])  # the cut block ran again as that block of that race
    assert len(keys) == len(set(keys))  # and no block ran twice
    best = yaml.safe_load((tmp_path / "run" / "best.yaml").read_text())
    values = {t.number: t.values[0] for t in finished}
    for b, seed in zip(
        sorted(k[1] for k in keys if k[0] == best["trial"]), best["race"]["seeds"], strict=True
    ):
        assert seed == 800_000_000 + b - 1  # block b's seed (sweep seed 0)
    assert best["params"]["x"] == values[best["trial"]]
    json.dumps(best)  # best.yaml holds plain data


@pytest.mark.slow  # ~20 s: two sweep processes of 1 s trials
def test_two_processes_on_one_storage_keep_the_race_within_its_share_together(tmp_path: Path) -> None:
    """Each process counts the other's race blocks (finished and running) at every recount: the race's
    share of budget.total is the sweep's, not each process's. Counting only its own, each spent up to
    the share (11 blocks of 24 where the share is 6)."""
    db = tmp_path / "shared.db"
    cfg = {
        "target": toy("slow"),
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}, "sleep": {"type": "fixed", "value": 1.0}},
        "direction": "maximize",
        "budget": {"max": 1, "total": 24},
        "method": "random",
        "trials": 1000,
        "race": {"share": 0.25, "seeds": 10},
        "name": "shared",
    }
    env = {**os.environ, "AUTORL_HEARTBEAT_S": "1"}
    procs = []
    for i in range(2):
        path = tmp_path / f"p{i}.yaml"
        path.write_text(yaml.safe_dump({**cfg, "out": str(tmp_path / f"out{i}")}))
        args = ["sweep", str(path), "--storage", f"sqlite:///{db}", "--quiet", "--no-plots"]
        procs.append(subprocess.Popen([*AUTORL, *args], env=env, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    trials = optuna.load_study(study_name="shared", storage=f"sqlite:///{db}").get_trials()
    blocks = [race_key(t) for t in trials if race_key(t) is not None]
    # the share is 6 of 24; a block may start in the second between two recounts, one per process
    assert 1 <= len(blocks) <= 6 + 2, len(blocks)


def test_a_race_block_failed_by_a_dead_process_does_not_score_while_its_retry_stands_for_it() -> None:
    """On a shared storage a dead process's block is failed by Optuna's heartbeat (no autorl record)
    and queued again; every live process rebuilds the race from the study at each recount, so the failed
    block must not score -inf against its configuration meanwhile."""
    from optuna.trial import TrialState

    from autorl.results.race import race_standing
    from autorl.results.record import RACE_BLOCK, RACE_OF, retry_attrs

    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"x": 1.0})
    study.enqueue_trial({"x": 1.0}, user_attrs={RACE_OF: 0, RACE_BLOCK: 1})
    tuning = study.ask({"x": optuna.distributions.FloatDistribution(0, 2)})
    study.tell(tuning, 1.0)
    block = study.ask({"x": optuna.distributions.FloatDistribution(0, 2)})
    study.tell(block, state=TrialState.FAIL)  # what the heartbeat leaves of it
    dead = study.get_trials()[1]
    study.enqueue_trial(dead.params, user_attrs=retry_attrs(dead))  # its retry, waiting

    standing = race_standing(study.get_trials(), maximize=True)
    assert standing.blocks.get(0, {}) == {}  # not {1: -inf}


def test_race_keys_are_checked_in_one_line(tmp_path: Path) -> None:
    assert parse_sweep(_noisy(tmp_path, True)).config.race.seeds == 10  # type: ignore[arg-type,union-attr]
    assert parse_sweep(_noisy(tmp_path, False)).config.race is None
    with pytest.raises(ConfigError, match=r"race\.share"):
        parse_sweep(_noisy(tmp_path, {"share": 1.5}))
    two = {"target": toy("two_objectives"), "metric": ["loss", "cost"], "direction": ["minimize", "minimize"]}
    with pytest.raises(ConfigError, match="race: racing needs one objective"):
        parse_sweep(_noisy(tmp_path, {}, **two))


def test_a_pessimistic_aggregate_needs_one_objective(tmp_path: Path) -> None:
    two = {"target": toy("two_objectives"), "metric": ["loss", "cost"], "direction": ["minimize", "minimize"]}
    assert parse_sweep(_noisy(tmp_path, None, aggregate="lcb")).config.aggregate.pessimistic
    with pytest.raises(ConfigError, match="aggregate: lcb leans against one objective"):
        parse_sweep(_noisy(tmp_path, None, aggregate="lcb", **two))


def test_reeval_of_a_racing_sweep_judges_configurations_incumbent_first(raced: Any) -> None:
    from autorl.evaluate import reevaluate

    best = yaml.safe_load((raced.out / "best.yaml").read_text())
    df = reevaluate(raced.out, top=3, n_seeds=2)
    blocks = set(raced.trials.loc[raced.trials["race_of"].notna(), "trial"])
    assert df["trial"].iloc[0] == best["trial"] and not set(df["trial"]) & blocks


def test_show_lists_configurations_with_their_race_not_race_blocks(raced: Any) -> None:
    from click.testing import CliRunner

    from autorl.cli import main

    res = CliRunner().invoke(main, ["show", str(raced.out), "--top", "20"], terminal_width=200)
    assert res.exit_code == 0, res.output
    best = yaml.safe_load((raced.out / "best.yaml").read_text())
    rows = [line.split("│")[1].strip() for line in res.output.splitlines() if line.startswith("│")]
    shown = [int(r) for r in rows if r.isdigit()]
    blocks = set(raced.trials.loc[raced.trials["race_of"].notna(), "trial"])
    assert shown[0] == best["trial"] and not set(shown) & blocks
    assert "race mean (seeds)" in res.output and "race_of" not in res.output


# ------------------------------------------------------------------------ a population's final race
def _curve_pbt(tmp_path: Path, race: dict[str, Any] | None) -> dict[str, Any]:
    # synthetic:curve's evaluations carry N(0, 0.5) noise, so the last one misleads: with seed 3 the
    # member with the best last value (x = -0.14) is worse than one it beat (x = 0.48, nearer 0.3)
    cfg: dict[str, Any] = {
        "target": "synthetic:curve",
        "args": {"noise": 0.5},
        "space": {
            "x": {"type": "float", "low": -1.0, "high": 1.0},
            "lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True, "mutable": True},
        },
        "method": {"name": "pbt", "population": 8, "interval": 100},
        "budget": {"max": 500},
        "seed": 3,
        "out": str(tmp_path / ("raced" if race else "plain")),
    }
    if race is not None:
        cfg["race"] = race
    return cfg


def _asymptote(params: dict[str, float]) -> float:
    return CurveTarget({**params}, TrialContext()).asymptote


def test_a_pbt_population_races_its_top_members_on_fresh_seeds_and_names_the_better(tmp_path: Path) -> None:
    plain = yaml.safe_load((sweep(_curve_pbt(tmp_path, None), plots=False).out / "best.yaml").read_text())
    run = sweep(_curve_pbt(tmp_path, {"share": 0.5, "seeds": 10}), plots=False)
    best = yaml.safe_load((run.out / "best.yaml").read_text())
    assert best["params"] != plain["params"]
    assert _asymptote(best["params"]) > _asymptote(plain["params"]) + 0.1  # the race found the better one
    race = best["race"]
    assert len(race["values"]) == 10 and min(race["seeds"]) >= 800_000_000
    assert best["value"] == race["mean"] and race["raced_budget"] == 0  # evaluation trains nothing
    df = pd.read_csv(run.out / "trials.csv")
    blocks = df[df["race_of"].notna()]
    assert len(blocks) == 4 * 10  # the top half of 8 members, 10 blocks each
    members = df[df["race_of"].isna()]
    assert set(blocks["race_of"]) == set(members.nlargest(4, "value")["trial"])  # ranked by their values
    assert (blocks.groupby("race_block")["seed"].nunique() == 1).all()  # a block's seed is common to all
    schedule = yaml.safe_load((run.out / "best_schedule.yaml").read_text())
    assert schedule["member"] == int(df.loc[df["trial"] == best["trial"], "member"].iloc[0])
    from click.testing import CliRunner

    from autorl.cli import main

    shown = CliRunner().invoke(main, ["show", str(run.out)], terminal_width=200).output
    assert "with pbt: 8 members and 40 race blocks" in shown


def test_a_population_races_only_on_a_target_that_evaluates_on_seeds(tmp_path: Path) -> None:
    cfg = _curve_pbt(tmp_path, {})
    cfg.update(target=toy("Toy"), metric="score", args={}, space={"lr": cfg["space"]["lr"]})
    with pytest.raises(ConfigError, match=r"race: a pbt population races its final members on seeds"):
        parse_sweep(cfg)
    assert parse_sweep({**cfg, "target": toy("Raced")}).config.race is not None


def test_a_population_race_on_a_training_metric_is_refused_in_one_line(tmp_path: Path) -> None:
    """A population's race evaluates its final members on fresh seeds and trains nothing, so it gives
    no training return: racing ``metric: train_return`` named a member from race values of -inf.
    Refused there; a sampler-based method's race blocks are trials that train, so it races."""
    engine = {
        "target": "engine:ppo",
        "args": {"env": "CartPole-v1", "n_envs": 8, "n_steps": 16},
        "space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        "budget": {"max": 512},
        "metric": "train_return",
        "race": True,
        "out": str(tmp_path / "run"),
    }
    rule = (
        r"race: a pbt population races .* on fresh seeds, which gives no train_return .*race on eval_return"
    )
    pbt = {"name": "pbt", "population": 4}
    with pytest.raises(ConfigError, match=rule):
        parse_sweep({**engine, "method": pbt})
    assert parse_sweep({**engine, "method": pbt, "metric": "eval_return"}).config.race is not None
    assert parse_sweep({**engine, "method": "random"}).config.race is not None


@pytest.mark.slow  # ~10 s: kill -9 mid-race and resume
def test_a_population_killed_mid_race_resumes_and_reruns_at_most_the_cut_block(tmp_path: Path) -> None:
    log = tmp_path / "evals.jsonl"
    cfg = _curve_pbt(tmp_path, {"share": 0.5, "seeds": 4})
    cfg.update(
        target=toy("Raced"),
        metric="score",
        args={"eval_log": str(log), "eval_sleep": 0.3, "eval_noise": 1.0},
        space={"lr": {**cfg["space"]["lr"], "init": [1e-3, 1e-2]}},
        method={"name": "pbt", "population": 4, "interval": 10},
        budget={"max": 30},
        name="pop-race",
    )
    path = tmp_path / "race.yaml"
    path.write_text(yaml.safe_dump(cfg))
    rows = lambda: [json.loads(r) for r in log.read_text().splitlines()] if log.exists() else []  # noqa: E731
    kill_sweep_when(path, dict(os.environ), lambda: len(rows()) >= 3)  # in block 2 of the race
    storage = make_storage(f"journal:{tmp_path / 'raced' / 'study.log'}")
    cut = len(optuna.load_study(study_name="pop-race", storage=storage).get_trials())
    resume_sweep(path, dict(os.environ))
    trials = optuna.load_study(study_name="pop-race", storage=storage).get_trials()
    keys = [race_key(t) for t in trials if race_key(t) is not None]
    assert len(keys) == len(set(keys)) == 2 * 4 and cut >= 4 + 2  # every block once; block 1 kept
    runs = [(r["seed"], r["eval"]) for r in rows()]
    assert len(runs) - len(set(runs)) <= 2  # only the cut block's evaluations ran twice
    best = yaml.safe_load((tmp_path / "raced" / "best.yaml").read_text())
    assert len(best["race"]["values"]) == 4


def test_an_engine_population_races_its_members_in_one_batched_evaluation(tmp_path: Path) -> None:
    cfg = {
        "target": "engine:ppo",
        "args": {"env": "CartPole-v1", "n_envs": 8, "n_steps": 16, "eval_episodes": 2},
        "space": {
            "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True, "mutable": True}
        },
        "method": {"name": "pbt", "population": 4},
        "budget": {"max": 512, "report_every": 256},
        "seeds_per_trial": 2,
        "race": {"share": 0.5, "seeds": 3},
        "out": str(tmp_path / "engine"),
    }
    run = sweep(cfg, plots=False)
    df = pd.read_csv(run.out / "trials.csv")
    blocks = df[df["race_of"].notna()]
    assert len(blocks) == 2 * 3 and (blocks["budget"] == 0).all()
    best = yaml.safe_load((run.out / "best.yaml").read_text())
    assert len(best["race"]["seeds"]) == 3 * 2  # two seeds a block: one per seed of the member
    assert best["trial"] in set(blocks["race_of"])
    schedule = yaml.safe_load((run.out / "best_schedule.yaml").read_text())
    assert schedule["member"] == int(df.loc[df["trial"] == best["trial"], "member"].iloc[0])
