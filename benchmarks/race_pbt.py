"""Does racing a PBT population's final members name a better one? PBT on the engine, Acrobot-v1, with
``race`` on; the member PBT would name (the best value) and the member the race names, each evaluated
as it stands on 20 fresh seeds.

The population: ``engine:ppo`` on Acrobot-v1, 16 members, 16 envs x 128 steps, 4 epochs, 4 minibatches,
observations and rewards normalised, 100,000 env steps per member, an exploit interval of 10,000; the
engine's default space less its two shape choices (every tensor hyperparameter mutable). ``race:
{share: 0.25, seeds: 10}``: the top 4 members by their last evaluation (``eval_episodes`` 10) run 10
race blocks of 10 episodes each. The race trains nothing, so one run gives both names: the same
population, named two ways. Each named member's final policy is then evaluated on 20 fresh seeds (the
seeds ``autorl reeval`` draws from, never a race seed) of 10 episodes each, from the run's final
checkpoint. Reported per sweep seed and over 5: how often the race names another member, each name's
estimate (PBT's: its last value; the race's: its race mean) against its fresh-seed mean (the optimism
gap), and the fresh-seed difference, race name minus PBT's, with 95% bootstrap CIs over sweep seeds.

    python benchmarks/race_pbt.py --json docs/figures/race_pbt.json

Runs are appended to ``--runs`` (JSON lines) as they finish and a killed run resumes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ARGS: dict[str, Any] = {
    "env": "Acrobot-v1",
    "n_envs": 16,
    "n_steps": 128,
    "n_epochs": 4,
    "n_minibatches": 4,
    "normalize_obs": True,
    "normalize_reward": True,
    "eval_episodes": 10,
}
BUDGET: dict[str, Any] = {"max": 100_000, "report_every": 10_000}
POPULATION = 16
RACE: dict[str, Any] = {"share": 0.25, "seeds": 10}
FRESH = 20


def sweep_config(seed: int, out: Path) -> dict[str, Any]:
    from autorl.space import SearchSpace

    space = SearchSpace.from_yaml(ROOT / "autorl/search_spaces/engine/ppo.yaml").to_dict()
    return {
        "name": f"race_pbt_{seed}",
        "target": "engine:ppo",
        "args": ARGS,
        "space": {k: v for k, v in space.items() if k not in ("n_epochs", "n_steps")},
        "budget": BUDGET,
        "method": {"name": "pbt", "population": POPULATION},
        "race": RACE,
        "seed": seed,
        "out": str(out / f"pbt-{seed}"),
    }


def _final_batch(run: Path, configs: dict[int, dict[str, Any]], seeds: dict[int, int]) -> Any:
    """The population as it ended: its engine batch loaded from the final checkpoint."""
    import torch

    from autorl.engine.target import EngineBatch

    state = json.loads((run / "population.json").read_text())
    path = run / state["members"][0]["checkpoint"] / "engine.pt"
    order = sorted(configs)
    batch = EngineBatch([{**ARGS, **configs[i]} for i in order], [seeds[i] for i in order], BUDGET["max"])
    batch.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
    return batch


def one(seed: int, out: Path) -> dict[str, Any]:
    """One PBT run with its race, and both names on fresh seeds."""
    import torch

    torch.set_num_threads(1)
    from autorl.api import sweep
    from autorl.evaluate import fresh_seeds
    from autorl.yamlio import load_yaml

    cfg = sweep_config(seed, out)
    start = time.perf_counter()
    result = sweep(cfg, plots=False, resume=(Path(cfg["out"]) / "run.json").is_file())
    took = time.perf_counter() - start
    df = result.trials
    members = df[df["race_of"].isna()]
    plain = members.loc[members["value"].idxmax()]  # what PBT names without a race
    best = load_yaml(result.out / "best.yaml")
    raced = members.loc[members["trial"] == best["trial"]].iloc[0]
    state = json.loads((result.out / "population.json").read_text())
    configs = {m["index"]: m["config"] for m in state["members"]}
    seeds = {int(r["member"]): int(r["seed"]) for _, r in members.iterrows()}
    batch = _final_batch(result.out, configs, seeds)
    names = {"plain": int(plain["member"]), "raced": int(raced["member"])}
    fresh: dict[str, list[float]] = {k: [] for k in names}
    for s in fresh_seeds(FRESH):
        got = batch.evaluate({m: s for m in set(names.values())})
        for k, m in names.items():
            fresh[k].append(float(got[m]["eval_return"]))
    return {
        "seed": seed,
        "members": names,
        "estimate": {"plain": float(plain["value"]), "raced": float(best["value"])},
        "fresh": fresh,
        "race": best["race"],
        "sweep_s": took,
    }


def _done(path: Path) -> dict[int, dict[str, Any]]:
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["seed"]: r for r in rows}


def _ci(x: np.ndarray, rng: np.random.Generator, reps: int = 10_000) -> list[float]:
    """95% percentile bootstrap CI of the mean of ``x`` (over sweep seeds)."""
    means = x[rng.integers(0, len(x), (reps, len(x)))].mean(1)
    return [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]


def report(runs: Path, json_out: Path | None) -> None:
    done = _done(runs)
    rows = [done[s] for s in sorted(done)]
    rng = np.random.default_rng(0)
    summary: dict[str, Any] = {}
    for k in ("plain", "raced"):
        fresh = np.array([np.mean(r["fresh"][k]) for r in rows])
        optimism = np.array([r["estimate"][k] for r in rows]) - fresh
        summary[k] = {
            "fresh_mean": {"per_seed": fresh.tolist(), "mean": float(fresh.mean()), "ci95": _ci(fresh, rng)},
            "optimism": {
                "per_seed": optimism.tolist(),
                "mean": float(optimism.mean()),
                "ci95": _ci(optimism, rng),
            },
        }
    diff = np.array([np.mean(r["fresh"]["raced"]) - np.mean(r["fresh"]["plain"]) for r in rows])
    out = {
        "setting": {"args": ARGS, "budget": BUDGET, "population": POPULATION, "race": RACE, "fresh": FRESH},
        "sweep_seeds": [r["seed"] for r in rows],
        "renamed": sum(r["members"]["plain"] != r["members"]["raced"] for r in rows),
        "names": summary,
        "fresh_difference": {"per_seed": diff.tolist(), "mean": float(diff.mean()), "ci95": _ci(diff, rng)},
        "sweep_s": [round(r["sweep_s"], 1) for r in rows],
    }
    print(json.dumps(out, indent=1))
    if json_out:
        json_out.write_text(json.dumps(out, indent=1) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5, help="sweep seeds 0..N-1")
    p.add_argument("--runs", type=Path, default=ROOT / "docs/figures/race_pbt_runs.jsonl")
    p.add_argument("--out", type=Path, default=Path("runs/race_pbt"), help="the runs' directories")
    p.add_argument("--smoke", action="store_true", help="a tiny budget, to check the script runs")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if args.smoke:
        global FRESH
        BUDGET.update(max=4096, report_every=2048)
        FRESH = 2
    for seed in range(args.seeds):
        if seed in _done(args.runs):
            continue
        row = one(seed, args.out)
        with open(args.runs, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(
            f"seed {seed}: PBT names member {row['members']['plain']} "
            f"(estimate {row['estimate']['plain']:.1f}, fresh {np.mean(row['fresh']['plain']):.1f}), "
            f"the race member {row['members']['raced']} (estimate {row['estimate']['raced']:.1f}, "
            f"fresh {np.mean(row['fresh']['raced']):.1f}); {row['sweep_s']:.0f} s",
            flush=True,
        )
    report(args.runs, args.json)


if __name__ == "__main__":
    main()
