"""PBT member-intervals per second with 1 and 2 worker processes, on the SB3 PPO members of the shipped
search_spaces/examples/pbt_cartpole.yaml (4 members, evaluation included).

    python benchmarks/pbt_workers.py [--budget 12000] [--interval 4000] [--population 4]

The rate is member-intervals completed per second of the population loop (from its first interval to
its last, so worker start-up is left out; it is printed too). Goal (issue 12): >= 1.8x with 2 workers.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from autorl.api import sweep
from autorl.yamlio import load_yaml

CONFIG = Path(__file__).resolve().parent.parent / "search_spaces" / "examples" / "pbt_cartpole.yaml"


def run(workers: int, a: argparse.Namespace, root: Path) -> tuple[float, float, int]:
    cfg = {
        **load_yaml(CONFIG),
        "workers": workers,
        "method": {"name": "pbt", "population": a.population},
        "budget": {"max": a.budget, "report_every": a.interval},
        "out": str(root / f"w{workers}"),
    }
    t0 = time.perf_counter()
    result = sweep(cfg, plots=False)
    wall = time.perf_counter() - t0
    state = json.loads((result.out / "population.json").read_text())
    intervals = state["intervals"] * a.population
    busy = sum(m["seconds"] for m in state["members"])
    return wall, busy, intervals


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=12000)
    ap.add_argument("--interval", type=int, default=4000)
    ap.add_argument("--population", type=int, default=4)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        rates = {}
        for workers in (1, 2):
            wall, busy, n = run(workers, a, Path(d))
            rates[workers] = n / wall
            print(
                f"workers {workers}: {n} member-intervals in {wall:.1f} s of wall time "
                f"({rates[workers]:.3f}/s; members trained {busy:.1f} s in all)",
                flush=True,
            )
        print(f"speed-up with 2 workers: {rates[2] / rates[1]:.2f}x (goal >= 1.8x)")


if __name__ == "__main__":
    main()
