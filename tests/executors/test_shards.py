"""A batched population (the engine) split into shards, one worker process of one torch thread each:
every member trains as in one process, copies cross shards, and a resumed run keeps its shards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from autorl.api import sweep
from autorl.config import parse_sweep
from autorl.executors.population import BatchedHosts, PopulationState, evaluates_every_interval


def _pbt(tmp_path: Path, workers: int) -> dict[str, Any]:
    return {
        "target": "engine:ppo",
        "args": {"env": "CartPole-v1", "n_envs": 8, "n_steps": 16, "n_epochs": 2, "eval_episodes": 4},
        "space": {
            "learning_rate": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True, "mutable": True},
            "ent_coef": {"type": "float", "low": 1e-8, "high": 0.1, "log": True, "mutable": True},
        },
        "method": {"name": "pbt", "population": 6},
        "budget": {"max": 1280, "report_every": 640},  # 10 updates in two intervals, copies between
        "workers": workers,
        "seed": 1,
        "out": str(tmp_path / f"w{workers}"),
    }


def _thetas(out: Path) -> dict[int, torch.Tensor]:
    """Each member's final network, read from its shard's checkpoint."""
    state = json.loads((out / "population.json").read_text())
    shards = state["shards"]
    thetas = {}
    for path in {m["checkpoint"] for m in state["members"]}:
        saved = torch.load(out / path / "engine.pt", weights_only=True)
        shard = int(path.split("/")[1].removeprefix("engine-"))
        members = sorted(m["index"] for m in state["members"] if m["index"] % shards == shard)
        for group in saved["groups"]:
            for slot, b in enumerate(group["members"]):
                thetas[members[b]] = group["pop"]["members"]["theta"][slot]
    return thetas


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    tmp = tmp_path_factory.mktemp("shards")
    return {w: sweep(_pbt(tmp, w), plots=False).out for w in (1, 2)}


def test_a_sharded_population_trains_every_member_as_one_process_does(runs: dict[int, Path]) -> None:
    one, two = runs[1], runs[2]
    assert json.loads((two / "population.json").read_text())["shards"] == 2
    lineage = {w: pd.read_csv(runs[w] / "population_lineage.csv") for w in runs}
    assert len(lineage[1]) and lineage[1].equals(lineage[2])  # the same copies, decided alike
    exploits = lineage[2][lineage[2]["event"] == "exploit"]
    assert (exploits["donor"] % 2 != exploits["member"] % 2).any()  # some crossed shards
    a, b = _thetas(one), _thetas(two)
    assert a.keys() == b.keys() == set(range(6))
    for m in a:
        assert float((a[m] - b[m]).norm() / a[m].norm()) < 1e-4, m
    values = {w: pd.read_csv(runs[w] / "trials.csv").set_index("member")["value"] for w in runs}
    assert values[1].equals(values[2])


class _Backend:
    """Where hosts would submit jobs: only its size matters here."""

    def __init__(self, size: int) -> None:
        self.size = size


def test_a_resumed_population_keeps_the_shards_it_started_with(tmp_path: Path) -> None:
    sw = parse_sweep(_pbt(tmp_path, 2))
    fresh = PopulationState([], {})
    BatchedHosts(sw, _Backend(2), None).place(fresh)  # type: ignore[arg-type]
    assert fresh.shards == 2
    hosts = BatchedHosts(sw, _Backend(1), None)  # type: ignore[arg-type]  # resumed with workers: 1
    hosts.place(fresh)
    assert hosts.shards == 2 and hosts.shard(3) == 1  # its checkpoints are per shard: two, on one worker


def test_a_save_covers_every_unsaved_shard_so_population_json_can_name_them_all(tmp_path: Path) -> None:
    """population.json is written only when every shard's checkpoint is: a save that comes due in a
    round for one shard (a copy's, say) writes the other unsaved shards too."""
    from autorl.executors import open_backend
    from autorl.executors.population import _new_state

    sw = parse_sweep({**_pbt(tmp_path, 2), "checkpoint_every": 3600})  # never due by the clock here
    backend = open_backend(sw)
    try:
        hosts = BatchedHosts(sw, backend, None)
        state = _new_state(sw)
        hosts.place(state)
        hosts.train(state.members, {m.index: 128 for m in state.members})
        assert hosts.unsaved == {0, 1} and not hosts.saved
        hosts._run(state.members, {0: {}}, save=True)  # one shard's round, with a save due
        assert hosts.saved
        for m in state.members:  # every member names a checkpoint that exists
            assert m.checkpoint and (sw.out / m.checkpoint / "engine.pt").is_file()
    finally:
        backend.close()


@pytest.mark.slow  # ~4 s: a worker killed mid-job
def test_a_worker_that_dies_takes_every_shard_it_held(tmp_path: Path) -> None:
    """Two shards on one worker (a population resumed with fewer workers): when the worker dies under
    one shard's job, both shards' live batches are gone, so every member of both gets a died result
    (the loop fails them) and both batches come back from their checkpoints."""
    from autorl.executors import open_backend
    from autorl.executors.population import _new_state

    sw = parse_sweep({**_pbt(tmp_path, 1), "checkpoint_every": 3600})
    backend = open_backend(sw)  # one worker
    try:
        hosts = BatchedHosts(sw, backend, None)
        state = _new_state(sw)
        state.shards = 2
        hosts.place(state)
        hosts.train(state.members, {m.index: 128 for m in state.members})  # both live in the one worker
        hosts.timeout = 0.0  # the next job overruns at once: its worker is killed
        results = hosts.train(state.members, {0: 100_000})  # shard 0's job only
        assert sorted(results) == list(range(6)) and all(r.failure is not None for r in results.values())
        assert hosts.live == {0: None, 1: None} and hosts.saved
    finally:
        backend.close()


def test_a_population_deciding_on_training_returns_is_evaluated_once_per_member(tmp_path: Path) -> None:
    """``decide_on: train_return`` ranks members by their training episodes: between intervals nothing
    is evaluated, and each member's value is the evaluation after its last interval, the same number
    (its evaluation stream moves as if every interval had been evaluated) as when every interval is."""
    runs = {}
    for name, extra in (("evaluated", {}), ("train", {"decide_on": "train_return"})):
        cfg = _pbt(tmp_path, 1) | {"out": str(tmp_path / name), "budget": {"max": 1920, "report_every": 640}}
        cfg["method"] = {"name": "pbt", "population": 4, "exploit": False, **extra}  # the same members
        runs[name] = json.loads((sweep(cfg, plots=False).out / "population.json").read_text())["members"]
    for every, once in zip(runs["evaluated"], runs["train"], strict=True):
        assert len(every["curve"]) == 3  # one evaluation per interval
        assert list(once["curve"]) == [max(every["curve"], key=int)]  # only its last interval
        assert once["score"] == every["score"] and once["score"] is not None
        assert once["metrics"]["train_return"] == every["metrics"]["train_return"]


def test_a_population_evaluates_every_interval_only_where_something_reads_it(tmp_path: Path) -> None:
    """The sweep's metric a training metric (``metric: train_return``) is read from every interval's
    training like ``decide_on: train_return``, so neither evaluates between intervals; the target's
    own metric, a tracker, a value other than the last and a time budget do."""
    base = _pbt(tmp_path, 1)

    def every(tracked: bool = False, **changes: Any) -> bool:
        return evaluates_every_interval(parse_sweep({**base, **changes}), tracked)

    pbt = {"name": "pbt", "population": 2}
    assert every()  # the default metric, eval_return: only an evaluation gives it
    assert not every(metric="train_return")
    assert not every(method={**pbt, "decide_on": "train_return"})
    assert every(True, metric="train_return")
    assert every(metric="train_return", value={"select": "mean_last", "k": 2})
    assert every(metric="train_return", budget={**base["budget"], "time": 60})


def test_pbt_deciding_on_training_returns_copies_by_them(tmp_path: Path) -> None:
    """The copies follow the members' training returns: each copy's donor had the higher one."""
    cfg = _pbt(tmp_path, 1) | {"out": str(tmp_path / "run"), "budget": {"max": 1920, "report_every": 640}}
    cfg["method"] = {"name": "pbt", "population": 4, "decide_on": "train_return"}
    out = sweep(cfg, plots=False).out
    lineage = pd.read_csv(out / "population_lineage.csv")
    copies = lineage[lineage["event"] == "exploit"]
    assert len(copies)
    assert (copies["donor_score"] >= copies["member_score"]).all()
    state = json.loads((out / "population.json").read_text())
    assert all(len(m["curve"]) == 1 for m in state["members"])  # one evaluation each


def test_a_member_whose_interval_before_the_last_passes_the_budget_is_evaluated(tmp_path: Path) -> None:
    """Whole rollouts of 128 steps towards a budget of 1,000 in intervals of 300: the third interval
    asks for 900 and trains to 1,024, past the budget, so it is the member's last: evaluated there."""
    cfg = _pbt(tmp_path, 1) | {"out": str(tmp_path / "run"), "budget": {"max": 1000, "report_every": 300}}
    cfg["method"] = {"name": "pbt", "population": 2, "decide_on": "train_return"}
    out = sweep(cfg, plots=False).out
    state = json.loads((out / "population.json").read_text())
    for m in state["members"]:
        assert m["steps"] == 1024 and list(m["curve"]) == ["1024"] and m["score"] is not None
    assert (pd.read_csv(out / "trials.csv")["state"] == "COMPLETE").all()
