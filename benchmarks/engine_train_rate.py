"""Training throughput of ``Population.train`` alone, this checkout against another, alternating.

Each measurement is a fresh process of one torch thread that keeps freed memory (as a worker does),
trains P members on CartPole-v1 with the shipped example's settings (32 envs x 32 steps, 4 epochs of
4 minibatches, learning rate 1e-3) for a warm-up interval, then for ``--seconds``, and prints its env
steps per second. Runs alternate (this code, the baseline, this code, ...) ``--repeats`` times per P, for
a paired before/after of a change to the engine's kernels; run it on an otherwise idle machine.

    git worktree add /tmp/before COMMIT
    python benchmarks/engine_train_rate.py --baseline /tmp/before --json docs/figures/engine_train_rate.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHILD = """
import sys, time, torch
torch.set_num_threads(1)
from autorl.executors.process import keep_freed_memory
keep_freed_memory()
import autorl
from autorl.engine.config import engine_config, hparams_of
from autorl.engine.ppo import Population
size, seconds = int(sys.argv[1]), float(sys.argv[2])
args = {"env": "CartPole-v1", "n_envs": 32, "n_steps": 32, "n_epochs": 4, "n_minibatches": 4}
pop = Population(engine_config(args, total_steps=10**8), [hparams_of({"learning_rate": 1e-3})] * size,
                 seeds=list(range(size)))
pop.train(4096)
start, steps = time.perf_counter(), 0
while time.perf_counter() - start < seconds:
    pop.train(4096)
    steps += 4096 * size
print(autorl.__file__, steps / (time.perf_counter() - start))
"""


def start(code: Path, size: int, seconds: float) -> subprocess.Popen[str]:
    """A fresh process that trains P = ``size`` members, with autorl imported from the checkout ``code``."""
    env = {"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin"}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(size), str(seconds)],
        cwd=code, env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def result(process: subprocess.Popen[str]) -> tuple[str, float]:
    """Where its autorl came from and its env steps/s."""
    out, _ = process.communicate()
    if process.returncode:
        raise RuntimeError(f"the training process failed (exit {process.returncode})")
    where, value = out.split()
    return where, float(value)


def rate(code: Path, size: int, seconds: float) -> tuple[str, float]:
    """One fresh process's env steps/s, with autorl imported from the checkout ``code``."""
    return result(start(code, size, seconds))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", type=Path, required=True, help="another checkout of autorl")
    p.add_argument("--sizes", type=int, nargs="+", default=[8, 64])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    codes = {"this": ROOT, "baseline": args.baseline.resolve()}
    runs: dict[str, dict[str, list[float]]] = {str(s): {c: [] for c in codes} for s in args.sizes}
    where: dict[str, str] = {}
    for _ in range(args.repeats):
        for size in args.sizes:
            for name, code in codes.items():
                where[name], value = rate(code, size, args.seconds)
                runs[str(size)][name].append(round(value))
                print(f"P = {size:>3} {name:>8}: {value:,.0f} env steps/s", flush=True)
    out: dict[str, Any] = {"autorl_from": where, "seconds": args.seconds, "runs": runs, "median_ratio": {}}
    for size, sides in runs.items():
        ratio = statistics.median(sides["this"]) / statistics.median(sides["baseline"])
        out["median_ratio"][size] = round(ratio, 3)
        print(f"P = {size:>3}: this / baseline = {ratio:.3f} (medians)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
