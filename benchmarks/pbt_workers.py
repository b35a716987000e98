"""PBT member-intervals per second with 1 and 2 worker processes, on the SB3 PPO members of the shipped
search_spaces/examples/pbt_cartpole.yaml (4 members, 40,000 steps each in 4,000-step intervals,
evaluation included), as shipped unless an option changes it.

    python benchmarks/pbt_workers.py [--budget 40000] [--interval 4000] [--population 4]

The two runs are the same population (each member trains alike on one worker or two). The rate
is member-intervals per second of the population loop from the end of its first interval to
the end of its last (every interval after the first, and every round of exploits between them), so the
workers' start-up (importing torch and SB3, building the members) is left out; the rate over the whole
sweep, start-up included, is printed beside it. Goal (issue 12): >= 1.8x with 2 workers.
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


def run(workers: int, a: argparse.Namespace, root: Path) -> tuple[float, float, int, float, list[float]]:
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
    if state["intervals"] < 2:
        raise SystemExit("the rate is taken after the first interval: give --budget at least 2 x --interval")
    first, last = state["timeline"][0][1], state["timeline"][-1][1]  # the sweep's clock after each interval
    steady = (state["intervals"] - 1) * a.population / (last - first)
    return wall, busy, intervals, steady, [float(m["score"]) for m in state["members"]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=40000)
    ap.add_argument("--interval", type=int, default=4000)
    ap.add_argument("--population", type=int, default=4)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        rates, whole, scores = {}, {}, {}
        for workers in (1, 2):
            wall, busy, n, rates[workers], scores[workers] = run(workers, a, Path(d))
            whole[workers] = n / wall
            print(
                f"workers {workers}: {rates[workers]:.3f} member-intervals/s after the first interval; "
                f"{n} in {wall:.1f} s of wall time with start-up ({whole[workers]:.3f}/s); "
                f"members trained {busy:.1f} s in all",
                flush=True,
            )
        # a member trains alike on one worker or two, so both runs are the same population (like for like:
        # a CartPole member's evaluation costs more as it learns, so different populations cost differently)
        print(f"the same population on 1 and 2 workers: {scores[1] == scores[2]} (final scores {scores[1]})")
        print(
            f"speed-up with 2 workers: {rates[2] / rates[1]:.2f}x (goal >= 1.8x); "
            f"over the whole sweep, start-up included: {whole[2] / whole[1]:.2f}x"
        )


if __name__ == "__main__":
    main()
