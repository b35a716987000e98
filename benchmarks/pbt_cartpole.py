"""PBT / PB2 vs fixed hyperparameters on CartPole-v1 (SB3 PPO) from a deliberately poor space.

    python benchmarks/pbt_cartpole.py --seeds 0 1 2 --population 4 --budget 40000 --interval 5000

"Fixed" is the same population (same initial configs) with exploit switched off (no exploit ever
fires because the interval equals the budget). Solved = deterministic return >= 475 over 10 episodes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from autorl.methods.pbt import PBTOptions, run_population
from autorl.space.base import SearchSpace
from autorl.targets import TARGETS

# learning rates mostly far too low (1e-6..1e-3): PPO's rl-zoo value for CartPole is ~1e-3 to 3e-3
SPACE = {
    "learning_rate": {"type": "float", "low": 1.0e-6, "high": 1.0e-2, "log": True, "mutable": True},
    "clip_range": {"type": "float", "low": 0.05, "high": 0.4, "mutable": True},
    "ent_coef": {"type": "float", "low": 1.0e-8, "high": 0.1, "log": True, "mutable": True},
}
ARGS = {
    "env": "CartPole-v1",
    "n_envs": 8,
    "n_steps": 32,
    "batch_size": 256,
    "n_epochs": 20,
    "gae_lambda": 0.8,
    "gamma": 0.98,
    "eval_episodes": 10,
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--population", type=int, default=4)
    ap.add_argument("--budget", type=int, default=40000)
    ap.add_argument("--interval", type=int, default=5000)
    ap.add_argument("--methods", nargs="+", default=["fixed", "pbt", "pb2"])
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    cls, space = TARGETS.get("sb3:ppo"), SearchSpace.from_dict(SPACE)
    root = Path(a.out or tempfile.mkdtemp(prefix="pbt_cartpole_"))
    rows = []
    for seed in a.seeds:
        for method in a.methods:
            t0 = time.perf_counter()
            interval = a.budget if method == "fixed" else a.interval
            members, s = run_population(
                cls,
                space,
                ARGS,
                root / f"{method}_{seed}",
                budget=a.budget,
                interval=interval,
                metric="eval_return",
                seed=seed,
                opts=PBTOptions(population=a.population, pb2=method == "pb2"),
            )
            wall = time.perf_counter() - t0
            best = max(m.score for m in members)
            row = {
                "method": method,
                "seed": seed,
                "best_return": best,
                "solved": best >= 475,
                "total_env_steps": s["total_steps"],
                "wall_s": round(wall, 1),
                "exploits": s["exploits"],
                "bytes_per_exploit": s["exploit_bytes"] / max(1, s["exploits"]),
                "max_checkpoint_bytes": s["max_checkpoint_bytes"],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    (root / "results.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
