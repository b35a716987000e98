"""A built wheel carries the default search spaces and examples: an installed autorl finds them from any
directory."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_a_wheel_installed_in_a_fresh_venv_runs_a_target_with_its_default_space(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = dist.glob("autorl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert (
        "autorl/search_spaces/sb3/ppo.yaml" in names
        and "autorl/search_spaces/examples/ppo_cartpole.yaml" in names
        and "autorl/search_spaces/baselines/zoo/sb3_ppo_cartpole.yaml" in names
    )
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, timeout=600)
    # the dependencies come from the test's own environment (installing torch again would take minutes)
    fresh_site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deps = [p for p in site.getsitepackages() if p.endswith("site-packages")]
    Path(fresh_site, "deps.pth").write_text("\n".join(deps) + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run(
        [python, "-c", "import autorl; print(autorl.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr  # the wheel, not the checkout
    cfg = {"target": "synthetic:branin", "budget": {"max": 1}, "trials": 1, "method": "random", "out": "run"}
    (elsewhere / "s.yaml").write_text(yaml.safe_dump(cfg))  # no `space`: the target's default space file
    autorl = [python, "-m", "autorl.cli"]
    res = subprocess.run(
        [*autorl, "validate", "s.yaml"], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert res.returncode == 0 and "ok: synthetic:branin" in res.stdout, res.stderr
    res = subprocess.run(
        [*autorl, "sweep", "s.yaml", "--quiet", "--no-plots"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0 and "1 complete" in res.stdout, res.stderr[-2000:]
    res = subprocess.run(
        [*autorl, "validate", "examples/ppo_cartpole.yaml"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
