"""The Ray Tune executor, locally and against a Ray head started on loopback (the cluster user's path)."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import toy

AUTORL = [sys.executable, "-m", "autorl.cli"]
RAY = str(Path(sys.executable).parent / "ray")
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def _config(tmp_path, **extra):
    cfg = {
        "target": toy("curve"),
        "metric": "score",
        "direction": "maximize",
        "seed": 0,
        "space": {
            "x": {"type": "float", "low": -1.0, "high": 1.0},
            "g": {"type": "float", "low": 0.9, "high": 0.999, "log": True, "transform": "one_minus"},
        },
        "budget": {"max": 9, "min": 1, "report_every": 1},
        "method": "asha",
        "trials": 6,
        "workers": 2,
        "executor": "ray",
        "out": str(tmp_path / "run"),
        **extra,
    }
    path = tmp_path / "ray.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _check_results(out: Path, trials: int) -> pd.DataFrame:
    df = pd.read_csv(out / "trials.csv")
    assert len(df) == trials and (df["state"] == "COMPLETE").any()
    assert set(df["state"]) <= {"COMPLETE", "PRUNED"}
    assert ((df["one_minus_g"] - (1 - df["g"])).abs() < 1e-9).all()  # both scales recorded
    assert (out / "best.yaml").is_file()
    return df


def test_local_ray_sweep_records_trials_like_the_embedded_executor(tmp_path):
    path = _config(tmp_path)
    proc = subprocess.run(
        [*AUTORL, "sweep", str(path), "--quiet", "--no-plots"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    df = _check_results(tmp_path / "run", 6)
    assert (df["state"] == "PRUNED").any()  # ASHA stopped some at a rung


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_pids(sid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,sid="], capture_output=True, text=True).stdout
    return [int(p) for p, s in (line.split() for line in out.splitlines()) if int(s) == sid]


@pytest.mark.timeout(400)
def test_sweep_against_a_ray_head_on_loopback(tmp_path):
    port = _free_port()
    # Its own short temp dir (Ray's socket paths have a length limit): the head registers itself there,
    # not in /tmp/ray, so nothing on the machine is pointed at it once it is gone.
    temp_dir = tempfile.mkdtemp(prefix="rayhead", dir="/tmp")
    head = subprocess.Popen(
        [
            RAY,
            "start",
            "--head",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=2",
            "--include-dashboard=false",
            f"--temp-dir={temp_dir}",
            "--disable-usage-stats",
            "--block",
        ],
        env=ENV,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline and head.poll() is None, "ray head did not start"
            time.sleep(0.5)
        path = _config(tmp_path, trials=4, executor="embedded")  # --ray-address switches it to Ray
        proc = subprocess.run(
            [*AUTORL, "sweep", str(path), "--ray-address", f"127.0.0.1:{port}", "--quiet", "--no-plots"],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        _check_results(tmp_path / "run", 4)
        assert "ray" in (tmp_path / "run" / "config.yaml").read_text()
    finally:
        # Stop only what this test started: the head's own session, by its process ids.
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
            for pid in _session_pids(head.pid):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while _session_pids(head.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
        head.wait(timeout=10)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert not _session_pids(head.pid)
