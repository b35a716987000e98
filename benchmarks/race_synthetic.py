"""Racing where the truth is known: TPE sweeps of ``synthetic:curve`` (a noisy learning curve whose
noise-free value at the end of a trial is computable) with and without ``race``, over several race
shares, noise levels and sweep seeds.

Each sweep: 64 trials' worth of budget (``budget.total`` = 64 x ``budget.max``, ``budget.max`` 1,000),
TPE; a racing arm spends ``share`` of the total on race blocks (``race: {share, seeds: 10}``). For the
named incumbent (best.yaml) it records the true value (the curve without noise at ``budget.max``), the
regret (the best true value in the space, 1 - exp(-5), less the incumbent's), the optimism gap (the
sweep's estimate, best.yaml's ``value``, less the true value) and the incumbent's race blocks.
``--report`` prints, per noise level and arm, the mean of each over sweep seeds with a 95% bootstrap CI.
Rows are appended to ``--runs`` as they finish; a rerun skips those done.

    python benchmarks/race_synthetic.py --runs docs/figures/race_synthetic_runs.jsonl
    python benchmarks/race_synthetic.py --report --runs docs/figures/race_synthetic_runs.jsonl \\
        --json docs/figures/race_synthetic.json
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

MAX, TRIALS = 1000, 64
BEST = 1.0 - math.exp(-5.0)  # the curve's best value at MAX: x = 0.3, lr >= 1e-2
ARMS = {"plain": None, "share0.1": 0.1, "share0.25": 0.25, "share0.5": 0.5}


def true_value(params: dict[str, Any]) -> float:
    """The curve's value at ``MAX`` without noise."""
    from autorl.targets import TrialContext
    from autorl.targets.synthetic import CurveTarget

    curve = CurveTarget({**params, "noise": 0.0}, TrialContext(seed=0, budget=MAX))
    return float(curve.train(MAX)["score"])


def one(arm: str, noise: float, seed: int, out: Path) -> dict[str, Any]:
    from autorl.api import sweep
    from autorl.yamlio import load_yaml

    cfg: dict[str, Any] = {
        "target": "synthetic:curve",
        "args": {"noise": noise},
        "space": "synthetic/curve.yaml",
        "budget": {"max": MAX, "total": TRIALS * MAX},
        "method": "tpe",
        "trials": 10 * TRIALS,  # budget.total ends the sweep
        "seed": seed,
        "out": str(out / f"{arm}-{noise}-{seed}"),
    }
    if ARMS[arm] is not None:
        cfg["race"] = {"share": ARMS[arm], "seeds": 10}
    result = sweep(cfg, plots=False)
    best = load_yaml(result.out / "best.yaml")
    truth = true_value(best["params"])
    race = best.get("race") or {}
    return {
        "arm": arm,
        "noise": noise,
        "seed": seed,
        "estimate": float(best["value"]),
        "true": truth,
        "regret": BEST - truth,
        "optimism": float(best["value"]) - truth,
        "blocks": len(race.get("seeds", [])),
        "trials": len(result.trials),
    }


def _done(path: Path) -> set[tuple[str, float, int]]:
    if not path.is_file():
        return set()
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["arm"], r["noise"], r["seed"]) for r in rows}


def _ci(x: np.ndarray, rng: np.random.Generator, reps: int = 10_000) -> list[float]:
    means = x[rng.integers(0, len(x), (reps, len(x)))].mean(1)
    return [round(float(np.quantile(means, 0.025)), 4), round(float(np.quantile(means, 0.975)), 4)]


def report(runs: Path) -> dict[str, Any]:
    rows = [json.loads(line) for line in runs.read_text().splitlines() if line.strip()]
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"setting": {"max": MAX, "trials": TRIALS, "race_seeds": 10, "method": "tpe"}}
    for noise in sorted({r["noise"] for r in rows}):
        table = {}
        for arm in ARMS:
            mine = [r for r in rows if r["arm"] == arm and r["noise"] == noise]
            if not mine:
                continue
            cell: dict[str, Any] = {"sweeps": len(mine)}
            for key in ("regret", "optimism", "blocks"):
                x = np.asarray([r[key] for r in mine], dtype=float)
                cell[key] = {"mean": round(float(x.mean()), 4), "ci95": _ci(x, rng)}
            table[arm] = cell
            regret, optimism = cell["regret"], cell["optimism"]
            print(
                f"noise {noise} {arm:10s} sweeps {len(mine):2d}  regret {regret['mean']:+.4f} "
                f"{regret['ci95']}  optimism {optimism['mean']:+.4f} {optimism['ci95']}"
                f"  incumbent's blocks {cell['blocks']['mean']:.1f}"
            )
        out[f"noise_{noise}"] = table
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--noise", nargs="+", type=float, default=[0.1, 0.3])
    p.add_argument("--seeds", type=int, default=10, help="sweep seeds 0..N-1")
    p.add_argument("--runs", type=Path, required=True)
    p.add_argument("--report", action="store_true")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if args.report:
        out = report(args.runs)
        if args.json:
            args.json.write_text(json.dumps(out, indent=1) + "\n")
        return
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for noise in args.noise:
                for arm in args.arms:
                    if (arm, noise, seed) in _done(args.runs):
                        continue
                    row = one(arm, noise, seed, Path(tmp))
                    with open(args.runs, "a") as f:
                        f.write(json.dumps(row) + "\n")
                    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
