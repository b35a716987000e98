"""PBT / PB2 vs fixed hyperparameters on CartPole-v1 (SB3 PPO) from a deliberately poor space.

    python benchmarks/pbt_cartpole.py --seeds 0 1 2 --population 4 --budget 40000 --interval 4000

It runs the shipped search_spaces/examples/pbt_cartpole.yaml (a deliberately poor start: every
member's first learning rate is 1e-5..3e-5) through `autorl.api.sweep`. "Fixed" is the same population
(same initial configs, same evaluation intervals) with the method option ``exploit: false``. Solved =
deterministic return >= 475 over 10 episodes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from autorl.api import sweep
from autorl.results.population import read_summary
from autorl.yamlio import load_yaml

CONFIG = Path(__file__).resolve().parent.parent / "search_spaces" / "examples" / "pbt_cartpole.yaml"
SOLVED = 475.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--population", type=int, default=4)
    ap.add_argument("--budget", type=int, default=40000)
    ap.add_argument("--interval", type=int, default=4000)
    ap.add_argument("--methods", nargs="+", default=["fixed", "pbt", "pb2"])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    base = load_yaml(CONFIG)
    root = Path(a.out or tempfile.mkdtemp(prefix="pbt_cartpole_"))
    rows = []
    for seed in a.seeds:
        for method in a.methods:
            name = "pb2" if method == "pb2" else "pbt"
            options = {"name": name, "population": a.population, "interval": a.interval}
            if method == "fixed":
                options["exploit"] = False
            cfg = {
                **base,
                "method": options,
                "seed": seed,
                "workers": a.workers,
                "budget": {"max": a.budget, "report_every": a.interval},
                "out": str(root / f"{method}_{seed}"),
            }
            t0 = time.perf_counter()
            result = sweep(cfg, plots=False)
            wall = time.perf_counter() - t0
            s = read_summary(result.out)
            state = json.loads((result.out / "population.json").read_text())
            members = state["members"]
            best_member = max(members, key=lambda m: m["score"] or -1e9)
            best = best_member["score"]
            # anytime: the first interval at which any member reached the solved return
            hits = [int(step) for m in members for step, v in m["curve"].items() if v >= SOLVED]
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
                "checkpoint_bytes": s["checkpoint_bytes"],
                "best_lr_final": best_member["config"]["learning_rate"],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    (root / "results.json").write_text(json.dumps(rows, indent=2))
    print(f"results: {root / 'results.json'}")


if __name__ == "__main__":
    main()
