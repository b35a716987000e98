"""halve_on_stall: a population-style method written in methods/ alone, run by the population loop as is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from autorl.api import sweep
from autorl.cli import main
from autorl.methods import Member, Reconfigure
from autorl.methods.stall import HalveOnStall
from autorl.space import SearchSpace
from tests.conftest import toy

LR = {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True, "mutable": True}}
SPACE = SearchSpace.from_dict(LR)


def _member(index: int, lr: float, ret: float, failed: bool = False) -> Member:
    return Member(index, {"learning_rate": lr}, 10, ret, failed, {"train_return": ret})


def test_a_member_stalled_for_patience_intervals_has_its_learning_rate_halved_in_place() -> None:
    method = HalveOnStall(SPACE, patience=2)
    rng = np.random.default_rng(0)
    assert method.decide([_member(0, 0.04, 10.0), _member(1, 0.04, 5.0)], [], rng) == []
    assert method.decide([_member(0, 0.04, 10.0), _member(1, 0.04, 6.0)], [], rng) == []  # 0 stalls once
    decided = method.decide([_member(0, 0.04, 9.0), _member(1, 0.04, 7.0)], [], rng)
    assert decided == [Reconfigure(0, {"learning_rate": 0.02})]  # twice: halved; 1 still improves
    # never below the space's low, and a failed member is left alone
    low = HalveOnStall(SPACE, patience=1)
    low.decide([_member(0, 0.0015, 1.0), _member(1, 0.04, 1.0, failed=True)], [], rng)
    assert low.decide([_member(0, 0.0015, 1.0), _member(1, 0.04, 1.0, failed=True)], [], rng) == [
        Reconfigure(0, {"learning_rate": 1e-3})
    ]


def test_its_state_survives_a_round_trip() -> None:
    method = HalveOnStall(SPACE, patience=3)
    rng = np.random.default_rng(0)
    for ret in (5.0, 5.0, 5.0):
        method.decide([_member(0, 0.04, ret)], [], rng)
    again = HalveOnStall(SPACE, patience=3)
    again.load_state_dict(json.loads(json.dumps(method.state_dict())))
    assert again.decide([_member(0, 0.04, 5.0)], [], rng) == [Reconfigure(0, {"learning_rate": 0.02})]


def test_a_space_without_a_mutable_learning_rate_is_refused() -> None:
    frozen = SearchSpace.from_dict({"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1}})
    with pytest.raises(ValueError, match="mutable 'learning_rate'"):
        HalveOnStall(frozen)


def test_the_population_loop_runs_it_changing_members_in_place(tmp_path: Path) -> None:
    """Members plateau at 20 steps; each one's learning rate is halved after two stalled intervals,
    by a change in place (no exploit), which its live agent reports, and the method's state is kept
    in population.json."""
    cfg = {
        "target": toy("Plateau"),
        "space": {
            "learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True, "mutable": True}
        },
        "metric": "score",
        "budget": {"max": 60, "report_every": 10},
        "method": {"name": "halve_on_stall", "population": 2, "patience": 2},
        "out": str(tmp_path / "run"),
    }
    result = sweep(cfg, plots=False)
    state = json.loads((result.out / "population.json").read_text())
    assert state["exploits"] == 0 and state["method_state"]["stalled"]
    lineage = pd.read_csv(result.out / "population_lineage.csv")
    assert set(lineage["event"]) == {"reconfigure"} and len(lineage) == 2  # once per member, at step 40
    assert set(lineage["step"]) == {40}
    for m in state["members"]:
        first, last = m["schedule"][0]["learning_rate"], m["schedule"][-1]["learning_rate"]
        assert last == pytest.approx(first / 2) and m["schedule"][-1]["step"] == 40
        assert m["metrics"]["lr"] == pytest.approx(last)  # the live agent trained with the new value
    shown = CliRunner().invoke(main, ["show", str(result.out)]).output
    assert "with halve_on_stall: 2 members (2 complete)" in shown


def test_a_resumed_population_gives_the_method_its_state_back(tmp_path: Path) -> None:
    """Stopped after its fourth interval (before the method's decision on it), the run resumes with
    the method's stall counts as they were and makes that decision first: each member is halved at
    step 40, as in an uninterrupted run. Without the counts they would start again and nothing would be
    halved by step 60; without the pending decision the halving came one interval late (step 50)."""
    cfg = {
        "target": toy("Plateau"),
        "space": LR,
        "metric": "score",
        "budget": {"max": 60, "report_every": 10},
        "method": {"name": "halve_on_stall", "population": 2, "patience": 2},
        "out": str(tmp_path / "run"),
    }

    def stop(status: Any) -> None:
        if status.done >= 8:  # two members, four intervals
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(cfg, plots=False, progress=stop)
    assert json.loads((tmp_path / "run" / "population.json").read_text())["method_state"]["stalled"]
    result = sweep(cfg, plots=False, resume=True)
    lineage = pd.read_csv(result.out / "population_lineage.csv")
    assert set(lineage["event"]) == {"reconfigure"} and set(lineage["step"]) == {40}
