"""The population loop: PBT/PB2 members on supervised workers, copies through checkpoints, resume."""

from __future__ import annotations

import json
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
    for f in (
        "pbt_schedule.csv",
        "pbt_lineage.csv",
        "best_schedule.yaml",
        "pbt_summary.json",
        "plots/pbt_schedules.png",
    ):
        assert (out / f).is_file(), f
    summary = json.loads((out / "pbt_summary.json").read_text())
    assert summary["exploits"] == 9 and summary["intervals"] == 10  # one copy per boundary (quantile 1/4)
    assert list(pd.read_csv(out / "pbt_lineage.csv")["event"]) == ["exploit"] * 9


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
    lineage = pd.read_csv(result.out / "pbt_lineage.csv")
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


def test_budget_total_is_split_over_the_members(tmp_path: Path) -> None:
    cfg = _config(tmp_path, budget={"max": 50, "report_every": 10, "total": 120})
    df = sweep(cfg, plots=False).trials
    assert (df["budget"] == 30).all() and (df["metric_population_steps"] == 120).all()


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
    files = ("pbt_schedule.csv", "pbt_lineage.csv", "best_schedule.yaml", "pbt_summary.json", "best.yaml")
    for f in (*files, "plots/pbt_schedules.png"):
        assert (out / f).is_file(), f
    lineage = pd.read_csv(out / "pbt_lineage.csv")
    assert list(lineage["event"]) == ["exploit"] * 3  # one copy per boundary (quantile 0.25 of 4)
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
