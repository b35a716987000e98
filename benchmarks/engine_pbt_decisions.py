"""Would PBT on the engine find as much deciding on its members' training returns instead of on their
deterministic evaluations? The shipped engine PBT example (8 members x 100,000 steps, CartPole-v1,
the poor start) in arms, on the sweep seeds 0..N-1:

- ``metric:eval_return``: decisions on every member's evaluation after every interval (the default);
- ``metric:train_return``: the sweep's metric set to the mean return of the training episodes that
  ended in the interval; every member is still evaluated after every interval, so this arm measures
  what such decisions find, not time;
- ``decide_on:train_return``: ``method.decide_on: train_return``, the sweep's metric left as it is:
  decisions on training returns, and each member evaluated only after its last interval.

For each run it records the member PBT names (best.yaml) and that member's deterministic evaluation
after its last interval (10 episodes), whether it solved CartPole (>= 475), every member's final
evaluation, and the evaluation's share of the run (population_summary.json's phases).

    python benchmarks/engine_pbt_decisions.py --json docs/figures/engine_pbt_decisions.json
    python benchmarks/engine_pbt_decisions.py --arms metric:eval_return decide_on:train_return \\
        --seeds 5 --json docs/figures/engine_pbt_decide_on.json
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


ARMS = ("metric:eval_return", "metric:train_return", "decide_on:train_return")


def one(arm: str, seed: int, out: Path) -> dict[str, Any]:
    import pandas as pd
    import torch

    torch.set_num_threads(1)
    from autorl.api import sweep
    from autorl.yamlio import load_yaml

    key, value = arm.split(":")
    cfg = {**load_yaml(EXAMPLE), "seed": seed, "out": str(out / f"{key}-{value}-{seed}")}
    method = {k: v for k, v in cfg["method"].items() if k != "decide_on"}  # the example's own choice
    if key == "metric":  # decisions on the sweep's metric, evaluated after every interval
        cfg["metric"], cfg["method"] = value, method
    else:
        cfg["method"] = {**method, "decide_on": value}
    result = sweep(cfg, plots=False)
    best = load_yaml(result.out / "best.yaml")
    member = int(pd.read_csv(result.out / "trials.csv").set_index("trial").loc[int(best["trial"]), "member"])
    members = json.loads((result.out / "population.json").read_text())["members"]
    final = float(next(m for m in members if m["index"] == member)["metrics"]["eval_return"])
    phases = json.loads((result.out / "population_summary.json").read_text())["phases"]
    return {
        "arm": arm,
        "seed": seed,
        "named": int(best["trial"]),
        "named_eval_return": final,
        "solved": final >= SOLVED,
        "members_eval_return": [float(m["metrics"]["eval_return"]) for m in members],
        "evaluate_share": round(phases["evaluate"] / sum(phases.values()), 3),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3, help="sweep seeds 0..N-1")
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS[:2]))
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for arm in args.arms:
                rows.append(one(arm, seed, Path(tmp)))
                print(json.dumps(rows[-1]), flush=True)
    summary = {
        arm: {
            "solved": sum(r["solved"] for r in rows if r["arm"] == arm),
            "runs": sum(r["arm"] == arm for r in rows),
        }
        for arm in args.arms
    }
    print(json.dumps(summary))
    if args.json:
        command = "python benchmarks/engine_pbt_decisions.py --arms " + " ".join(args.arms)
        command += f" --seeds {args.seeds} --json {args.json}"
        out = {"runs": rows, "summary": summary, "command": command}
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
