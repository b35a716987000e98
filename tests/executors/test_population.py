"""The population loop: PBT/PB2 members on supervised workers, copies through checkpoints, resume."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from autorl.api import sweep
from autorl.errors import ConfigError
from tests.conftest import toy

AUTORL = [sys.executable, "-m", "autorl.cli"]


def _config(tmp_path: Path, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "target": toy("Toy"),
        "args": {},
        "space": {
            "lr": {
                "type": "float",
                "low": 1e-3,
                "high": 1.0,
                "log": True,
                "mutable": True,
                "init": [1e-3, 1e-2],
            }
        },
        "metric": "score",
        "direction": "maximize",
        "budget": {"max": 50, "report_every": 10},
        "method": {"name": "pbt", "population": 4},
        "seed": 0,
        "out": str(tmp_path / "pbt"),
    }
    cfg.update(over)
    return cfg


def _state(out: Path) -> dict[str, Any]:
    return json.loads((out / "population.json").read_text())


def test_pbt_beats_the_same_population_with_fixed_values_and_records_one_trial_per_member(
    tmp_path: Path,
) -> None:
    cfg = _config(tmp_path, budget={"max": 100, "report_every": 10})
    result = sweep(cfg, plots=True)
    df, out = result.trials, result.out
    assert len(df) == 4 and set(df["state"]) == {"COMPLETE"} and sorted(df["member"]) == [0, 1, 2, 3]
    assert (df["budget"] == 100).all() and (df["metric_population_steps"] == 400).all()
    fixed = sweep(
        {**cfg, "out": str(tmp_path / "fixed"), "method": {"name": "pbt", "population": 4, "exploit": False}},
        plots=False,
    ).trials
    assert df["value"].max() > 2 * fixed["value"].max()
    assert not (tmp_path / "fixed" / "plots" / "population_schedules.png").exists()  # plots=False: none
    for f in (
        "population_schedule.csv",
        "population_lineage.csv",
        "best_schedule.yaml",
        "population_summary.json",
        "plots/population_schedules.png",
    ):
        assert (out / f).is_file(), f
    summary = json.loads((out / "population_summary.json").read_text())
    assert summary["exploits"] == 9 and summary["intervals"] == 10  # one copy per boundary (quantile 1/4)
    assert list(pd.read_csv(out / "population_lineage.csv")["event"]) == ["exploit"] * 9


def test_members_train_with_the_explored_values_after_a_copy(tmp_path: Path) -> None:
    """The donor's checkpoint holds the donor's lr; a copy must train with the explored one, and no
    member ever trains with anything but its initial or its latest explored value."""
    log = tmp_path / "train.jsonl"
    out = sweep(_config(tmp_path, args={"log": str(log)}), plots=False).out
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    state = _state(out)
    initial = {r["seed"]: r["lr"] for r in reversed(rows) if r["start"] == 0}  # each member's first value
    exploits = [e for e in state["lineage"] if e["event"] == "exploit"]
    assert exploits
    for e in exploits:
        after = [r for r in rows if r["seed"] == e["member"] and r["start"] == e["step"]]
        assert after and after[-1]["lr"] == pytest.approx(e["config"]["lr"]), e
    allowed = {(e["member"], round(e["config"]["lr"], 12)) for e in exploits}
    for r in rows:
        assert (r["seed"], round(r["lr"], 12)) in allowed or r["lr"] == initial[r["seed"]], r


def test_checkpoints_are_relative_and_only_the_latest_per_member_is_kept(tmp_path: Path) -> None:
    out = sweep(_config(tmp_path), plots=False).out
    state = _state(out)
    assert all(not Path(m["checkpoint"]).is_absolute() for m in state["members"])
    members = sorted((out / "checkpoints").iterdir())
    assert [p.name for p in members] == ["member0", "member1", "member2", "member3"]
    assert all(len(list(p.iterdir())) == 1 for p in members)


def test_two_workers_give_the_same_population_as_one(tmp_path: Path) -> None:
    one = sweep(_config(tmp_path, out=str(tmp_path / "w1")), plots=False).trials
    two = sweep(_config(tmp_path, out=str(tmp_path / "w2"), workers=2), plots=False).trials
    assert one["value"].tolist() == pytest.approx(two["value"].tolist())
    assert one["lr"].tolist() == pytest.approx(two["lr"].tolist())


def test_a_member_whose_process_dies_is_failed_replaced_and_the_run_goes_on(tmp_path: Path) -> None:
    crash = {"seed": 2, "at": 20, "marker": str(tmp_path / "crashed")}
    result = sweep(_config(tmp_path, args={"crash": crash}), plots=False)
    lineage = pd.read_csv(result.out / "population_lineage.csv")
    failed = lineage[lineage["event"] == "failed"]
    assert len(failed) == 1 and failed.iloc[0]["member"] == 2 and "SIGSEGV" in failed.iloc[0]["error"]
    replaced = lineage[(lineage["event"] == "exploit") & (lineage["member"] == 2)]
    assert len(replaced) >= 1  # the failed member got a healthy member's state
    assert set(result.trials["state"]) == {"COMPLETE"} and len(result.trials) == 4


def test_a_member_failure_without_exploits_fails_only_that_member(tmp_path: Path) -> None:
    crash = {"seed": 2, "at": 20, "marker": str(tmp_path / "crashed")}
    cfg = _config(tmp_path, args={"crash": crash}, method={"name": "pbt", "population": 4, "exploit": False})
    df = sweep(cfg, plots=False).trials
    assert df.set_index("member")["state"].to_dict() == {
        0: "COMPLETE",
        1: "COMPLETE",
        2: "FAIL",
        3: "COMPLETE",
    }
    assert "SIGSEGV" in df.set_index("member").loc[2, "error"]


def test_resume_of_a_finished_run_adds_nothing_and_a_rerun_is_refused(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    first = sweep(cfg, plots=False).trials
    again = sweep(cfg, plots=False, resume=True).trials
    assert len(again) == 4 and again["value"].tolist() == first["value"].tolist()
    with pytest.raises(ConfigError, match="already holds this sweep"):
        sweep(cfg, plots=False)


@pytest.mark.slow  # ~6 s; kill -9 of sweeps runs in the fast suite
def test_kill_9_mid_run_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    """Killed after some intervals, a resumed run repeats at most the interval it was in and ends where
    an uninterrupted run ends (the Toy target is deterministic)."""
    reference = sweep(_config(tmp_path, out=str(tmp_path / "ref")), plots=False).trials
    cfg = _config(tmp_path, args={"sleep": 0.15})
    path = tmp_path / "pbt.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([*AUTORL, "sweep", str(path), "--quiet", "--no-plots"], start_new_session=True)
    out = Path(cfg["out"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (out / "population.json").is_file() and _state(out)["intervals"] >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not _state(out)["done"]
    res = subprocess.run(
        [*AUTORL, "sweep", str(path), "--quiet", "--no-plots", "--resume"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr[-2000:]
    df = pd.read_csv(out / "trials.csv")
    assert len(df) == 4
    assert df["value"].tolist() == pytest.approx(reference["value"].tolist())
    ckpts = [p for p in (out / "checkpoints").rglob("s.json")]
    assert len(ckpts) == 4  # orphans of the killed run are gone


def test_a_run_stopped_before_an_intervals_decisions_makes_them_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """population.json is saved after an interval's training and again after its decisions; a run
    stopped in between (here: while its copies are carried out) makes that interval's decisions when it
    resumes, and ends where an uninterrupted run ends."""
    from autorl.executors import ProcessHosts

    reference = sweep(_config(tmp_path, out=str(tmp_path / "ref")), plots=False).trials
    cfg = _config(tmp_path)

    def stopped(*args: Any) -> Any:
        raise KeyboardInterrupt  # Ctrl-C (or a kill) while the first copies are carried out

    with monkeypatch.context() as patch:
        patch.setattr(ProcessHosts, "apply", stopped)
        with pytest.raises(KeyboardInterrupt):
            sweep(cfg, plots=False)
    assert _state(Path(cfg["out"]))["intervals"] == 1
    resumed = sweep(cfg, plots=False, resume=True).trials
    assert resumed["value"].tolist() == pytest.approx(reference["value"].tolist())


def test_budget_total_is_split_over_the_members(tmp_path: Path) -> None:
    cfg = _config(tmp_path, budget={"max": 50, "report_every": 10, "total": 120})
    df = sweep(cfg, plots=False).trials
    assert (df["budget"] == 30).all() and (df["metric_population_steps"] == 120).all()


def test_progress_counts_one_interval_per_member_per_round_when_members_overshoot(tmp_path: Path) -> None:
    """Members that train whole pieces past each interval (as PPO's rollouts do) still report at every
    interval's end, and the progress counts one interval per member per round: 4/20 after the first
    round, 20/20 only after the last (it said 8/20 and reached 20/20 a round early)."""
    seen: list[tuple[int, int]] = []
    cfg = _config(tmp_path, args={"piece": 6}, method={"name": "pb2", "population": 4})
    df = sweep(cfg, plots=False, progress=lambda s: seen.append((s.done, s.total))).trials
    assert seen == [(4 * k, 20) for k in range(1, 6)] + [(20, 20)]
    assert (df["budget"] == 54).all()  # the last interval overshoots by less than one piece of 6
    curves = pd.read_csv(tmp_path / "pbt" / "curves.csv")
    for k, (step, _) in enumerate(curves.groupby("step"), start=1):
        assert 10 * k <= step < 10 * k + 6  # every report within one piece of its interval's end


def test_pb2_runs_and_keeps_values_in_the_space(tmp_path: Path) -> None:
    df = sweep(_config(tmp_path, method={"name": "pb2", "population": 4}), plots=False).trials
    assert len(df) == 4 and df["lr"].between(1e-3, 1.0).all()


def test_a_pow2_mutable_parameter_is_explored_on_its_exponent_and_recorded(tmp_path: Path) -> None:
    space = {
        "n": {"type": "int", "low": 4, "high": 1024, "transform": "pow2", "mutable": True},
        "lr": {"type": "float", "low": 0.01, "high": 1.0, "mutable": True},
    }
    cfg = _config(tmp_path, target=toy("Pow2"), space=space, metric="value")
    df = sweep(cfg, plots=False).trials
    assert len(df) == 4 and all(int(n) & (int(n) - 1) == 0 for n in df["n"])
    assert (df["log2_n"] == df["n"].map(lambda n: __import__("math").log2(n))).all()


@pytest.mark.parametrize(
    "change, key, rule",
    [
        ({"trials": 5}, "trials", "trials has no meaning here"),
        ({"target": toy("NoReconfigure"), "metric": "value"}, "space.lr.mutable", "has no reconfigure()"),
    ],
)
def test_keys_without_meaning_for_a_population_are_refused(
    tmp_path: Path, change: dict[str, Any], key: str, rule: str
) -> None:
    from autorl.config import parse_sweep

    with pytest.raises(ConfigError, match=rule) as err:
        parse_sweep(_config(tmp_path, **change), "pbt.yaml")
    assert err.value.key == key and err.value.file == "pbt.yaml"


def _counter_config(make_config: Any, tmp_path: Path, **over: Any) -> dict[str, Any]:
    cfg = make_config(
        target=toy("Counter"),
        space={"x": {"type": "float", "low": 0.0, "high": 1.0, "mutable": True, "init": [0.0, 0.1]}},
        metric="value",
        direction="maximize",
        budget={"max": 40, "report_every": 10},
        method={"name": "pbt", "population": 4},
        out=str(tmp_path / "pbt_run"),
        **over,
    )
    del cfg["trials"]  # a population's size is its method option
    return cfg


def test_pbt_sweep_end_to_end_and_replay(make_config: Any, tmp_path: Path) -> None:
    """`autorl sweep` with method pbt writes the usual tables plus schedules; `autorl replay` retrains
    the best schedule from scratch and gets the value the schedule implies."""
    from click.testing import CliRunner

    from autorl.cli import main

    path = tmp_path / "pbt.yaml"
    path.write_text(yaml.safe_dump(_counter_config(make_config, tmp_path)))
    res = CliRunner().invoke(main, ["sweep", str(path), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "autorl replay" in res.output
    out = tmp_path / "pbt_run"
    df = pd.read_csv(out / "trials.csv")
    assert len(df) == 4 and (df["state"] == "COMPLETE").all() and (df["wall_s"] >= 0).all()
    assert (df["budget"] == 40).all() and (df["metric_population_steps"] == 160).all()
    files = (
        "population_schedule.csv",
        "population_lineage.csv",
        "best_schedule.yaml",
        "population_summary.json",
        "best.yaml",
    )
    for f in (*files, "plots/population_schedules.png"):
        assert (out / f).is_file(), f
    lineage = pd.read_csv(out / "population_lineage.csv")
    assert list(lineage["event"]) == ["exploit"] * 3  # one copy per boundary (quantile 0.25 of 4)
    best = yaml.safe_load((out / "best_schedule.yaml").read_text())
    # exploits move x out of init: the best schedule ends above the 0.1 the fixed population is stuck at
    assert best["schedule"][-1]["x"] > 0.1 and best["score"] == pytest.approx(df["value"].max())
    # the value a schedule implies: sum over segments of x * segment length (the Counter's contract)
    steps = [s["step"] for s in best["schedule"]] + [40]
    expected = sum(s["x"] * (b - a) for s, a, b in zip(best["schedule"], steps, steps[1:], strict=False))
    res = CliRunner().invoke(main, ["replay", str(out), "--seed", "7"])
    assert res.exit_code == 0, res.output
    replay = pd.read_csv(out / "replay.csv")
    assert replay["seed"].tolist() == [7] and replay["value"].iloc[0] == pytest.approx(expected)
    # the schedule follows the lineage (donors' past included), so a replay reproduces the best score
    assert expected == pytest.approx(best["score"])
    res = CliRunner().invoke(main, ["replay", str(tmp_path)])
    assert res.exit_code == 2 and "best_schedule.yaml is missing" in res.output


def _rows(log: Path, event: str) -> list[dict[str, Any]]:
    return [r for line in log.read_text().splitlines() if (r := json.loads(line))["event"] == event]


def _searched(spec: dict[str, Any], value: float) -> float:
    """The value on the scale the space declares it searched on (an oracle apart from autorl.space)."""
    if spec.get("transform") == "one_minus":
        return 1.0 - value
    return math.log2(value) if spec.get("transform") == "pow2" else value


def _in_space(spec: dict[str, Any], value: Any) -> bool:
    if spec["type"] == "categorical":
        return value in spec["choices"]
    if spec["type"] == "int" and (not isinstance(value, int) or isinstance(value, bool)):
        return False
    if spec.get("transform") == "pow2" and value & (value - 1):
        return False
    return spec["low"] <= value <= spec["high"]


def _is_a_shift(spec: dict[str, Any], before: Any, after: Any, factors: tuple[float, float]) -> bool:
    """Whether ``after`` is PBT's shift of ``before``: one choice along, one exponent up or down for
    pow2, multiplied by a factor on the searched scale (``1 - x`` for one_minus), or clipped to a bound
    that the move would have crossed."""
    if spec["type"] == "categorical":
        i, j, last = spec["choices"].index(before), spec["choices"].index(after), len(spec["choices"]) - 1
        return abs(j - i) == 1 or (i == j and i in (0, last))
    lo, hi = sorted((_searched(spec, spec["low"]), _searched(spec, spec["high"])))
    s, t = _searched(spec, before), _searched(spec, after)
    if spec.get("transform") == "pow2":
        moves = [s - 1, s + 1]
    else:
        moves = [s * f for f in factors]
    return any(t == pytest.approx(min(max(m, lo), hi), rel=1e-9, abs=1e-12) for m in moves)


def test_pbt_over_the_shipped_ppo_space_explores_on_each_parameters_searched_scale(tmp_path: Path) -> None:
    """PBT over sb3/ppo.yaml (n_steps, batch_size, n_epochs made mutable too: a recording target can
    take them mid-run): every value a member is built or reconfigured with is in the space, a power of
    two where pow2, and every explored value is the donor's moved on its searched scale (gamma's 1 - gamma
    multiplied by 0.8 or 1.2, n_steps doubled or halved); immutable values come with the donor."""
    from autorl.config import SPACES_DIR
    from autorl.space import SearchSpace, check_config

    spec = yaml.safe_load((SPACES_DIR / "sb3" / "ppo.yaml").read_text())
    for name in ("n_steps", "batch_size", "n_epochs"):
        spec[name]["mutable"] = True
    mutable = {k for k, p in spec.items() if p.get("mutable")}
    assert {"gamma", "gae_lambda", "n_steps", "batch_size"} <= mutable
    assert not {"net_arch", "activation_fn"} & mutable
    log = tmp_path / "configs.jsonl"
    method = {"name": "pbt", "population": 8, "quantile": 0.5, "resample_probability": 0.0}
    cfg = _config(
        tmp_path,
        target=toy("Recorder"),
        args={"log": str(log), "rate": "learning_rate"},
        space=spec,
        budget={"max": 60, "report_every": 10},
        method=method,
    )
    result = sweep(cfg, plots=False)
    space = SearchSpace.from_dict(spec)

    received = [r["config"] for r in _rows(log, "build")] + [r["after"] for r in _rows(log, "reconfigure")]
    for config in received:
        values = {k: config[k] for k in spec}
        assert check_config(space, values) == [], values  # conditions too, where a space has them
        assert all(_in_space(spec[k], v) for k, v in values.items()), values
        assert 0.97 <= values["gamma"] <= 0.9999 < 1 and 0.9 <= values["gae_lambda"] <= 0.9999
        assert values["n_steps"] in [2**e for e in range(5, 13)]
        assert values["batch_size"] in [2**e for e in range(2, 11)]

    moves = _rows(log, "reconfigure")
    assert len(moves) == 8 * 5 // 2  # four copies at each of five boundaries
    for r in moves:
        for k, p in spec.items():
            before, after = r["before"][k], r["after"][k]
            if k in mutable:
                assert _is_a_shift(p, before, after, (0.8, 1.2)), (k, before, after)
            else:
                assert after == before, (k, before, after)
    explored = {(r["member"], r["steps"]): r["after"] for r in moves}
    exploits = [e for e in _state(result.out)["lineage"] if e["event"] == "exploit"]
    assert {(e["member"], e["step"]): e["config"] for e in exploits} == explored

    df = result.trials
    assert df["one_minus_gamma"].tolist() == pytest.approx((1 - df["gamma"]).tolist(), rel=1e-9)
    assert (df["log2_n_steps"] == df["n_steps"].map(math.log2)).all()
    assert (df["log2_batch_size"] == df["batch_size"].map(math.log2)).all()


def test_seeds_per_trial_trains_each_member_on_its_seeds_in_lock_step_and_aggregates(
    tmp_path: Path,
) -> None:
    """With seeds_per_trial 2 a member is two agents (its two seeds), trained every interval, its value
    their mean; a copy hands the donor's agent of each seed to the member's agent of that seed."""
    log = tmp_path / "runs.jsonl"
    space = {"x": {"type": "float", "low": 0.1, "high": 1.0, "mutable": True, "init": [0.1, 0.3]}}
    cfg = _config(tmp_path, target=toy("Recorder"), args={"log": str(log)}, space=space, seeds_per_trial=2)
    result = sweep(cfg, plots=False)
    df = result.trials.set_index("member").sort_index()
    trains = _rows(log, "train")
    recorded = {
        t.user_attrs["autorl"]["member"]: t.user_attrs["autorl"]["seeds"] for t in result.study.trials
    }
    for m in range(4):
        seeds = [2 * m, 2 * m + 1]  # seed 0: member m's seeds are 2m + i
        assert recorded[m] == seeds
        mine = [r for r in trains if r["member"] == m]
        assert sorted((r["end"], r["seed"]) for r in mine) == [
            (e, s) for e in range(10, 60, 10) for s in seeds
        ]
        last = [r["value"] for r in mine if r["end"] == 50]
        assert last[0] != last[1] and df.loc[m, "value"] == pytest.approx(sum(last) / 2)
    assert (df["budget"] == 100).all() and (df["metric_population_steps"] == 400).all()
    assert any(e["event"] == "exploit" for e in _state(result.out)["lineage"])
    # every interval starts from the score an agent of the same seed index ended the last one with
    ends = {(r["seed"] % 2, r["end"], round(r["value"], 9)) for r in trains}
    for r in trains:
        if r["start"] > 0:
            assert (r["seed"] % 2, r["start"], round(r["before"], 9)) in ends, r


@pytest.mark.parametrize(
    "value, pick",
    [
        ("last", lambda curve: curve[-1]),
        ("best", max),
        ({"select": "mean_last", "k": 2}, lambda curve: (curve[-1] + curve[-2]) / 2),
    ],
)
def test_a_members_value_follows_value_select_over_its_curve_while_exploits_rank_the_latest(
    tmp_path: Path, value: Any, pick: Any
) -> None:
    """Scores rise for 30 steps, then fall: a member's value is ``value.select`` over the evaluations it
    reported, and its best, last and mean of the last two differ; exploits rank the latest."""
    log = tmp_path / "runs.jsonl"
    space = {"x": {"type": "float", "low": 0.1, "high": 1.0, "mutable": True}}
    cfg = _config(
        tmp_path,
        target=toy("Recorder"),
        args={"log": str(log), "peak": 30},
        space=space,
        budget={"max": 60, "report_every": 10},
        value=value,
    )
    result = sweep(cfg, plots=False)
    trains = _rows(log, "train")
    for trial in result.study.trials:
        m = trial.user_attrs["autorl"]["member"]
        reported = sorted((r["end"], r["value"]) for r in trains if r["member"] == m)
        assert sorted(trial.intermediate_values) == [step for step, _ in reported]
        assert [trial.intermediate_values[s] for s, _ in reported] == pytest.approx([v for _, v in reported])
        curve = [v for _, v in reported]
        assert max(curve) != curve[-1] != (curve[-1] + curve[-2]) / 2
        assert trial.value == pytest.approx(pick(curve))
    exploits = [e for e in _state(result.out)["lineage"] if e["event"] == "exploit"]
    assert any(e["step"] > 30 for e in exploits)
    for e in exploits:
        latest = [r["value"] for r in trains if r["member"] == e["donor"] and r["end"] == e["step"]]
        assert latest == [pytest.approx(e["donor_score"])], e
        assert e["donor_score"] > e["member_score"], e
    assert yaml.safe_load((result.out / "best_schedule.yaml").read_text())["score"] == pytest.approx(
        result.trials["value"].max()
    )


def test_each_member_trains_on_its_own_worker_whatever_the_timing(tmp_path: Path) -> None:
    """A member's live agent stays in its worker, and an SB3 agent reloaded from its checkpoint does not
    continue exactly as the live one would (its envs restart): a member that ran wherever a worker was
    free gave results that depended on timing. Member 0 is slow here; the others never move."""
    log = tmp_path / "log.jsonl"
    cfg = _config(
        tmp_path,
        args={"log": str(log), "slow": {"member": 0, "sleep": 0.5}},
        budget={"max": 40, "report_every": 10},
        workers=2,
    )
    sweep(cfg, plots=False)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    pids = {m: {r["pid"] for r in rows if r["member"] == m} for m in range(4)}
    assert all(len(p) == 1 for p in pids.values()), pids
    assert pids[0] == pids[2] and pids[1] == pids[3] and pids[0] != pids[1]  # member m on worker m mod 2


def test_a_training_metric_that_is_nan_in_an_interval_keeps_its_last_value(tmp_path: Path) -> None:
    """Deciding on training returns, an interval in which no episode ended reports nan: the member keeps
    its last return (PBT neither replaces nor favours it for that), and the history records no change."""
    from autorl.config import parse_sweep
    from autorl.executors.population import MemberResult, MemberState, PopulationState, _apply_interval

    cfg = _config(tmp_path, target=toy("Plateau"))
    cfg["method"] = {"name": "pbt", "population": 2, "decide_on": "train_return"}
    sw = parse_sweep(cfg)
    m, state = MemberState(0, {"lr": 0.01}), PopulationState([], {})
    _apply_interval(m, MemberResult({"train_return": 5.0, "budget": 10.0}), sw, state, 1.0, "train_return")
    _apply_interval(
        m, MemberResult({"train_return": math.nan, "budget": 20.0}), sw, state, 1.0, "train_return"
    )
    assert m.view("train_return").score == 5.0 and m.steps == 20
    assert math.isnan(m.metrics["train_return"])  # what a method reading the metrics sees: no episode
    assert m.score is None and m.curve == {}  # nothing evaluated yet
    _apply_interval(
        m, MemberResult({"train_return": 7.0, "score": 3.0, "budget": 30.0}), sw, state, 1.0, "train_return"
    )
    assert m.view("train_return").score == 7.0 and m.score == 3.0 and m.curve == {30: 3.0}
    assert [h[2] for h in state.history] == [0.0, 2.0]  # the nan interval left no observation


def test_a_sweep_metric_that_is_a_training_metric_keeps_its_last_value_through_a_nan_interval(
    tmp_path: Path,
) -> None:
    """``metric: train_return`` (no decide_on): the member's score is its training return, read as
    decide_on reads it. An interval in which no episode ended (nan) leaves the score, its curve and the
    history as they were (a first one leaves no score), so neither the decisions nor the recorded value
    become nan; with several seeds the score aggregates those whose episodes ended; a member none of
    whose episodes ended in its whole run fails, saying so (budget.max 50 here)."""
    from autorl.config import parse_sweep
    from autorl.executors.population import MemberResult, MemberState, PopulationState, _apply_interval

    cfg = _config(tmp_path, target=toy("Plateau"))
    cfg.update(metric="train_return", method={"name": "pbt", "population": 2})
    sw = parse_sweep(cfg)
    m, state = MemberState(0, {"lr": 0.01}), PopulationState([], {})
    _apply_interval(m, MemberResult({"train_return": math.nan, "budget": 5.0}), sw, state, 1.0, None)
    assert m.score is None and m.curve == {} and not m.failed
    _apply_interval(m, MemberResult({"train_return": 5.0, "budget": 10.0}), sw, state, 1.0, None)
    _apply_interval(m, MemberResult({"train_return": math.nan, "budget": 20.0}), sw, state, 1.0, None)
    assert m.score == 5.0 and m.curve == {10: 5.0} and m.steps == 20
    assert math.isnan(m.metrics["train_return"])  # what the interval reported, as it reported it
    seeds = [{"train_return": 9.0, "budget": 30.0}, {"train_return": math.nan, "budget": 30.0}]
    _apply_interval(m, MemberResult({"train_return": math.nan, "budget": 30.0}, seeds), sw, state, 1.0, None)
    assert m.score == 9.0 and m.curve == {10: 5.0, 30: 9.0}
    assert [h[2] for h in state.history] == [0.0, 4.0]  # the nan intervals left no observation
    never = MemberState(1, {"lr": 0.01})
    _apply_interval(never, MemberResult({"train_return": math.nan, "budget": 50.0}), sw, state, 1.0, None)
    assert never.failed and "no training episode ended in its whole run" in (never.error or "")


def test_a_seed_without_an_ended_episode_leaves_the_others_return_and_an_unevaluated_end_fails(
    tmp_path: Path,
) -> None:
    """With several seeds a member's training return is its seeds' whose episodes ended (the mean over
    all would be nan); a member that reaches its budget without an evaluation (a target that trained
    more than it declared) fails, saying so, instead of ending as a trial without a value."""
    from autorl.config import parse_sweep
    from autorl.executors.population import MemberResult, MemberState, PopulationState, _apply_interval

    cfg = _config(tmp_path, target=toy("Plateau"))  # budget.max 50
    cfg["method"] = {"name": "pbt", "population": 2, "decide_on": "train_return"}
    sw = parse_sweep(cfg)
    m, state = MemberState(0, {"lr": 0.01}), PopulationState([], {})
    seeds = [{"train_return": 4.0, "budget": 10.0}, {"train_return": math.nan, "budget": 10.0}]
    res = MemberResult({"train_return": math.nan, "budget": 10.0}, seeds)
    _apply_interval(m, res, sw, state, 1.0, "train_return")
    assert m.view("train_return").score == 4.0 and not m.failed
    _apply_interval(m, MemberResult({"train_return": 6.0, "budget": 50.0}), sw, state, 1.0, "train_return")
    assert m.failed and "unevaluated" in (m.error or "") and state.failures == 1
