"""How hard is each side's test set in the engine-against-SB3 parity benchmark (engine_sb3_space.py)?

Each side tests a seed's policy on its own 20 start states, the same ones for every configuration (the
engine's evaluation stream of that seed; SB3's test env seeded ``seed + 10000``, its second evaluation).
So a seed whose start states are easy helps every configuration of that side, and the 16 configurations
are not independent draws. This script scores one fixed policy on both sides' test sets, seed by seed,
through each side's own evaluation code (``Population.evaluate``; ``SB3Target.evaluate`` called as
engine_sb3_space.py calls it): the actor's output layer zeroed, which on Pendulum-v1 is zero torque
(informative: the return measures how far from upright the starts lie) and on Acrobot-v1 one fixed
action (uninformative: -500 from every start, so Acrobot's sets are not told apart). It then reads
the parity runs and compares, per configuration, the difference of the sides' means before and after
subtracting each seed's test-set score, with a sign test.

    python benchmarks/engine_sb3_starts.py --runs docs/figures/engine_sb3_space_runs.jsonl \\
        --json docs/figures/engine_sb3_starts.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED: dict[str, Any] = {"n_envs": 16, "n_minibatches": 4, "normalize_obs": True, "normalize_reward": True}
TEST_EPISODES = 20


def engine_set(env: str, seeds: list[int]) -> np.ndarray:
    """Each seed's mean test return of the zeroed actor through the engine's evaluation."""
    import torch

    from autorl.engine.config import engine_config, hparams_of
    from autorl.engine.ppo import Population

    torch.set_num_threads(1)
    config = {"env": env, **SHARED, "n_steps": 32}
    pop = Population(engine_config(config, total_steps=None), [hparams_of(config)] * len(seeds), seeds=seeds)
    actor, _, _ = pop._layout.split(pop._m.theta)
    with torch.no_grad():
        for tensor in actor[-1]:
            tensor.zero_()
    return pop.evaluate(TEST_EPISODES).numpy()


def sb3_set(env: str, seed: int) -> float:
    """The seed's mean test return of the zeroed actor through SB3's evaluation (its second call, as
    engine_sb3_space.py's train-then-evaluate reads it)."""
    import torch

    from autorl.engine.handover import to_sb3
    from autorl.targets import TrialContext
    from autorl.targets.sb3 import SB3Target

    torch.set_num_threads(1)
    handed = to_sb3({"env": env, **SHARED, "n_steps": 32})
    agent = SB3Target(
        {**handed["args"], "eval_episodes": TEST_EPISODES, **handed["params"]},
        TrialContext(seed=seed, budget=1),
    )
    with torch.no_grad():
        agent.model.policy.action_net.weight.zero_()
        agent.model.policy.action_net.bias.zero_()
    agent.evaluate()  # the evaluation at the end of train()
    return float(agent.evaluate()["eval_return"])


def sign_test(wins: int, n: int) -> float:
    """Two-sided exact sign test p-value."""
    from scipy.stats import binomtest

    return float(binomtest(wins, n).pvalue)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, default=ROOT / "docs/figures/engine_sb3_space_runs.jsonl")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    rows = [json.loads(line) for line in args.runs.read_text().splitlines() if line.strip()]
    seeds = list(range(args.seeds))
    out: dict[str, Any] = {"seeds": seeds, "tasks": {}}
    raw_wins = adj_wins = total = 0
    for env in ("Acrobot-v1", "Pendulum-v1"):
        e_set = engine_set(env, seeds)
        s_set = np.array([sb3_set(env, s) for s in seeds])
        runs = [r for r in rows if r["env"] == env]
        configs = sorted({r["config"] for r in runs})
        per = []
        for c in configs:
            side = {
                name: np.array(
                    [
                        next(
                            r["return"]
                            for r in runs
                            if r["config"] == c and r["side"] == name and r["seed"] == s
                        )
                        for s in seeds
                    ]
                )
                for name in ("engine", "sb3")
            }
            raw = float(np.nanmean(side["engine"]) - np.nanmean(side["sb3"]))
            adjusted = float(np.nanmean(side["engine"] - e_set) - np.nanmean(side["sb3"] - s_set))
            with np.errstate(invalid="ignore", divide="ignore"):  # a constant test-set score: no correlation
                corr = [
                    float(np.corrcoef(side[n], ref)[0, 1]) for n, ref in (("engine", e_set), ("sb3", s_set))
                ]
            per.append(
                {"config": c, "raw": raw, "adjusted": adjusted, "corr_engine": corr[0], "corr_sb3": corr[1]}
            )
        raw_w = sum(x["raw"] > 0 for x in per)
        adj_w = sum(x["adjusted"] > 0 for x in per)
        raw_wins, adj_wins, total = raw_wins + raw_w, adj_wins + adj_w, total + len(per)
        out["tasks"][env] = {
            "engine_set": e_set.tolist(),
            "sb3_set": s_set.tolist(),
            "engine_set_mean": float(e_set.mean()),
            "sb3_set_mean": float(s_set.mean()),
            "configs": per,
            "engine_ahead_raw": raw_w,
            "engine_ahead_adjusted": adj_w,
            "sign_test_raw": sign_test(raw_w, len(per)),
            "sign_test_adjusted": sign_test(adj_w, len(per)),
        }
        print(
            f"{env}: zeroed actor on the test sets, engine {e_set.mean():.1f}, SB3 {s_set.mean():.1f}; "
            f"engine ahead in {raw_w}/{len(per)} configurations (p = {sign_test(raw_w, len(per)):.3f}), "
            f"{adj_w}/{len(per)} after subtracting each seed's test-set score "
            f"(p = {sign_test(adj_w, len(per)):.3f})",
            flush=True,
        )
    out["both"] = {
        "engine_ahead_raw": raw_wins,
        "engine_ahead_adjusted": adj_wins,
        "n": total,
        "sign_test_raw": sign_test(raw_wins, total),
        "sign_test_adjusted": sign_test(adj_wins, total),
    }
    print(
        f"both tasks: {raw_wins}/{total} (p = {out['both']['sign_test_raw']:.3f}) -> {adj_wins}/{total} "
        f"(p = {out['both']['sign_test_adjusted']:.3f})"
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
