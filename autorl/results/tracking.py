"""Experiment tracking: TensorBoard, MLflow and Weights & Biases runs of a sweep (docs/tracking.md).

The orchestrator writes them from what it already receives (workers may be remote Ray nodes): every
intermediate report of a trial, or every interval of a population member, with all its metrics (the
engine's losses, entropy, KL, clip fraction and learning rate included), and how each one ended. A run is
keyed ``trial-N`` or ``member-N``. Each tracker is its library's own API; autorl writes no logger of its
own. A tracker that fails (a server gone) is dropped with one warning: tracking never costs a sweep.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from autorl.config import Sweep
from autorl.results.rundir import write_atomic

IDS_FILE = "tracking.json"  # the MLflow and W&B run ids of a run directory, so a resume continues them
TB_DIR = "tensorboard"
TRACKING_DB = "mlflow.db"  # MLflow's default store in the run directory
ARTIFACTS_DIR = "mlflow-artifacts"


class Sink(Protocol):
    """One tracking library's writer."""

    def start(self, key: str, config: Mapping[str, Any]) -> None: ...

    def step(self, key: str, step: int, metrics: Mapping[str, float]) -> None: ...

    def end(self, key: str, state: str, metrics: Mapping[str, float]) -> None: ...

    def close(self, summary: Mapping[str, float], files: Sequence[Path]) -> None: ...


def _finite(metrics: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[k] = float(v)
    return out


def _plain(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with values every tracker takes (numbers, strings, booleans; the rest as text)."""
    return {
        k: v if isinstance(v, (int, float, str, bool)) else json.dumps(v, default=str)
        for k, v in config.items()
    }


class Tracker:
    """The sweep's trackers; every call goes to each, and one that raises is dropped with a warning."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks
        self.started: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.sinks)

    def _each(self, call: str, *args: Any) -> None:
        for sink in list(self.sinks):
            try:
                getattr(sink, call)(*args)
            except Exception as exc:
                self.sinks.remove(sink)
                _dropped(type(sink).__name__, exc)
                with contextlib.suppress(Exception):  # what it still holds open, as best it can
                    sink.close({}, [])

    def step(
        self,
        key: str,
        step: int,
        metrics: Mapping[str, float],
        config: Mapping[str, Any],
        schedule: bool = False,
    ) -> None:
        """Run ``key``'s metrics after ``step`` budget units; its first call starts the run with ``config``
        (its hyperparameters). ``schedule``: the hyperparameters change over the run (a population
        member), so their numeric values are tracked too, as ``hparams/NAME``."""
        if not self.sinks:
            return
        if key not in self.started:
            self.started.add(key)
            self._each("start", key, _plain(config))
        if schedule:
            metrics = {**metrics, **{f"hparams/{k}": v for k, v in config.items()}}
        self._each("step", key, int(step), _finite(metrics))

    def end(self, key: str, state: str, metrics: Mapping[str, float], config: Mapping[str, Any]) -> None:
        """Run ``key`` ended (``state``: complete, pruned, fail, ...) with its final ``metrics``."""
        if not self.sinks:
            return
        if key not in self.started:  # a trial with no report (a plain function): one run all the same
            self.started.add(key)
            self._each("start", key, _plain(config))
        self.started.discard(key)
        self._each("end", key, state, _finite(metrics))

    def close(self, summary: Mapping[str, float] | None = None, files: Sequence[Path] = ()) -> None:
        """The sweep ended: its ``summary`` (the incumbent's value) and ``files`` (best.yaml, plots)."""
        self._each("close", _finite(summary or {}), [f for f in files if f.is_file()])
        self.sinks = []


def _dropped(name: str, exc: Exception) -> None:
    warnings.warn(
        f"tracking: {name} stopped after an error ({type(exc).__name__}: {exc}); "
        "the sweep goes on without it",
        RuntimeWarning,
        stacklevel=4,
    )


def tracked_outputs(out: Path) -> tuple[dict[str, float], list[Path]]:
    """A run directory's summary for the trackers (the incumbent's ``value``, from best.yaml) and the
    files they keep (best.yaml, best_schedule.yaml, trials.csv, the plots)."""
    from autorl.yamlio import load_yaml

    best = load_yaml(out / "best.yaml") if (out / "best.yaml").is_file() else {}
    value = best.get("value") if isinstance(best, dict) else None
    summary = {"value": value} if isinstance(value, (int, float)) else {}
    names = ["best.yaml", "best_schedule.yaml", "trials.csv"]
    return summary, [out / n for n in names] + sorted((out / "plots").glob("*.png"))


def open_tracker(sweep: Sweep) -> Tracker:
    """The trackers ``sweep.config.tracking`` switches on (none: a tracker that does nothing)."""
    cfg = sweep.config.tracking
    ids = _Ids(sweep.out / IDS_FILE)
    uri = None if isinstance(cfg.mlflow, bool) else cfg.mlflow
    options = cfg.wandb if isinstance(cfg.wandb, dict) else {}
    makers: list[tuple[str, Callable[[], Sink]]] = []
    if cfg.tensorboard:
        makers.append(("TensorBoardSink", lambda: TensorBoardSink(sweep)))
    if cfg.mlflow:
        makers.append(("MlflowSink", lambda: MlflowSink(sweep, uri, ids)))
    if cfg.wandb:
        makers.append(("WandbSink", lambda: WandbSink(sweep, dict(options), ids)))
    sinks: list[Sink] = []
    for name, make in makers:  # a tracker that cannot start (a server down) is left out, not the sweep
        try:
            sinks.append(make())
        except Exception as exc:
            _dropped(name, exc)
    return Tracker(sinks)


class _Ids:
    """Run ids kept in the run directory, so a resumed sweep continues the same MLflow and W&B runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, dict[str, str]] = json.loads(path.read_text()) if path.is_file() else {}

    def get(self, tracker: str, key: str) -> str | None:
        return self.data.get(tracker, {}).get(key)

    def put(self, tracker: str, key: str, value: str) -> None:
        self.data.setdefault(tracker, {})[key] = value
        write_atomic(self.path, json.dumps(self.data, indent=1))


# ------------------------------------------------------------------------------------------ TensorBoard
class TensorBoardSink:
    """Event files per trial or member under ``RUN/tensorboard/KEY`` (``tensorboard --logdir RUN``): each
    metric as a scalar over budget units, and the hyperparameters through the HParams plugin."""

    def __init__(self, sweep: Sweep) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.root = sweep.out / TB_DIR
        self.metrics = list(sweep.metrics)
        self.writer_class = SummaryWriter
        self.writers: dict[str, Any] = {}
        self.ends: dict[str, Any] = {}  # each run's session-end summary, written as it ends

    def start(self, key: str, config: Mapping[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        writer: Any = self.writer_class(str(self.root / key))
        self.writers[key] = writer
        experiment, session_start, self.ends[key] = hparams(dict(config), {m: 0.0 for m in self.metrics})
        writer.file_writer.add_summary(experiment)
        writer.file_writer.add_summary(session_start)

    def step(self, key: str, step: int, metrics: Mapping[str, float]) -> None:
        writer = self.writers[key]
        for name, value in metrics.items():
            writer.add_scalar(name, value, step)
        writer.flush()

    def end(self, key: str, state: str, metrics: Mapping[str, float]) -> None:
        from tensorboard.plugins.hparams import api_pb2

        writer, session_end = self.writers.pop(key), self.ends.pop(key)
        if state not in ("complete", "pruned"):  # the session's status: the HParams table shows it
            session_end.value[0].metadata.plugin_data.content = _session_end(api_pb2.Status.STATUS_FAILURE)
        writer.file_writer.add_summary(session_end)
        writer.close()

    def close(self, summary: Mapping[str, float], files: Sequence[Path]) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


def _session_end(status: int) -> bytes:
    from tensorboard.plugins.hparams import plugin_data_pb2

    data = plugin_data_pb2.HParamsPluginData(
        session_end_info=plugin_data_pb2.SessionEndInfo(status=status), version=0
    )
    return data.SerializeToString()


# ------------------------------------------------------------------------------------------------- MLflow
class MlflowSink:
    """A parent run for the sweep and a nested run per trial or member (params, stepped metrics, its end
    state); best.yaml and the plots as the parent's artifacts. By default a SQLite store in the run
    directory (``sqlite:///RUN/mlflow.db``), its artifacts under ``RUN/mlflow-artifacts``."""

    def __init__(self, sweep: Sweep, uri: str | None, ids: _Ids) -> None:
        from mlflow import MlflowClient

        for name in ("mlflow.store.db.utils", "alembic"):  # a new store's migrations, line by line
            logging.getLogger(name).setLevel(logging.WARNING)
        self.ids = ids
        local = uri is None
        if local:
            sweep.out.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{(sweep.out / TRACKING_DB).resolve()}"
        self.key = f"mlflow {uri}"  # the ids of one store: a resume that points elsewhere starts anew
        self.client = client = MlflowClient(tracking_uri=uri)
        name = sweep.study_name
        found = client.get_experiment_by_name(name)
        if found is not None:
            self.experiment = found.experiment_id
        else:
            where = (sweep.out / ARTIFACTS_DIR).resolve().as_uri() if local else None
            self.experiment = client.create_experiment(name, artifact_location=where)
        parent = ids.get(self.key, "sweep")
        if parent is None:
            run = client.create_run(
                self.experiment, run_name=name, tags={"autorl.target": sweep.config.target}
            )
            parent = run.info.run_id
            ids.put(self.key, "sweep", parent)
            client.log_batch(parent, params=_params({"method": sweep.method, "target": sweep.config.target}))
        else:
            client.update_run(parent, status="RUNNING")
        self.parent = parent
        self.runs: dict[str, str] = {}

    def start(self, key: str, config: Mapping[str, Any]) -> None:
        run_id = self.ids.get(self.key, key)
        if run_id is None:
            tags = {"mlflow.parentRunId": self.parent}
            run_id = self.client.create_run(self.experiment, run_name=key, tags=tags).info.run_id
            self.ids.put(self.key, key, run_id)
            self.client.log_batch(run_id, params=_params(config))
        self.runs[key] = run_id

    def step(self, key: str, step: int, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        rows = [Metric(k, v, now, step) for k, v in metrics.items()]
        self.client.log_batch(self.runs[key], metrics=rows)

    def end(self, key: str, state: str, metrics: Mapping[str, float]) -> None:
        run_id = self.runs.pop(key)
        self.client.set_tag(run_id, "autorl.state", state)
        for name, value in metrics.items():
            self.client.set_tag(run_id, f"autorl.final.{name}", f"{value:.10g}")
        status = {"complete": "FINISHED", "pruned": "FINISHED", "interrupted": "KILLED"}.get(state, "FAILED")
        self.client.set_terminated(run_id, status=status)

    def close(self, summary: Mapping[str, float], files: Sequence[Path]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        if summary:
            self.client.log_batch(
                self.parent, metrics=[Metric(f"best_{k}", v, now, 0) for k, v in summary.items()]
            )
        for path in files:
            self.client.log_artifact(self.parent, str(path))
        for key in list(self.runs):  # still running when the sweep stopped
            self.end(key, "interrupted", {})
        self.client.set_terminated(self.parent)


def _params(config: Mapping[str, Any]) -> list[Any]:
    from mlflow.entities import Param

    return [Param(k, str(v)[:6000]) for k, v in config.items()]


# ---------------------------------------------------------------------------------------- Weights & Biases
class WandbSink:
    """A W&B run per trial or member, grouped by the sweep, its metrics over ``budget`` (the x axis),
    its hyperparameters as the run's config. ``mode: offline`` (or ``WANDB_MODE=offline``) writes the
    runs under ``RUN/wandb`` for ``wandb sync`` later."""

    def __init__(self, sweep: Sweep, options: dict[str, Any], ids: _Ids) -> None:
        import wandb

        self.wandb, self.ids, self.dir = wandb, ids, sweep.out
        self.options = {"project": "autorl", "group": sweep.study_name, **options}
        self.job = "member" if sweep.spec.population else "trial"
        self.runs: dict[str, Any] = {}
        sweep.out.mkdir(parents=True, exist_ok=True)

    def start(self, key: str, config: Mapping[str, Any]) -> None:
        wandb = self.wandb
        run_id = self.ids.get("wandb", key)
        if run_id is None:
            run_id = uuid.uuid4().hex[:12]
            self.ids.put("wandb", key, run_id)
        run = wandb.init(
            id=run_id,
            resume="allow",
            name=key,
            config=dict(config),
            dir=str(self.dir),
            reinit="create_new",
            settings=wandb.Settings(silent=True, console="off"),
            **{"job_type": self.job, **self.options},
        )
        run.define_metric("budget")
        run.define_metric("*", step_metric="budget")
        self.runs[key] = run

    def step(self, key: str, step: int, metrics: Mapping[str, float]) -> None:
        self.runs[key].log({**metrics, "budget": step})

    def end(self, key: str, state: str, metrics: Mapping[str, float]) -> None:
        run = self.runs.pop(key)
        run.summary.update({**metrics, "state": state})
        run.finish(exit_code=0 if state in ("complete", "pruned") else 1)

    def close(self, summary: Mapping[str, float], files: Sequence[Path]) -> None:
        for key in list(self.runs):
            self.end(key, "interrupted", {})
