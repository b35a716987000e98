"""What a person reads: progress with an estimate from budget units, a line per trial off a terminal,
tables with the user's values, and the train/replay/reeval summaries."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from autorl.api import sweep
from autorl.results.status import SweepStatus, duration
from tests.conftest import toy

AUTORL = [sys.executable, "-m", "autorl.cli"]


def test_the_estimate_comes_from_units_per_second_against_the_units_left() -> None:
    s = SweepStatus("trials", total=10, started=time.monotonic() - 10.0)
    assert s.eta is None  # nothing spent yet: no estimate
    s.units_done, s.units_left = 500.0, 1500.0
    assert s.eta == pytest.approx(30.0, rel=0.05)
    assert duration(3725) == "1:02:05" and duration(65) == "1:05" and duration(None) == "-"


def test_a_multi_fidelity_sweep_reports_units_and_the_plan_shrinks_as_trials_are_pruned(
    make_config: Any,
) -> None:
    seen: list[SweepStatus] = []
    cfg = make_config(
        target=toy("curve"),
        metric="score",
        direction="maximize",
        method={"name": "asha", "reduction_factor": 3},
        trials=12,
        budget={"max": 27, "min": 3, "report_every": 3},
        space={"x": {"type": "float", "low": -1.0, "high": 1.0}},
    )
    sweep(cfg, plots=False, progress=lambda s: seen.append(SweepStatus(**{**vars(s)})))
    assert seen[-1].done == 12 and seen[-1].total == 12 and seen[-1].units_left == 0
    lefts = [s.units_left for s in seen]
    assert 11 * 27 < lefts[0] <= 12 * 27  # before anything is known: every trial to budget.max
    assert min(lefts[:-1]) < lefts[0] and seen[-1].units_done == sum(
        pd.read_csv(Path(cfg["out"]) / "trials.csv")["budget"]
    )
    assert any(s.eta is not None for s in seen[1:])
    assert any(s.line.startswith("trial ") and " pruned " in s.line + " " for s in seen)


def test_a_population_counts_member_intervals(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    cfg = {
        "target": toy("Toy"),
        "space": {"lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True, "mutable": True}},
        "metric": "score",
        "budget": {"max": 40, "report_every": 10},
        "method": {"name": "pbt", "population": 4},
        "out": str(tmp_path / "pbt"),
    }
    sweep(cfg, plots=False, progress=lambda s: seen.append((s.done, s.total)))
    assert seen[0] == (4, 16) and seen[-1] == (16, 16)  # 4 members x 4 intervals


def test_off_a_terminal_a_sweep_prints_a_line_per_finished_trial(make_config: Any, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(make_config(trials=4)))
    res = subprocess.run([*AUTORL, "sweep", str(path), "--no-plots"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("trial ")]
    assert len(lines) == 4 and all(" complete value=" in line and "/4 trials" in line for line in lines)


def test_tables_show_the_users_values_without_exponents(tmp_path: Path) -> None:
    cfg = {
        "target": toy("Counter"),
        "space": {
            "x": {"type": "float", "low": 0.0, "high": 1.0},
            "gamma": {"type": "float", "low": 0.9, "high": 0.9999, "log": True, "transform": "one_minus"},
            "n": {"type": "int", "low": 16, "high": 1024, "transform": "pow2"},
        },
        "metric": "value",
        "budget": {"max": 20480, "report_every": 10240},
        "method": "random",
        "trials": 3,
        "out": str(tmp_path / "run"),
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = subprocess.run(
        [*AUTORL, "sweep", str(path), "--quiet", "--no-plots"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert "20,480" in res.stdout and "e+04" not in res.stdout
    assert "gamma=" in res.stdout and "one_minus_gamma" not in res.stdout and "log2_n" not in res.stdout
    df = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert {"one_minus_gamma", "log2_n"} <= set(df.columns)  # the searched values stay in trials.csv


def test_train_and_reeval_print_a_table_with_mean_and_spread(make_config: Any, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(make_config(target=toy("noisy"), trials=3)))
    assert (
        subprocess.run([*AUTORL, "sweep", str(path), "--quiet", "--no-plots"], capture_output=True).returncode
        == 0
    )
    out = Path(make_config()["out"])
    res = subprocess.run([*AUTORL, "train", str(out / "best.yaml")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "mean" in res.stdout and "std" in res.stdout and res.stderr.count("run ") == 3
    res = subprocess.run(
        [*AUTORL, "reeval", str(out), "--top", "2", "--seeds", "2"], capture_output=True, text=True
    )
    assert (
        res.returncode == 0 and "value mean" in res.stdout and "IQM" in res.stdout and "run 4/4" in res.stderr
    )


def test_a_resumed_sweep_names_interrupted_trials_as_such() -> None:
    from autorl.cli import _summary

    df = pd.DataFrame({"state": ["COMPLETE", "FAIL", "FAIL"], "interrupted": [False, True, False]})
    assert _summary(df) == "1 complete, 1 fail, 1 interrupted"
