"""Racing on the classic benchmark's engine part, paired: the same suite run with and without ``race`` on
one state of the code, compared cell by cell (same task, method and tuning seed).

Both arms come from ``autorl compare`` (an arm may be several compare runs, one per method group);
this script only reads their ``runs.csv`` and prints, per method, the optimism gap (tuning estimate
less the test mean, normalised by the suite's ``ref``) and the IQM of the normalised test score in
each arm, and the paired differences (racing less not) with 95% CIs from a bootstrap that resamples
tuning seeds within each task, the same seeds for both arms.
It also counts the cells whose incumbent the race changed. The arms, run from one snapshot (each
method group a compare run of its own, so they can run at once)::

    tasks="engine-cartpole engine-acrobot engine-mountaincar engine-pendulum engine-mountaincarcontinuous"
    for group in random,asha pbt pb2; do
      S=$(for t in $tasks; do printf -- "--set tasks.$t.methods=[$group] "; done)
      out=runs/paired-${group//,/-}   # runs/paired-random-asha, runs/paired-pbt, runs/paired-pb2
      autorl compare benchmarks/suites/classic_race.yaml $S --set race=null --jobs 1 --out $out-plain
      autorl compare benchmarks/suites/classic_race.yaml $S --jobs 1 --out $out-race
    done
    python benchmarks/race_classic_paired.py --plain runs/paired-*-plain --race runs/paired-*-race \\
        --json docs/figures/race_classic_paired.json

(docs/figures/race_classic_paired.json was made this way, with runs/paired-plain and runs/paired-race
for the random and asha group.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autorl.analysis import stats
from autorl.yamlio import load_yaml

ROOT = Path(__file__).resolve().parent.parent
REPS = 2000


def normalised(runs: pd.DataFrame, refs: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """Per cell: normalised test score, normalised tuning score and their difference (the gap)."""
    lo = runs["task"].map(lambda t: refs[t][0])
    span = runs["task"].map(lambda t: refs[t][1] - refs[t][0])
    return runs.assign(
        norm=(runs["score"] - lo) / span,
        gap=(runs["tuning_score"] - runs["score"]) / span,
    )


def by_task(frame: pd.DataFrame, value: str, tasks: list[str]) -> np.ndarray:
    """``[seeds, tasks]`` of one method's ``value``, seeds in order."""
    return np.stack([frame[frame["task"] == t].sort_values("seed")[value].to_numpy() for t in tasks], 1)


def paired(plain: np.ndarray, race: np.ndarray, fn: Any, seed: int = 0) -> dict[str, Any]:
    """``fn`` of each arm and of racing less not, with 95% intervals from ``REPS`` resamples of the
    seeds within each task, the same resample for both arms."""
    rng = np.random.default_rng(seed)
    n, k = plain.shape
    boot = []
    for _ in range(REPS):
        rows = rng.integers(0, n, size=(n, k))
        cols = np.arange(k)[None, :]
        a, b = plain[rows, cols], race[rows, cols]
        boot.append((fn(a), fn(b), fn(b) - fn(a)))
    low, high = np.percentile(np.array(boot), [2.5, 97.5], axis=0)
    point = (fn(plain), fn(race), fn(race) - fn(plain))
    names = ("plain", "race", "race_minus_plain")
    return {
        name: {"point": float(p), "low": float(lo), "high": float(hi)}
        for name, p, lo, hi in zip(names, point, low, high, strict=True)
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--plain", type=Path, nargs="+", required=True, help="the arm without race (compare --out folders)"
    )
    p.add_argument("--race", type=Path, nargs="+", required=True, help="the arm with race, the same way")
    p.add_argument("--suite", type=Path, default=ROOT / "benchmarks/suites/classic_race.yaml")
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args()
    refs = {name: tuple(task["ref"]) for name, task in load_yaml(args.suite)["tasks"].items()}
    arms = {
        arm: normalised(pd.concat([pd.read_csv(d / "runs.csv") for d in dirs], ignore_index=True), refs)
        for arm, dirs in (("plain", args.plain), ("race", args.race))
    }
    tasks = sorted(arms["plain"]["task"].unique())
    out: dict[str, Any] = {"methods": {}}
    print(f"{'method':<8} {'':<17} {'no racing':>26} {'racing':>26} {'racing less not':>26}")

    def iv(x: dict[str, float]) -> str:
        return f"{x['point']:+.3f} [{x['low']:+.3f}, {x['high']:+.3f}]"

    for method in sorted(arms["plain"]["method"].unique()):
        a = arms["plain"][arms["plain"]["method"] == method]
        b = arms["race"][arms["race"]["method"] == method]
        key = ["task", "seed"]
        try:  # one cell per task and seed in each arm
            merged = a.merge(b, on=key, suffixes=("_plain", "_race"), validate="one_to_one")
        except pd.errors.MergeError as err:
            sys.exit(f"{method}: a task and seed appears twice in one arm ({err})")
        if len(merged) != len(a) or len(a) != len(b):
            sys.exit(f"{method}: the arms do not hold the same cells ({len(a)} and {len(b)})")
        changed = int((merged["incumbent_plain"] != merged["incumbent_race"]).sum())
        figures = {
            "optimism_gap_mean": paired(by_task(a, "gap", tasks), by_task(b, "gap", tasks), np.mean),
            "score_iqm": paired(by_task(a, "norm", tasks), by_task(b, "norm", tasks), stats.iqm),
            "score_mean": paired(by_task(a, "norm", tasks), by_task(b, "norm", tasks), np.mean),
            "cells": len(merged),
            "incumbent_changed": changed,
            "gap_above_0": {"plain": int((a["gap"] > 0).sum()), "race": int((b["gap"] > 0).sum())},
            "per_task_gap_mean": {
                t: {
                    "plain": float(a[a["task"] == t]["gap"].mean()),
                    "race": float(b[b["task"] == t]["gap"].mean()),
                }
                for t in tasks
            },
        }
        out["methods"][method] = figures
        for name in ("optimism_gap_mean", "score_iqm", "score_mean"):
            f = figures[name]
            cells = " ".join(f"{iv(f[arm]):>26}" for arm in ("plain", "race", "race_minus_plain"))
            print(f"{method:<8} {name:<17} {cells}")
        print(
            f"{method:<8} the race named another incumbent in {changed} of {len(merged)} cells; gap > 0 in "
            f"{figures['gap_above_0']['plain']} and {figures['gap_above_0']['race']}"
        )
    if args.json:
        out |= {
            "command": "python benchmarks/race_classic_paired.py " + " ".join(sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d"),
            "tasks": tasks,
            "bootstrap": {"reps": REPS, "resample": "tuning seeds within each task, paired across arms"},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
