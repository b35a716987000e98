"""One engine computation on every core: a batch of trials and a PBT population on 1 and 2 workers,
each timed from process start to its exported trials.csv.

- Random search of 64 CartPole-v1 configurations on ``engine:ppo`` (32 envs x 32 steps, 4 epochs, 4
  minibatches; the engine's shipped space less its two shape choices, which these arguments fix),
  100,000 env steps each: ``batch: 64, workers: 1`` (one process) against ``batch: 32, workers: 2``
  (two processes of one torch thread).
- PBT with ``population: 64`` on the same task and space (every parameter mutable), 100,000 env steps
  per member, an exploit interval of 10,000: ``workers: 1`` (one shard) against ``workers: 2`` (two
  shards, copies crossing them).

With ``--only evaluation`` the random searches run twice over: as a sweep runs them (a batch evaluates a
trial only at its last report, where random search reads its value) and with ``budget.evaluate_every`` at
every report (``evalall_*``: what a batch did before it evaluated only what is read), alternating.

Env steps/s counts what the trials trained (trials.csv's budget) over the command's wall time. The runs
alternate (1 worker, 2 workers, ...) so both see the same load; run it on an otherwise idle machine.

    python benchmarks/engine_shards.py --repeats 2 --json docs/figures/engine_shards.json
    python benchmarks/engine_shards.py --only evaluation --repeats 2 \
        --json docs/figures/engine_evaluation.json

``--baseline DIR`` repeats every run with another checkout's code (``git worktree add DIR COMMIT``),
alternating with this one's, for a paired before/after of a change.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
ARGS = {"env": "CartPole-v1", "n_envs": 32, "n_steps": 32, "n_epochs": 4, "n_minibatches": 4}
STEPS = 100_000


def _space() -> dict[str, Any]:
    space = yaml.safe_load((ROOT / "autorl/search_spaces/engine/ppo.yaml").read_text())
    return {k: v for k, v in space.items() if k not in ("n_epochs", "n_steps")}


def configs(steps: int) -> dict[str, dict[str, Any]]:
    """The four runs, by name."""
    base = {"target": "engine:ppo", "args": ARGS, "space": _space(), "seed": 0}
    random = {**base, "method": "random", "trials": 64, "budget": {"max": steps}}
    pbt = {
        **base,
        "method": {"name": "pbt", "population": 64},
        "budget": {"max": steps, "report_every": steps // 10},
    }
    every = {**random, "budget": {"max": steps, "evaluate_every": steps // 10}}  # every report evaluated
    return {
        "random_batch64_w1": {**random, "batch": 64, "workers": 1},
        "random_batch32_w2": {**random, "batch": 32, "workers": 2},
        "evalall_batch64_w1": {**every, "batch": 64, "workers": 1},
        "evalall_batch32_w2": {**every, "batch": 32, "workers": 2},
        "pbt64_w1": {**pbt, "workers": 1},
        "pbt64_w2": {**pbt, "workers": 2},
    }


def _with(code: Path | None) -> dict[str, Any]:
    """How a subprocess imports autorl from the checkout ``code``: ``python -m`` puts the working
    directory first on its path, so it runs there, with ``code`` on PYTHONPATH too."""
    return {"cwd": code, "env": {**os.environ, "PYTHONPATH": str(code)}} if code else {}


def autorl_from(code: Path | None) -> str:
    """Where a run's subprocess imports autorl from (recorded with the runs)."""
    probe = [sys.executable, "-c", "import autorl; print(autorl.__file__)"]
    return subprocess.run(probe, check=True, capture_output=True, text=True, **_with(code)).stdout.strip()


def timed(cfg: dict[str, Any], work: Path, code: Path | None = None) -> dict[str, float]:
    """Run ``autorl sweep`` on ``cfg`` in a fresh process (autorl imported from ``code``, a checkout, if
    given); its wall time and trained env steps/s."""
    import pandas as pd

    out = work / f"run-{time.time_ns()}"
    path = work / "sweep.yaml"
    path.write_text(yaml.safe_dump({**cfg, "out": str(out)}, sort_keys=False))
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "autorl.cli", "sweep", str(path), "--quiet", "--no-plots"],
        check=True,
        stdout=subprocess.DEVNULL,
        **_with(code),
    )
    wall = time.perf_counter() - start
    steps = float(pd.read_csv(out / "trials.csv")["budget"].sum())
    row: dict[str, Any] = {
        "wall_s": round(wall, 2),
        "env_steps": steps,
        "steps_per_s": round(steps / wall, 1),
    }
    summary = out / "population_summary.json"
    if summary.is_file():  # where a population's time went: its phases and per-interval timeline
        data = json.loads(summary.read_text())
        row.update(phases=data["phases"], timeline=data["timeline"])
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--steps", type=int, default=STEPS, help="env steps per trial or member")
    p.add_argument(
        "--only",
        choices=["random", "pbt", "evaluation"],
        help="one of the two comparisons, or the random searches with and without evaluating every report",
    )
    p.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of autorl: every run is repeated with its code, alternating, for a paired "
        "before/after (its runs are named NAME@baseline)",
    )
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    prefixes = {None: ("random", "pbt"), "evaluation": ("random", "evalall")}.get(args.only, (args.only,))
    runs = {k: v for k, v in configs(args.steps).items() if k.startswith(prefixes)}
    codes: dict[str, Path | None] = {"": None, **({"@baseline": args.baseline} if args.baseline else {})}
    results: dict[str, list[dict[str, float]]] = {k + c: [] for k in runs for c in codes}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name, cfg in runs.items():
                for tag, code in codes.items():
                    results[name + tag].append(timed(cfg, Path(tmp), code))
                    print(name + tag, results[name + tag][-1], flush=True)
    setting = {
        "args": ARGS,
        "steps": args.steps,
        "autorl_from": {t or "this": autorl_from(c) for t, c in codes.items()},
    }
    out: dict[str, Any] = {"setting": setting, "runs": results}
    for name in runs if args.baseline else ():  # this code's time over the baseline's, run by run
        pairs = zip(results[name], results[name + "@baseline"], strict=True)
        out[f"{name}_over_baseline"] = [round(a["wall_s"] / b["wall_s"], 3) for a, b in pairs]
    for kind in ("random", "evalall", "pbt"):
        one = [k for k in results if k.startswith(kind) and k.endswith("w1")]  # this code's runs only
        two = [k for k in results if k.startswith(kind) and k.endswith("w2")]
        if one and two:
            a = [r["wall_s"] for r in results[one[0]]]
            b = [r["wall_s"] for r in results[two[0]]]
            out[f"{kind}_speedup"] = [round(x / y, 3) for x, y in zip(a, b, strict=True)]
            out[f"{kind}_w2_steps_per_s"] = [r["steps_per_s"] for r in results[two[0]]]
    for w in ("batch64_w1", "batch32_w2"):  # the time evaluating every report costs, run by run
        if f"evalall_{w}" in results and f"random_{w}" in results:
            pairs = zip(results[f"evalall_{w}"], results[f"random_{w}"], strict=True)
            out[f"evalall_over_random_{w}"] = [round(a["wall_s"] / b["wall_s"], 3) for a, b in pairs]
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
