from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

TOY = Path(__file__).parent / "toy_targets.py"


def toy(name: str) -> str:
    """A file-path reference to a toy target (works in spawned worker processes too)."""
    return f"{TOY}:{name}"


@pytest.fixture
def make_config(tmp_path: Path):
    """A small valid sweep config on a toy target, with keys overridable."""

    def make(**overrides: Any) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "target": toy("quad"),
            "space": {
                "x": {"type": "float", "low": -1.0, "high": 1.0},
                "y": {"type": "int", "low": 0, "high": 3},
            },
            "metric": "value",
            "direction": "minimize",
            "budget": {"max": 1},
            "method": "random",
            "trials": 6,
            "seed": 0,
            "out": str(tmp_path / "run"),
        }
        cfg.update(overrides)
        return cfg

    return make


PG_PASSWORD = "pg-s3cret-Pa55"


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """A PostgreSQL server of this test session's own, on loopback with a password; stopped by its pid.

    Skips (saying why) where the server binaries are not installed (``.ci/run`` installs Debian's
    ``postgresql``) or the driver is missing."""
    import glob
    import os
    import shutil
    import signal
    import socket
    import subprocess
    import tempfile
    import time

    pytest.importorskip("psycopg", reason="psycopg (the PostgreSQL driver) is not installed")
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb") or ""]
    if not found[-1]:
        pytest.skip("PostgreSQL server binaries (initdb, postgres) are not installed")
    bindir = Path(found[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="autorl-pg-", dir="/tmp"))  # not under pytest's 0700 tree
    as_user = {}
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the postgres user
        import pwd

        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = {"user": user.pw_uid, "group": user.pw_gid}
    pwfile = root / "pw"
    pwfile.write_text(PG_PASSWORD)
    if as_user:
        os.chown(pwfile, as_user["user"], as_user["group"])
    data = root / "data"
    subprocess.run(
        [bindir / "initdb", "-D", data, "-U", "autorl", "--auth=scram-sha-256", f"--pwfile={pwfile}"],
        check=True,
        capture_output=True,
        **as_user,
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [bindir / "postgres", "-D", data, "-h", "127.0.0.1", "-p", str(port), "-k", root],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **as_user,
    )
    import psycopg

    url = f"postgresql://autorl:{PG_PASSWORD}@127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with psycopg.connect(f"{url}/postgres", autocommit=True) as conn:
                conn.execute("CREATE DATABASE autorl_test")
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise
            time.sleep(0.3)
    yield f"{url}/autorl_test"
    server.send_signal(signal.SIGINT)  # "fast shutdown": ends the test's own open connections too
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    shutil.rmtree(root, ignore_errors=True)
