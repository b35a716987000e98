"""Would PBT on the engine find as much deciding on its members' training returns instead of on their
deterministic evaluations? The shipped engine PBT example (8 members x 100,000 steps, CartPole-v1,
the poor start) with ``metric: eval_return`` (what it decides on today) and ``metric: train_return``
(the mean return of the training episodes that ended in the interval), on the sweep seeds 0..N-1.

Both arms still evaluate every member after every interval (a population's evaluation is not
skipped), so this measures what the decisions find, not time. For each run it records the member PBT
names (best.yaml) and that member's deterministic evaluation after its last interval
(its last metrics in population.json: 10 episodes), whether it solved CartPole (>= 475), and the
evaluation's share of the run (population_summary.json's phases).

    python benchmarks/engine_pbt_decisions.py --json docs/figures/engine_pbt_decisions.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "search_spaces" / "examples" / "engine_pbt_cartpole.yaml"
SOLVED = 475.0


def one(metric: str, seed: int, out: Path) -> dict[str, Any]:
    import pandas as pd
    import torch

    torch.set_num_threads(1)
    from autorl.api import sweep
    from autorl.yamlio import load_yaml

    cfg = {**load_yaml(EXAMPLE), "metric": metric, "seed": seed, "out": str(out / f"{metric}-{seed}")}
    result = sweep(cfg, plots=False)
    best = load_yaml(result.out / "best.yaml")
    member = int(pd.read_csv(result.out / "trials.csv").set_index("trial").loc[int(best["trial"]), "member"])
    members = json.loads((result.out / "population.json").read_text())["members"]
    final = float(next(m for m in members if m["index"] == member)["metrics"]["eval_return"])
    phases = json.loads((result.out / "population_summary.json").read_text())["phases"]
    return {
        "metric": metric,
        "seed": seed,
        "named": int(best["trial"]),
        "named_eval_return": final,
        "solved": final >= SOLVED,
        "evaluate_share": round(phases["evaluate"] / sum(phases.values()), 3),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3, help="sweep seeds 0..N-1")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for metric in ("eval_return", "train_return"):
                rows.append(one(metric, seed, Path(tmp)))
                print(json.dumps(rows[-1]), flush=True)
    summary = {
        m: {
            "solved": sum(r["solved"] for r in rows if r["metric"] == m),
            "runs": sum(r["metric"] == m for r in rows),
        }
        for m in ("eval_return", "train_return")
    }
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps({"runs": rows, "summary": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
