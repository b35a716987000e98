"""What ``executor: tune`` costs per trial against ``executor: ray`` and the embedded executor.

Each executor runs ``autorl sweep`` as a user runs it (a fresh process, 2 workers, random search) on
two targets: a trivial function (``x**2``: one report, so the figure is the executor's own cost) and
``synthetic:curve`` (a Trainable, 5 reports of 20 units, instant; executor: tune checkpoints it at every
report, as Tune's PBT needs). Per trial: the slope (time of N2 trials - time of N1 trials) / (N2 - N1),
so start-up cancels out; start-up: the N1 run's time less N1 times the slope. Each configuration runs
``--repeats`` times alternately and the median is kept; run it on an otherwise idle machine.

    python benchmarks/executor_tune.py --json docs/figures/executor_tune.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve()
EXECUTORS = ("embedded", "ray", "tune")


def trivial(config: dict[str, Any]) -> float:
    return float(config["x"]) ** 2


TARGETS: dict[str, dict[str, Any]] = {
    "function": {
        "target": f"{HERE}:trivial",
        "space": {"x": {"type": "float", "low": -1.0, "high": 1.0}},
        "direction": "minimize",
    },
    "trainable": {"target": "synthetic:curve", "budget": {"max": 100, "report_every": 20}},
}


def timed(executor: str, target: str, trials: int, work: Path) -> float:
    """Seconds from process start to exported results of one ``autorl sweep``."""
    out = work / f"{executor}-{target}-{trials}-{time.monotonic_ns()}"
    cfg = {**TARGETS[target], "method": "random", "trials": trials, "workers": 2, "executor": executor,
           "seed": 0, "out": str(out)}  # fmt: skip
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(cfg))
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "autorl.cli", "sweep", str(path), "--quiet", "--no-plots"],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n1", type=int, default=8)
    ap.add_argument("--n2", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    runs: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as d:
        for _ in range(args.repeats):
            for target in TARGETS:
                for executor in EXECUTORS:
                    for n in (args.n1, args.n2):
                        key = f"{target}/{executor}/{n}"
                        runs.setdefault(key, []).append(timed(executor, target, n, Path(d)))
                        print(f"{key}: {runs[key][-1]:.1f} s", flush=True)
    rows = []
    print(f"\n{'target':10s} {'executor':9s} {'per trial':>10s} {'start-up':>9s}  (median of {args.repeats})")
    for target in TARGETS:
        for executor in EXECUTORS:
            t1 = statistics.median(runs[f"{target}/{executor}/{args.n1}"])
            t2 = statistics.median(runs[f"{target}/{executor}/{args.n2}"])
            per = (t2 - t1) / (args.n2 - args.n1)
            row = {
                "target": target,
                "executor": executor,
                "per_trial_s": per,
                "startup_s": t1 - args.n1 * per,
            }
            rows.append({**row, f"wall_{args.n1}_s": t1, f"wall_{args.n2}_s": t2})
            print(f"{target:10s} {executor:9s} {per * 1000:8.0f}ms {t1 - args.n1 * per:8.1f}s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"n1": args.n1, "n2": args.n2, "workers": 2, "rows": rows,
                                         "runs": runs}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
