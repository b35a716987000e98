"""PBT / PB2 vs fixed hyperparameters on CartPole-v1 (SB3 PPO) from a deliberately poor space.

    python benchmarks/pbt_cartpole.py --seeds 0 1 2 --population 4 --budget 40000 --interval 4000

"Fixed" is the same population (same initial configs, same evaluation intervals) with exploit switched
off (PBTOptions(exploit=False)). Solved = deterministic return >= 475 over 10 episodes.
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

# A deliberately poor start: every initial member's learning rate is drawn from 1e-5..3e-5 ("init"),
# 30-100x below rl-zoo's 1e-3 for CartPole, so the fixed population cannot solve the task in budget.
# Explore may move anywhere in low..high (PBT: x0.8/x1.2 or resample; PB2: GP-UCB over the bounds).
SPACE = {
    "learning_rate": {
        "type": "float",
        "low": 1.0e-5,
        "high": 1.0e-2,
        "log": True,
        "mutable": True,
        "init": [1.0e-5, 3.0e-5],
    },
    "clip_range": {"type": "float", "low": 0.05, "high": 0.4, "mutable": True},
    "ent_coef": {
        "type": "float",
        "low": 1.0e-8,
        "high": 0.1,
        "log": True,
        "mutable": True,
        "init": [1e-8, 1e-6],
    },
}
SOLVED = 475.0
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
    ap.add_argument("--interval", type=int, default=4000)
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
            members, s = run_population(
                cls,
                space,
                ARGS,
                root / f"{method}_{seed}",
                budget=a.budget,
                interval=a.interval,
                metric="eval_return",
                seed=seed,
                opts=PBTOptions(population=a.population, pb2=method == "pb2", exploit=method != "fixed"),
            )
            wall = time.perf_counter() - t0
            best = max(m.score for m in members)
            # anytime: the first interval at which any member reached the solved return
            hits = [step for m in members for step, v in m.curve.items() if v >= SOLVED]
            first = min(hits) if hits else None
            row = {
                "method": method,
                "seed": seed,
                "best_final_return": best,
                "solved_at_end": best >= SOLVED,
                "first_solved_member_steps": first,
                "first_solved_population_steps": first * a.population if first else None,
                "total_env_steps": s["total_steps"],
                "wall_s": round(wall, 1),
                "exploits": s["exploits"],
                "s_per_exploit": round(s["exploit_seconds"] / max(1, s["exploits"]), 3),
                "bytes_per_exploit": round(s["exploit_bytes"] / max(1, s["exploits"])),
                "max_checkpoint_bytes": s["max_checkpoint_bytes"],
                "best_lr_final": max(members, key=lambda m: m.score).config["learning_rate"],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    (root / "results.json").write_text(json.dumps(rows, indent=2))
    print(f"results: {root / 'results.json'}")


if __name__ == "__main__":
    main()
