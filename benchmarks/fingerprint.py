"""What a refactoring must not change: the trials of a few seeded runs, one per way of running.

Runs, each with one worker and a fixed seed:

- ``sweep``: ASHA on SB3's PPO (CartPole, a small space): trials one at a time, intermediate reports,
  pruning;
- ``batch``: random search on the batched engine with ``batch: 4``: trials trained together, slots refilled;
- ``pbt_engine``: PBT on the engine (the shipped example at a small budget): a population as one
  computation, copies by index;
- ``pbt_sb3``: PBT on SB3's PPO members: copies through checkpoints;
- ``smoke``: ``benchmarks/suites/smoke.yaml``, the synthetic comparison (cells in processes, reports).

and prints, for each, its trials (state, value, budget; a population's members' schedules) and one
digest of them. Two commits give the same digests when they compute the same thing::

    python benchmarks/fingerprint.py --out /tmp/fp-before.json
    python benchmarks/fingerprint.py --out /tmp/fp-after.json --compare /tmp/fp-before.json

Wall time: about 40 s here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from autorl.api import sweep
from autorl.compare import load_suite, run_suite

SB3_SPACE = {
    "learning_rate": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True, "mutable": True},
    "n_steps": {"type": "int", "low": 64, "high": 128, "transform": "pow2"},
    "gamma": {"type": "float", "low": 0.95, "high": 0.999, "log": True, "transform": "one_minus"},
}
ENGINE_ARGS = {"env": "CartPole-v1", "n_envs": 8, "n_steps": 16, "n_epochs": 2, "n_minibatches": 2}


def _configs() -> dict[str, dict[str, Any]]:
    lr = {"type": "float", "low": 1e-4, "high": 3e-3, "log": True, "mutable": True}
    return {
        "sweep": {
            "target": "sb3:ppo",
            "args": {"env": "CartPole-v1", "n_envs": 2, "eval_episodes": 3},
            "space": SB3_SPACE,
            "budget": {"max": 2048, "min": 512, "report_every": 512},
            "method": {"name": "asha", "reduction_factor": 2},
            "trials": 6,
            "seed": 3,
        },
        "batch": {
            "target": "engine:ppo",
            "args": {**ENGINE_ARGS, "eval_episodes": 3},
            "space": {"learning_rate": lr, "gamma": SB3_SPACE["gamma"]},
            "budget": {"max": 2048, "report_every": 512},
            "method": "random",
            "trials": 8,
            "batch": 4,
            "seed": 3,
        },
        "pbt_engine": {
            "target": "engine:ppo",
            "args": {**ENGINE_ARGS, "eval_episodes": 3},
            "space": {"learning_rate": {**lr, "init": [1e-4, 3e-4]}},
            "budget": {"max": 2048, "report_every": 256},
            "method": {"name": "pbt", "population": 4},
            "seed": 3,
        },
        "pbt_sb3": {
            "target": "sb3:ppo",
            "args": {"env": "CartPole-v1", "n_envs": 2, "n_steps": 64, "eval_episodes": 3},
            "space": {"learning_rate": {**lr, "init": [1e-4, 3e-4]}},
            "budget": {"max": 1024, "report_every": 256},
            "method": {"name": "pbt", "population": 3},
            "seed": 3,
        },
    }


def _rows(df: pd.DataFrame, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """The rows of ``df`` in ``columns`` (those it has), floats to 6 decimals."""
    rows = df[[c for c in columns if c in df]].to_dict("records")
    return [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the runs and digests")
    parser.add_argument("--compare", type=Path, help="an earlier --out: say which digests differ")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, cfg in _configs().items():
            res = sweep({**cfg, "out": str(root / name)}, plots=False)
            rows = _rows(res.trials, ("trial", "member", "state", "value", "budget"))
            if "schedule" in res.trials:
                rows = [{**r, "schedule": s} for r, s in zip(rows, res.trials["schedule"], strict=True)]
            results[name] = {"rows": rows, "digest": _digest(rows)}
        suite = load_suite(Path(__file__).parent / "suites" / "smoke.yaml", out=str(root / "smoke"))
        runs, _, _ = run_suite(suite, jobs=1)
        rows = _rows(runs, ("task", "method", "seed", "test_value", "tuning_value", "budget_used"))
        results["smoke"] = {"rows": rows, "digest": _digest(rows)}
    for name, r in results.items():
        print(f"{name:>11}: {r['digest']}  ({len(r['rows'])} rows)")
    args.out.write_text(json.dumps(results, indent=1, default=str))
    if args.compare:
        before = json.loads(args.compare.read_text())
        same = [n for n in results if before.get(n, {}).get("digest") == results[n]["digest"]]
        differ = [n for n in results if n not in same]
        print(f"same as {args.compare}: {', '.join(same) or 'none'}")
        print(f"different: {', '.join(differ) or 'none'}")


if __name__ == "__main__":
    main()
