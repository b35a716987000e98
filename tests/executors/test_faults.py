"""Fault injection: a trial that kills, hangs or floods its process costs one trial, recorded FAIL with
how it ended; signals stop a sweep cleanly; nothing is lost, and a resume finishes the job."""

from __future__ import annotations

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
from tests.conftest import toy

AUTORL = [sys.executable, "-m", "autorl.cli"]
FAULTS = ["none", "segfault", "exit", "sys_exit", "print"]
HOW = {"segfault": "signal SIGSEGV", "exit": "exit code 3"}


def _config(tmp_path: Path, faults: list[str], **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "target": toy("faulty"),
        "space": {
            "x": {"type": "float", "low": 0.0, "high": 1.0},
            "fault": {"type": "categorical", "choices": faults},
        },
        "method": {"name": "grid", "points": 1},
        "trials": len(faults),
        "out": str(tmp_path / "run"),
    }
    cfg.update(over)
    return cfg


@pytest.mark.parametrize("workers", [1, 2])
def test_a_trial_that_kills_its_process_costs_that_trial_only(tmp_path: Path, workers: int) -> None:
    result = sweep(_config(tmp_path, FAULTS, workers=workers), plots=False)
    df = result.trials.set_index("fault")
    assert len(df) == len(FAULTS)
    assert df.loc["none", "state"] == "COMPLETE" and df.loc["print", "state"] == "COMPLETE"
    for fault, how in HOW.items():
        assert df.loc[fault, "state"] == "FAIL" and df.loc[fault, "exit"] == how
        assert "WorkerDied" in df.loc[fault, "error"]
    assert df.loc["sys_exit", "state"] == "FAIL" and df.loc["sys_exit", "error"] == "SystemExit: 3"
    # every trial's output is in its own log, named in its row
    for fault, row in df.iterrows():
        log = (result.out / row["log"]).read_text()
        assert f"fault={fault}" in log
    assert "to stderr" in (result.out / df.loc["print", "log"]).read_text()


def test_resume_after_crashing_trials_goes_on_with_new_configs(tmp_path: Path) -> None:
    cfg = _config(tmp_path, ["segfault"], method="random", trials=2)
    first = sweep(cfg, plots=False).trials
    again = sweep({**cfg, "trials": 4}, plots=False, resume=True).trials  # trials may grow on resume
    assert len(again) == 4 and (again["state"] == "FAIL").all() and (again["exit"] == "signal SIGSEGV").all()
    assert again["x"].nunique() == 4 and again["x"].iloc[:2].tolist() == first["x"].tolist()


def test_a_hanging_trial_is_ended_by_trial_timeout(tmp_path: Path) -> None:
    start = time.monotonic()
    result = sweep(_config(tmp_path, ["none", "hang"], trial_timeout="2s"), plots=False)
    df = result.trials.set_index("fault")
    assert df.loc["hang", "state"] == "FAIL" and df.loc["hang", "exit"] == "timeout after 2 s"
    assert df.loc["none", "state"] == "COMPLETE" and time.monotonic() - start < 30


def test_trial_memory_caps_a_worker_so_an_allocation_fails_the_trial(tmp_path: Path) -> None:
    space = {"x": {"type": "float", "low": 0.0, "high": 1.0}, "fault": {"type": "fixed", "value": "memory"}}
    cfg = _config(tmp_path, ["memory"], space={**space, "gb": {"type": "categorical", "choices": [0.01, 8]}})
    cfg.update(trials=2, trial_memory="2GB", method={"name": "grid", "points": 1})
    df = sweep(cfg, plots=False).trials.set_index("gb")
    assert df.loc[0.01, "state"] == "COMPLETE"
    assert df.loc[8, "state"] == "FAIL" and df.loc[8, "error"].startswith("MemoryError")


def _wait_for_trials(out: Path, n: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = list((out / "logs").glob("*.log")) if (out / "logs").is_dir() else []
        if len(logs) >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"{n} trials did not start")


@pytest.mark.slow  # Ctrl-C is tested by default; SIGTERM takes 6 s
def test_sigterm_stops_a_sweep_like_ctrl_c_and_resume_finishes_it(tmp_path: Path) -> None:
    cfg = {
        "target": toy("slow"),
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}, "sleep": {"type": "fixed", "value": 1.0}},
        "budget": {"max": 1},
        "method": "random",
        "trials": 6,
        "workers": 2,
        "out": str(tmp_path / "run"),
    }
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen(
        [*AUTORL, "sweep", str(path), "--no-plots"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for_trials(tmp_path / "run", 3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "resume with:" in err
    df = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert df["interrupted"].any() and not (df["state"] == "RUNNING").any()
    res = subprocess.run(
        [*AUTORL, "sweep", str(path), "--no-plots", "--resume", "--quiet"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr[-2000:]
    df = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert (df["state"] == "COMPLETE").sum() == 6


@pytest.mark.slow  # two sweep processes, 5 s
def test_a_second_process_on_a_run_directory_is_refused_naming_the_owner(tmp_path: Path) -> None:
    cfg = {
        "target": toy("slow"),
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}, "sleep": {"type": "fixed", "value": 0.5}},
        "budget": {"max": 1},
        "method": "random",
        "trials": 8,
        "out": str(tmp_path / "run"),
    }
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump(cfg))
    first = subprocess.Popen(
        [*AUTORL, "sweep", str(path), "--quiet", "--no-plots"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_trials(tmp_path / "run", 1)
        for extra in ([], ["--resume"]):  # a duplicate sweep, and a resume beside the live one
            second = subprocess.run(
                [*AUTORL, "sweep", str(path), "--quiet", *extra], capture_output=True, text=True
            )
            assert second.returncode == 2
            assert (
                f"is in use by pid {first.pid}" in second.stderr
                and len(second.stderr.strip().splitlines()) == 1
            )
        first.communicate(timeout=120)
        assert first.returncode == 0
    finally:
        if first.poll() is None:
            first.kill()
    df = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert len(df) == 8 and (df["state"] == "COMPLETE").all()  # the owner was not disturbed
