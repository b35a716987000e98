"""Experiment tracking read back with each library's own reader: TensorBoard's event files (per-step
scalars, hparams), MLflow's store (nested runs, stepped metrics, artifacts), W&B's offline run files."""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from autorl.api import sweep
from autorl.config import parse_sweep
from autorl.errors import ConfigError
from autorl.results.tracking import Tracker

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")
pytest.importorskip("wandb")

TRIALS = 3


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One sweep of a learning curve with every tracker on (W&B offline): its run directory."""
    out = tmp_path_factory.mktemp("tracking") / "run"  # the group name is not in its path
    sweep(
        {
            "name": "tracked-sweep",
            "target": "synthetic:curve",
            "budget": {"max": 100, "report_every": 25},
            "method": "random",
            "trials": TRIALS,
            "tracking": {"tensorboard": True, "mlflow": True, "wandb": {"mode": "offline"}},
            "out": str(out),
        }
    )
    return out


def _curve(out: Path, number: int) -> list[tuple[int, float]]:
    """Trial ``number``'s reported curve as the sweep recorded it (curves.csv)."""
    curves = pd.read_csv(out / "curves.csv")
    rows = curves[curves["trial"] == number]
    return list(zip(rows["step"].astype(int), rows["value"], strict=True))


def _same(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    assert [s for s, _ in got] == [s for s, _ in want]
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)  # float32 events


def test_tensorboard_holds_each_trials_curve_per_step_and_its_hparams(tracked: Path) -> None:
    from tensorboard.plugins.hparams import plugin_data_pb2

    trials = pd.read_csv(tracked / "trials.csv")
    assert sorted(p.name for p in (tracked / "tensorboard").iterdir()) == [
        f"trial-{i}" for i in range(TRIALS)
    ]
    for number in range(TRIALS):
        events = _events(tracked, f"trial-{number}")
        got = [(e.step, e.value) for e in events.Scalars("score")]
        _same(got, _curve(tracked, number))
        assert [s for s, _ in got] == [25, 50, 75, 100]
        data = {
            tag: plugin_data_pb2.HParamsPluginData.FromString(content)
            for tag, content in events.PluginTagToContent("hparams").items()
        }
        start = data["_hparams_/session_start_info"].session_start_info.hparams
        row = trials[trials["trial"] == number].iloc[0]
        assert start["x"].number_value == pytest.approx(row["x"])
        assert start["lr"].number_value == pytest.approx(row["lr"])
        assert [m.name.tag for m in data["_hparams_/experiment"].experiment.metric_infos] == ["score"]
        assert data["_hparams_/session_end_info"].session_end_info.status == 1  # STATUS_SUCCESS


def test_mlflow_nests_a_run_per_trial_under_the_sweeps_with_stepped_metrics(tracked: Path) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tracked / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tracked-sweep")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parent = [r for r in runs if r.info.run_name == "tracked-sweep"]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    children = {
        r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent[0].info.run_id
    }
    assert sorted(children) == [f"trial-{i}" for i in range(TRIALS)]
    for number in range(TRIALS):
        run = children[f"trial-{number}"]
        assert run.info.status == "FINISHED" and run.data.tags["autorl.state"] == "complete"
        assert set(run.data.params) == {"x", "lr"}
        history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "score"))
        _same(history, _curve(tracked, number))
    artifacts = {a.path for a in client.list_artifacts(parent[0].info.run_id)}
    assert {"best.yaml", "trials.csv", "curves.png"} <= artifacts
    assert (tracked / "mlflow-artifacts").is_dir()  # the artifacts stay inside the run directory


def test_wandb_writes_an_offline_run_per_trial_inside_the_run_directory(tracked: Path) -> None:
    ids = json.loads((tracked / "tracking.json").read_text())["wandb"]
    assert sorted(ids) == [f"trial-{i}" for i in range(TRIALS)]
    assert len(list((tracked / "wandb").glob("offline-run-*"))) == TRIALS
    for key, run_id in ids.items():
        (log,) = (tracked / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb")
        data = log.read_bytes()  # W&B's record log: the run's name, group, config and history keys
        for text in (key, "tracked-sweep", "score", "budget", "lr"):  # name, group (the sweep), keys
            assert text.encode() in data, text


def _engine_sweep(out: Path, **extra: Any) -> None:
    """A tiny engine:ppo sweep on CartPole with TensorBoard tracking on."""
    sweep(
        {
            "target": "engine:ppo",
            "args": {"env": "CartPole-v1", "n_envs": 4, "n_steps": 16, "n_epochs": 1, "n_minibatches": 2},
            "tracking": {"tensorboard": True},
            "out": str(out),
            **extra,
        },
        plots=False,
    )


def _events(out: Path, key: str) -> Any:
    """The TensorBoard run ``key`` of run directory ``out``, read back by TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard" / key))
    events.Reload()
    return events


def test_a_population_tracks_each_members_training_statistics_and_schedule(tmp_path: Path) -> None:
    lr = {"type": "float", "low": 1e-4, "high": 1e-2, "log": True, "mutable": True}
    _engine_sweep(tmp_path / "run", space={"learning_rate": lr}, budget={"max": 256, "report_every": 128},
                  method={"name": "pbt", "population": 2})  # fmt: skip
    for member in (0, 1):
        events = _events(tmp_path / "run", f"member-{member}")
        want = {"approx_kl", "clip_fraction", "entropy_loss", "learning_rate", "hparams/learning_rate"}
        assert want <= set(events.Tags()["scalars"])
        assert [e.step for e in events.Scalars("eval_return")] == [128, 256]
        # the learning rate the engine trained with is the member's hyperparameter at each interval
        trained = [e.value for e in events.Scalars("learning_rate")]
        chosen = [e.value for e in events.Scalars("hparams/learning_rate")]
        assert trained == pytest.approx(chosen, rel=1e-6)


def test_a_tracked_population_deciding_on_training_returns_is_evaluated_every_interval(
    tmp_path: Path,
) -> None:
    """The trackers read every interval's evaluation, so a tracked population evaluates them all, as
    a tracked batch does (untracked, it would evaluate only the last)."""
    lr = {"type": "float", "low": 1e-4, "high": 1e-2, "log": True, "mutable": True}
    _engine_sweep(tmp_path / "run", space={"learning_rate": lr}, budget={"max": 256, "report_every": 128},
                  method={"name": "pbt", "population": 2, "decide_on": "train_return"})  # fmt: skip
    for member in (0, 1):
        events = _events(tmp_path / "run", f"member-{member}")
        assert [e.step for e in events.Scalars("train_return")] == [128, 256]
        assert [e.step for e in events.Scalars("eval_return")] == [128, 256]


def test_a_batch_of_engine_trials_tracks_each_trials_training_statistics_per_report(tmp_path: Path) -> None:
    lr = {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}
    _engine_sweep(tmp_path / "run", space={"learning_rate": lr}, budget={"max": 128, "report_every": 64},
                  method="random", trials=2, batch=2)  # fmt: skip
    for number in (0, 1):
        events = _events(tmp_path / "run", f"trial-{number}")
        assert {"approx_kl", "policy_loss", "train_return"} <= set(events.Tags()["scalars"])
        assert [e.step for e in events.Scalars("eval_return")] == [64, 128]
        _same([(e.step, e.value) for e in events.Scalars("eval_return")], _curve(tmp_path / "run", number))


def test_tracking_a_library_that_is_not_installed_is_refused_naming_the_extra(
    make_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else found(name, *a)
    )
    with pytest.raises(ConfigError) as err:
        parse_sweep(make_config(tracking={"wandb": True}), "sweep.yaml")
    want = "tracking.wandb: wandb is not installed: pip install 'autorl[wandb]' (or pip install wandb)"
    assert str(err.value) == f"sweep.yaml: {want}"
    with pytest.raises(ConfigError, match=r"sweep.yaml: tracking.wandb: .*'colour' is not one of them"):
        parse_sweep(make_config(tracking={"wandb": {"colour": "red"}}), "sweep.yaml")


class _Broken:
    def __init__(self) -> None:
        self.calls = 0

    def start(self, key: str, config: Any) -> None:
        self.calls += 1
        raise ConnectionError("tracking server gone")


class _Kept:
    def __init__(self) -> None:
        self.steps: list[tuple[str, int, dict[str, float]]] = []

    def start(self, key: str, config: Any) -> None:
        pass

    def step(self, key: str, step: int, metrics: dict[str, float]) -> None:
        self.steps.append((key, step, dict(metrics)))


def test_a_tracker_that_fails_is_dropped_with_one_warning_and_the_others_go_on() -> None:
    broken, kept = _Broken(), _Kept()
    tracker = Tracker([broken, kept])  # type: ignore[list-item]
    with pytest.warns(RuntimeWarning, match="_Broken stopped after an error .*tracking server gone"):
        tracker.step("trial-0", 10, {"value": 1.0, "loss": float("nan")}, {"lr": 0.1})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tracker.step("trial-0", 20, {"value": 2.0}, {"lr": 0.1})
    assert broken.calls == 1
    # non-finite values are left out; the rest arrive with their steps
    assert kept.steps == [("trial-0", 10, {"value": 1.0}), ("trial-0", 20, {"value": 2.0})]
