"""Fault injection across autorl: kill -9 at random moments, trials that kill their process, bad input.

    python benchmarks/faults.py [--kills 10] [--seed 0] [--json docs/figures/faults.json]

Each part prints what was tried and what held:

- sweep kills: a 2-worker sweep of 30 trials killed with SIGKILL (the whole process group) at random
  moments and resumed each time; it must end with exactly 30 counted trials and no configuration run
  twice except the retries of interrupted trials;
- population kills: a PBT run of 4 members killed at random moments (during training, copies,
  checkpoint writes) and resumed; it must end with 4 members and the values of an uninterrupted run;
- comparison kills: a small suite killed and rerun; every finished cell kept, the report written;
- faults: segfault, os._exit, sys.exit, a hang past trial_timeout and an allocation past
  trial_memory, with 1 and 2 workers: each costs its trial (FAIL, classified) and the sweep ends;
- bad input: malformed configs, each refused by `autorl validate` in one line naming file and key.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
TOY = ROOT / "tests" / "toy_targets.py"
AUTORL = [sys.executable, "-m", "autorl.cli"]


def _run(args: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AUTORL, *args], capture_output=True, text=True, timeout=600, **kw)


def _kill_at(args: list[str], after: float) -> bool:
    """Start autorl, SIGKILL its process group after ``after`` seconds; True if it was still running."""
    proc = subprocess.Popen(
        [*AUTORL, *args], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        proc.wait(timeout=after)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


def sweep_kills(tmp: Path, kills: int, rng: np.random.Generator) -> dict[str, Any]:
    cfg = {
        "target": f"{TOY}:slow",
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}, "sleep": {"type": "fixed", "value": 0.15}},
        "budget": {"max": 1},
        "method": "random",
        "trials": 30,
        "workers": 2,
        "out": str(tmp / "sweep"),
    }
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    landed = 0
    for i in range(kills):
        args = ["sweep", str(path), "--quiet", "--no-plots", *(["--resume"] if i else [])]
        landed += _kill_at(args, float(rng.uniform(0.8, 3.0)))
    final = _run(["sweep", str(path), "--quiet", "--no-plots", "--resume"])
    df = pd.read_csv(tmp / "sweep" / "trials.csv")
    counted = df[~df["interrupted"]]
    ok = final.returncode == 0 and len(counted) == 30 and counted["x"].round(12).is_unique
    return {
        "kills": kills,
        "landed": landed,
        "counted": len(counted),
        "interrupted": int(df["interrupted"].sum()),
        "held": bool(ok),
    }


def population_kills(tmp: Path, kills: int, rng: np.random.Generator) -> dict[str, Any]:
    from autorl.api import sweep

    cfg = {
        "target": f"{TOY}:Toy",
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
        "budget": {"max": 160, "report_every": 10},
        "method": {"name": "pbt", "population": 4},
        "workers": 2,
    }
    reference = sweep({**cfg, "out": str(tmp / "ref")}, plots=False).trials["value"].tolist()
    path = tmp / "pbt.yaml"
    path.write_text(yaml.safe_dump({**cfg, "args": {"sleep": 0.05}, "out": str(tmp / "pbt")}))
    landed = 0
    for i in range(kills):
        args = ["sweep", str(path), "--quiet", "--no-plots", *(["--resume"] if i else [])]
        landed += _kill_at(args, float(rng.uniform(1.0, 4.0)))
    final = _run(["sweep", str(path), "--quiet", "--no-plots", "--resume"])
    df = pd.read_csv(tmp / "pbt" / "trials.csv")
    same = len(df) == 4 and np.allclose(df["value"].tolist(), reference)
    orphans = len([p for p in (tmp / "pbt" / "checkpoints").rglob("s.json")]) - 4
    return {
        "kills": kills,
        "landed": landed,
        "members": len(df),
        "same_as_uninterrupted": bool(same),
        "orphans": orphans,
        "held": bool(final.returncode == 0 and same and orphans == 0),
    }


def compare_kills(tmp: Path, kills: int, rng: np.random.Generator) -> dict[str, Any]:
    suite = {
        "tasks": {
            "curve": {
                "target": "synthetic:curve",
                "budget": {"max": 200, "min": 50, "report_every": 50, "total": 1200},
                "ref": [0.0, 1.0],
            }
        },
        "methods": {"random": "random", "asha": {"name": "asha", "reduction_factor": 2}},
        "seeds": 3,
        "test_seeds": 2,
        "out": str(tmp / "cmp"),
    }
    path = tmp / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    landed = 0
    for _ in range(kills):
        landed += _kill_at(["compare", str(path)], float(rng.uniform(1.0, 6.0)))
    final = _run(["compare", str(path)])
    cells = len(list((tmp / "cmp" / "cells").rglob("cell.json")))
    return {
        "kills": kills,
        "landed": landed,
        "cells": cells,
        "held": bool(final.returncode == 0 and cells == 6 and (tmp / "cmp" / "report.md").is_file()),
    }


def faults(tmp: Path) -> dict[str, Any]:
    from autorl.api import sweep

    kinds = ["segfault", "exit", "sys_exit", "hang", "memory"]
    tried = isolated = 0
    for workers in (1, 2):
        cfg = {
            "target": f"{TOY}:faulty",
            "space": {
                "x": {"type": "fixed", "value": 0.5},
                "fault": {"type": "categorical", "choices": ["none", *kinds]},
                "gb": {"type": "fixed", "value": 8},
            },
            "method": {"name": "grid", "points": 1},
            "trials": len(kinds) + 1,
            "workers": workers,
            "trial_timeout": "3s",
            "trial_memory": "2GB",
            "out": str(tmp / f"faults{workers}"),
        }
        df = sweep(cfg, plots=False).trials.set_index("fault")
        tried += len(kinds)
        isolated += (
            int((df.loc[kinds, "state"] == "FAIL").sum()) if df.loc["none", "state"] == "COMPLETE" else 0
        )
    return {"faults": tried, "isolated": isolated, "held": tried == isolated}


BAD = [
    ("trails: 5", "trails"),
    ("trials: 0", "trials"),
    ("trials: 4294967301", "trials"),
    ("workers: 4096", "workers"),
    ("budget: {maxx: 5}", "budget.maxx"),
    ("budget: {max: 10, min: 20}", "budget"),
    ("space: {x: {type: float, low: 0, high: .inf}}", "space.x"),
    ("space: {x: {type: float, low: 2, high: 1}}", "space.x"),
    ("method: tpee", "method"),
    ("method: {name: tpe, n_startup: 3}", "method"),
    ("storage: 'postgresql+psycopg2://u:pw@h/db'", "storage"),
    ("trial_timeout: soon", "trial_timeout"),
    ("trial_memory: lots", "trial_memory"),
    ("target: nosuchmodule:f", "target"),
]


def bad_input(tmp: Path) -> dict[str, Any]:
    refused = 0
    for i, (line, key) in enumerate(BAD):
        path = tmp / f"bad{i}.yaml"
        base = {"target": "synthetic:branin", "method": "random", "budget": {"max": 1}}
        path.write_text(yaml.safe_dump({**base, **yaml.safe_load(line)}))
        res = _run(["validate", str(path)])
        one_line = res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
        refused += one_line and f"{path}: {key}" in res.stderr
    bomb = tmp / "bomb.yaml"
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'] + [
        f"{n}: &{n} [" + ",".join([f"*{p}"] * 10) + "]" for p, n in zip("abcdefg", "bcdefgh", strict=True)
    ]
    bomb.write_text("\n".join(lines) + "\ntarget: synthetic:branin\n")
    res = _run(["validate", str(bomb)])
    refused += res.returncode == 2 and "expands to" in res.stderr
    return {"bad_inputs": len(BAD) + 1, "refused_in_one_line": int(refused), "held": refused == len(BAD) + 1}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name, fn in (
            ("bad input", lambda: bad_input(tmp)),
            ("faults", lambda: faults(tmp)),
            ("sweep kills", lambda: sweep_kills(tmp, a.kills, rng)),
            ("population kills", lambda: population_kills(tmp, a.kills, rng)),
            ("comparison kills", lambda: compare_kills(tmp, a.kills, rng)),
        ):
            t0 = time.perf_counter()
            out[name] = {**fn(), "seconds": round(time.perf_counter() - t0, 1)}
            print(f"{name:>17}: {json.dumps(out[name])}", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
