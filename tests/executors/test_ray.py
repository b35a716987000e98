"""The Ray backend: the same loops on Ray actors, on a local instance (loopback only, token auth kept)
and against a `ray start --head` on loopback that the test starts and stops by its own process ids."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.conftest import toy
from tests.executors.test_shards import _pbt

pytestmark = pytest.mark.slow  # each test starts a Ray instance (seconds, about 1 GB)

AUTORL = [sys.executable, "-m", "autorl.cli"]
RAY = str(Path(sys.executable).parent / "ray")
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


@pytest.fixture
def ray_env():
    """A Ray environment of the test's own: Ray's default authentication (token auth for a local
    instance) with a fresh token, so none is written to ~/.ray; session files in a short temporary
    directory (Ray's socket paths have a length limit); no usage reporting."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_AUTH_TOKEN=secrets.token_hex(16), RAY_TMPDIR=temp, RAY_USAGE_STATS_ENABLED="0")
    yield env
    shutil.rmtree(temp, ignore_errors=True)


def _write(tmp_path: Path, **extra: Any) -> Path:
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
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _session_pids(sid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,sid="], capture_output=True, text=True).stdout
    return [int(p) for p, s in (line.split() for line in out.splitlines()) if int(s) == sid]


def _address(hex_addr: str) -> str:
    """An address of /proc/net/tcp{,6} ("0100007F:1F90") as text ("127.0.0.1")."""
    raw = bytes.fromhex(hex_addr.split(":")[0])
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def listening(pids: list[int]) -> dict[int, list[str]]:
    """The addresses each process listens on (TCP), read from /proc."""
    inodes: dict[str, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                inodes[fields[9]] = _address(fields[1])
    found: dict[int, list[str]] = {}
    for pid in pids:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        for link in links:
            m = re.fullmatch(r"socket:\[(\d+)\]", link)
            if m and m.group(1) in inodes:
                found.setdefault(pid, []).append(inodes[m.group(1)])
    return found


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _stop_session(leader: int) -> None:
    """Stop what a test started, by the process ids of its own session only."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        for pid in _session_pids(leader):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while _session_pids(leader) and time.monotonic() < deadline:
            time.sleep(0.2)


def test_a_local_ray_sweep_listens_on_loopback_only_and_keeps_token_auth(tmp_path, ray_env):
    path = _write(tmp_path, budget={"max": 9, "min": 1, "report_every": 1, "total": 30}, trials=40)
    proc = subprocess.Popen(
        [*AUTORL, "sweep", str(path), "--quiet", "--no-plots", "--set", "args.sleep=0.3"],
        env=ray_env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sockets: dict[int, list[str]] = {}
    auth_modes: set[str] = set()
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            names = {p: _read(f"/proc/{p}/comm").strip() for p in _session_pids(proc.pid)}
            if {"gcs_server", "raylet"} <= set(names.values()):
                time.sleep(1.0)
                sockets = listening(_session_pids(proc.pid))
                for pid in _session_pids(proc.pid):  # what the Ray processes were started with
                    env = dict(v.split("=", 1) for v in _read(f"/proc/{pid}/environ").split("\0") if "=" in v)
                    auth_modes.add(env.get("RAY_AUTH_MODE", "<default>"))
                break
            time.sleep(0.2)
        _, err = proc.communicate(timeout=240)
    finally:
        _stop_session(proc.pid)
    assert proc.returncode == 0, err[-3000:]
    assert sockets, "no Ray process was seen listening"
    addresses = {a for addrs in sockets.values() for a in addrs}
    assert addresses <= LOOPBACK, sockets
    assert "Token authentication is enabled" in err  # Ray's default for a local instance, kept
    assert "disabled" not in auth_modes
    df = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert (df["state"] == "PRUNED").any() and (df["state"] == "COMPLETE").any()  # ASHA ran on Ray
    # budget.total: no trial starts once 30 units are spent (at most the 2 running ones end past it)
    assert 30 <= df["budget"].sum() < 30 + 2 * 9 and len(df) < 40
    assert ((df["one_minus_g"] - (1 - df["g"])).abs() < 1e-9).all()
    assert not _session_pids(proc.pid)


def test_a_population_on_a_ray_head_gives_the_embedded_result(tmp_path, ray_env):
    port = _free_port()
    ray_env["RAY_AUTH_MODE"] = "token"  # `ray start` clusters need it asked for until Ray 2.61
    env = {**ray_env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # the head binds 127.0.0.1 only
    head = subprocess.Popen(
        [
            RAY,
            "start",
            "--head",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
            "--block",
        ],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cfg = {
        "target": toy("Toy"),
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
        "budget": {"max": 40, "report_every": 10},
        "method": {"name": "pbt", "population": 4},
        "workers": 2,
    }
    try:
        deadline = time.monotonic() + 90
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline and head.poll() is None, "ray head did not start"
            time.sleep(0.5)
        assert set(a for addrs in listening(_session_pids(head.pid)).values() for a in addrs) <= LOOPBACK
        path = tmp_path / "pbt.yaml"
        saves = tmp_path / "saves.txt"
        path.write_text(yaml.safe_dump({**cfg, "args": {"saves": str(saves)}, "out": str(tmp_path / "ray")}))
        proc = subprocess.run(
            [*AUTORL, "sweep", str(path), "--ray-address", f"127.0.0.1:{port}", "--quiet", "--no-plots"],
            env=ray_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    finally:
        _stop_session(head.pid)
        head.wait(timeout=10)
    assert not _session_pids(head.pid)
    from autorl.api import sweep

    embedded = sweep({**cfg, "out": str(tmp_path / "embedded")}, plots=False).trials
    on_ray = pd.read_csv(tmp_path / "ray" / "trials.csv")
    assert on_ray["value"].tolist() == pytest.approx(embedded["value"].tolist())
    assert sorted(p.name for p in (tmp_path / "ray" / "checkpoints").iterdir()) == [
        f"member{i}" for i in range(4)
    ]
    assert (tmp_path / "ray" / "logs" / "member-0.log").is_file()
    # the actors saved and loaded only in directories of their own: the checkpoints of a copy came to
    # them through Ray, as they would to an actor on another node
    seen = [line.split(" ", 1) for line in saves.read_text().splitlines()]
    assert {e for e, _ in seen} == {"save", "load"}
    run_dir = str((tmp_path / "ray").resolve())
    assert all("autorl-actor-" in p and not p.startswith(run_dir) for _, p in seen), seen[:4]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_sb3_population_on_local_ray_gives_the_embedded_result(tmp_path, ray_env):
    """SB3 PPO members on Ray actors, checkpoints through the object store: the same population as
    on embedded workers, to the last score (each agent keeps its own random streams)."""
    cfg = {
        "target": "sb3:ppo",
        "args": {"env": "CartPole-v1", "n_envs": 2, "n_steps": 64, "batch_size": 64, "eval_episodes": 2},
        "space": {
            "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True, "mutable": True}
        },
        "metric": "eval_return",
        "budget": {"max": 512, "report_every": 128},
        "method": {"name": "pbt", "population": 4},
        "workers": 2,
        "seed": 0,
    }
    path = tmp_path / "pbt.yaml"
    path.write_text(yaml.safe_dump({**cfg, "executor": "ray", "out": str(tmp_path / "ray")}))
    proc = subprocess.Popen(
        [*AUTORL, "sweep", str(path), "--quiet", "--no-plots"],
        env=ray_env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, err = proc.communicate(timeout=300)
    finally:
        _stop_session(proc.pid)
    assert proc.returncode == 0, err[-3000:]
    assert not _session_pids(proc.pid)
    from autorl.api import sweep

    embedded = sweep({**cfg, "out": str(tmp_path / "embedded")}, plots=False).trials
    on_ray = pd.read_csv(tmp_path / "ray" / "trials.csv")
    lineage = pd.read_csv(tmp_path / "ray" / "population_lineage.csv")
    assert (lineage["event"] == "exploit").any()  # copies went through the object store
    assert on_ray["value"].tolist() == embedded["value"].tolist()
    assert on_ray["learning_rate"].tolist() == pytest.approx(embedded["learning_rate"].tolist())


# ---------------------------------------------------------------- one engine population on two nodes
CLUSTER = str(Path(__file__).parent / "ray_cluster.py")


@pytest.fixture
def two_nodes(ray_env):
    """A head and a second node of one CPU each (Ray's Cluster utility, loopback only, token auth on),
    in a process group of the test's own; yields (address, the helper's process, the environment)."""
    env = {**ray_env, "RAY_AUTH_MODE": "token"}
    helper = subprocess.Popen(
        [sys.executable, CLUSTER],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        address = helper.stdout.readline().strip()
        assert address, "the cluster did not start"
        assert set(a for addrs in listening(_session_pids(helper.pid)).values() for a in addrs) <= LOOPBACK
        yield address, helper, env
    finally:
        with contextlib.suppress(OSError):
            helper.stdin.write("stop\n")
            helper.stdin.flush()
        try:
            helper.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        _stop_session(helper.pid)
    assert not _session_pids(helper.pid)


def _engine_pbt(tmp_path: Path, name: str, **over: Any) -> dict[str, Any]:
    """test_shards.py's population on 2 workers, saved after every job (a lost node loses at most the
    interval in progress)."""
    return {**_pbt(tmp_path, 2), "checkpoint_every": 0.001, "out": str(tmp_path / name), **over}


def _sweep_on(address: str, path: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*AUTORL, "sweep", str(path), "--ray-address", address, "--quiet", "--no-plots", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _start_on(address: str, path: Path, env: dict[str, str]) -> subprocess.Popen:
    """``autorl sweep`` against the cluster, in a session of its own; its stderr kept for the last line."""
    return subprocess.Popen(
        [*AUTORL, "sweep", str(path), "--ray-address", address, "--quiet", "--no-plots"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _remove_second_node(helper: subprocess.Popen) -> None:
    """A node failure: the cluster's helper removes its second node."""
    helper.stdin.write("remove\n")
    helper.stdin.flush()
    assert helper.stdout.readline().strip() == "removed"


def test_one_engine_population_spans_two_nodes_and_gives_the_embedded_result(tmp_path, two_nodes):
    address, _, env = two_nodes
    path = tmp_path / "pbt.yaml"
    path.write_text(yaml.safe_dump(_engine_pbt(tmp_path, "ray")))
    done = _sweep_on(address, path, env)
    assert done.returncode == 0, done.stderr[-3000:]
    from autorl.api import sweep

    embedded = sweep({**yaml.safe_load(path.read_text()), "out": str(tmp_path / "embedded")}, plots=False).out
    ray_out = tmp_path / "ray"
    # two workers of one CPU each on two nodes of one CPU each: one shard on each node
    assert yaml.safe_load((ray_out / "population.json").read_text())["shards"] == 2
    lineage = pd.read_csv(ray_out / "population_lineage.csv")
    exploits = lineage[lineage["event"] == "exploit"]
    assert (exploits["donor"] % 2 != exploits["member"] % 2).any()  # a copy crossed nodes
    assert lineage.equals(pd.read_csv(embedded / "population_lineage.csv"))
    on_ray = pd.read_csv(ray_out / "trials.csv")["value"].tolist()
    assert on_ray == pytest.approx(pd.read_csv(embedded / "trials.csv")["value"].tolist())


def test_a_node_lost_mid_population_is_said_in_one_line_and_resume_finishes_alike(tmp_path, two_nodes):
    address, helper, env = two_nodes
    path = tmp_path / "pbt.yaml"
    budget = {"max": 20480, "report_every": 512}
    path.write_text(yaml.safe_dump(_engine_pbt(tmp_path, "ray", budget=budget, ray_place_timeout=5)))
    proc = _start_on(address, path, env)
    state = tmp_path / "ray" / "population.json"
    deadline = time.monotonic() + 120
    while not (state.is_file() and yaml.safe_load(state.read_text())["intervals"] >= 3):
        assert proc.poll() is None and time.monotonic() < deadline, "the population did not get going"
        time.sleep(0.2)
    _remove_second_node(helper)
    _, err = proc.communicate(timeout=120)
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 2 and "workers" in last and "--set workers=1" in last, err[-2000:]
    assert "within 5 s" in last  # ray_place_timeout, not the default 30 s
    stopped = yaml.safe_load(state.read_text())
    assert not stopped["done"] and stopped["intervals"] >= 3

    resumed = _sweep_on(address, path, env, "--resume", "--set", "workers=1")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = yaml.safe_load(state.read_text())
    assert final["done"] and final["shards"] == 2  # both shards on the one worker left
    from autorl.api import sweep

    embedded = sweep({**yaml.safe_load(path.read_text()), "out": str(tmp_path / "embedded")}, plots=False).out
    on_ray = pd.read_csv(tmp_path / "ray" / "trials.csv")["value"].tolist()
    assert on_ray == pytest.approx(pd.read_csv(embedded / "trials.csv")["value"].tolist())


def test_while_a_lost_nodes_worker_waits_for_a_cpu_the_other_workers_go_on(tmp_path, two_nodes):
    """A worker whose actor died waits up to ``ray_place_timeout`` for a CPU; the sweep does not wait
    with it: the worker left on the head finishes trials meanwhile, and the error comes in time."""
    address, helper, env = two_nodes
    out = tmp_path / "run"
    cfg = {
        "target": toy("slow"),
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}, "sleep": {"type": "fixed", "value": 0.3}},
        "direction": "maximize",
        "method": "random",
        "trials": 10_000,
        "budget": {"max": 1},
        "workers": 2,
        "executor": "ray",
        "ray_place_timeout": 20,
        "seed": 0,
        "out": str(out),
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = _start_on(address, path, env)

    def handled() -> list[float]:  # the orchestrator writes a trial's log as it handles its result
        return [p.stat().st_mtime for p in out.glob("logs/trial-*.log")]

    try:
        deadline = time.monotonic() + 120
        while len(handled()) < 6:
            assert proc.poll() is None and time.monotonic() < deadline, "the sweep did not get going"
            time.sleep(0.1)
        _remove_second_node(helper)
        _, err = proc.communicate(timeout=120)
        ended = time.time()
    finally:
        _stop_session(proc.pid)
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 2 and "within 20 s" in last, err[-2000:]
    # the last 15 s were the wait: dozens of 0.3 s trials on the head; a sweep waiting with it, none
    assert sum(t > ended - 15 for t in handled()) >= 15
