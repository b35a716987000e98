"""Processes that share one study on a real PostgreSQL server: no config run twice, a killed process's
trial reclaimed through Optuna's heartbeat, and the password never written or printed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from tests.conftest import PG_PASSWORD, toy

pytestmark = pytest.mark.slow  # starts a PostgreSQL server and several sweep processes
AUTORL = [sys.executable, "-m", "autorl.cli"]


def _write(tmp_path: Path, name: str, **over: Any) -> Path:
    cfg = {
        "name": name,
        "target": toy("slow"),
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}, "sleep": {"type": "fixed", "value": 0.2}},
        "budget": {"max": 1},
        "method": "random",
        "trials": 16,
        "seed": 0,  # every process is started with the same seed
        **over,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _sweep(path: Path, out: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*AUTORL, "sweep", str(path), "--out", str(out), "--no-plots", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_with_one_seed_propose_different_configs(tmp_path: Path, postgres: str) -> None:
    name = f"two-{uuid.uuid4().hex[:8]}"
    path = _write(tmp_path, name)
    env = {**os.environ, "AUTORL_STORAGE": postgres}
    procs = [_sweep(path, tmp_path / f"out{i}", env, "--quiet") for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err[-2000:]
    trials = optuna.load_study(study_name=name, storage=postgres).get_trials()
    assert 16 <= len(trials) <= 17 and all(t.state.name == "COMPLETE" for t in trials)
    xs = [round(t.params["x"], 12) for t in trials]
    assert len(set(xs)) == len(xs)  # each process drew its own stream
    runs = [json.loads((tmp_path / f"out{i}" / "run.json").read_text()) for i in range(2)]
    assert runs[0]["stream"] != runs[1]["stream"]
    # `autorl show` on either directory shows the whole study
    for i in range(2):
        shown = subprocess.run(
            [*AUTORL, "show", str(tmp_path / f"out{i}")], env=env, capture_output=True, text=True
        )
        assert shown.returncode == 0 and f"{len(trials)} of 16 trials" in shown.stdout


def test_a_killed_processs_running_trial_is_reclaimed_by_the_others(tmp_path: Path, postgres: str) -> None:
    name = f"reclaim-{uuid.uuid4().hex[:8]}"
    path = _write(
        tmp_path,
        name,
        trials=8,
        space={"x": {"type": "float", "low": 0.0, "high": 1.0}, "sleep": {"type": "fixed", "value": 2.0}},
    )
    env = {**os.environ, "AUTORL_STORAGE": postgres, "AUTORL_HEARTBEAT_S": "1", "AUTORL_GRACE_S": "4"}
    victim = _sweep(path, tmp_path / "victim", env, "--quiet")
    deadline = time.monotonic() + 60
    study = None
    while time.monotonic() < deadline:
        try:
            study = optuna.load_study(study_name=name, storage=postgres)
            if any(t.state.name == "RUNNING" for t in study.get_trials()):
                break
        except KeyError:
            pass
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    survivor = _sweep(path, tmp_path / "survivor", env, "--quiet")
    _, err = survivor.communicate(timeout=240)
    assert survivor.returncode == 0, err[-2000:]
    trials = optuna.load_study(study_name=name, storage=postgres).get_trials()
    assert not any(t.state.name == "RUNNING" for t in trials)  # the dead one's trial was failed ...
    stale = [t for t in trials if t.state.name == "FAIL"]
    assert stale and all(
        any(r.user_attrs.get("retry_of") == t.number for r in trials) for t in stale
    )  # ... and re-run
    assert sum(t.state.name == "COMPLETE" for t in trials) == 8


def test_a_storage_password_is_never_written_or_printed(tmp_path: Path, postgres: str) -> None:
    name = f"secret-{uuid.uuid4().hex[:8]}"
    path = _write(tmp_path, name, trials=3)
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "AUTORL_STORAGE"}
    proc = _sweep(path, out, env, "--storage", postgres)
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr[-2000:]
    assert PG_PASSWORD not in stdout + stderr
    written = [p for p in out.rglob("*") if p.is_file() and p.suffix in (".yaml", ".json", ".csv", ".log")]
    assert written and not [p for p in written if PG_PASSWORD in p.read_text(errors="replace")]
    assert "autorl:***@127.0.0.1" in (out / "config.yaml").read_text()
    assert "AUTORL_STORAGE" in stdout  # the resume line says where the secret goes instead
    resumed = subprocess.run(
        [*AUTORL, "sweep", str(path), "--out", str(out), "--resume", "--quiet", "--no-plots"],
        env={**env, "AUTORL_STORAGE": postgres},
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    for with_secret in (False, True):  # live from the storage with $AUTORL_STORAGE, else from trials.csv
        shown = subprocess.run(
            [*AUTORL, "show", str(out)],
            env={**env, "AUTORL_STORAGE": postgres} if with_secret else env,
            capture_output=True,
            text=True,
        )
        assert shown.returncode == 0 and "3 of 3 trials" in shown.stdout
        assert PG_PASSWORD not in shown.stdout + shown.stderr
    # a database error re-raised by autorl names the URL without its password
    wrong = postgres.replace("autorl_test", "no_such_db")
    bad = subprocess.run(
        [*AUTORL, "sweep", str(path), "--out", str(tmp_path / "bad"), "--storage", wrong, "--quiet"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "no_such_db" in bad.stderr and PG_PASSWORD not in bad.stderr
