"""Budgets of a whole sweep: budget.total (units) and budget.time (wall clock, summed across resumes)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from autorl.api import sweep
from tests.conftest import toy


def _slow(tmp_path: Path, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "target": toy("slow"),
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}, "sleep": {"type": "fixed", "value": 0.4}},
        "budget": {"max": 1, "time": "4s"},  # a worker may take 2 s to start on a loaded machine
        "method": "random",
        "trials": 100,
        "out": str(tmp_path / "run"),
    }
    cfg.update(over)
    return cfg


def test_budget_time_stops_the_sweep_and_running_trials_are_interrupted_not_complete(tmp_path: Path) -> None:
    start = time.monotonic()
    result = sweep(_slow(tmp_path), plots=False)
    took = time.monotonic() - start
    df = result.trials
    assert took < 15 and 2 <= (df["state"] == "COMPLETE").sum() < 100
    interrupted = df[df["interrupted"]]
    assert len(interrupted) <= 1 and (interrupted["state"] == "FAIL").all()  # the one stopped mid-trial
    assert (result.out / "trials.csv").is_file() and (result.out / "best.yaml").is_file()


@pytest.mark.slow  # three sweeps of 4-8 s of budget.time
def test_budget_time_is_summed_across_resumes(tmp_path: Path) -> None:
    cfg = _slow(tmp_path)
    first = sweep(cfg, plots=False).trials
    again = sweep(cfg, plots=False, resume=True).trials  # the 4 s are spent: nothing more runs
    assert (again["state"] == "COMPLETE").sum() == (first["state"] == "COMPLETE").sum()
    more = sweep({**cfg, "budget": {"max": 1, "time": "8s"}}, plots=False, resume=True).trials
    assert (more["state"] == "COMPLETE").sum() > (first["state"] == "COMPLETE").sum()


def test_a_plain_function_needs_no_budget_at_all(tmp_path: Path) -> None:
    cfg = {
        "target": toy("quad"),
        "space": {"x": {"type": "float", "low": -1.0, "high": 1.0}},
        "direction": "minimize",
        "trials": 3,
        "out": str(tmp_path / "run"),
    }
    assert len(sweep(cfg, plots=False).trials) == 3


@pytest.mark.slow  # ~4 s; budget.time's stop stays in the fast suite
def test_a_sweep_ended_by_budget_time_reports_no_failure(tmp_path: Path) -> None:
    """The trial that budget.time cut off is interrupted, not failed: the summary does not call it a
    failure (it said "1 trial(s) failed; first error: Interrupted: budget.time is spent")."""
    import yaml
    from click.testing import CliRunner

    from autorl.cli import main

    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump(_slow(tmp_path, workers=2)))
    res = CliRunner().invoke(main, ["sweep", str(path), "--quiet", "--no-plots"])
    assert res.exit_code == 0, res.output
    assert "interrupted" in res.output and "failed" not in res.output, res.output
