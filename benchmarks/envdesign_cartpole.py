"""Default-only vs DR vs PLR vs curricula (ALP-GMM, widening ranges) on a CartPole family with wide
pole-length and force ranges.

Equal env steps per run, 3 seeds, PPO with rl-zoo3's CartPole settings; held-out levels inside and
outside the training ranges (the same set for every run). Prints a table and writes
docs/figures/envdesign_*.png and docs/figures/envdesign_results.csv.

    python benchmarks/envdesign_cartpole.py [--steps 30000] [--seeds 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from autorl.analysis import stats
from autorl.envs.ac import EnvDesignACTarget
from autorl.envs.plots import heatmap, plot_level_history
from autorl.envs.target import EnvDesignTarget
from autorl.targets.base import TrialContext

FIG = Path(__file__).resolve().parents[1] / "docs" / "figures"
# Pole length and force vary widely; the other physical parameters stay at their defaults.
TRAIN_RANGES = {
    "pole_length": [0.1, 1.5],
    "force_mag": [3.0, 20.0],
    "cart_mass": [1.0, 1.0],
    "pole_mass": [0.1, 0.1],
    "gravity": [9.8, 9.8],
}
# --ranges full: pole length and force over their whole declared ranges (0.05-2.5, 1-30), where many
# levels are trivial or hopeless; held-out levels are then unseen contexts from the same ranges.
FULL_RANGES = {**TRAIN_RANGES, "pole_length": [0.05, 2.5], "force_mag": [1.0, 30.0]}
PPO = {
    "n_envs": 4,
    "n_steps": 64,
    "batch_size": 128,
    "n_epochs": 10,
    "gamma": 0.98,
    "gae_lambda": 0.8,
    "learning_rate": 1.0e-3,
    "ent_coef": 0.0,
}
# --learner actor_critic: the meta-gradient agent (gamma and lambda learned online), CleanRL-style A2C
# settings as in benchmarks/metagrad_vs_fixed.py; PLR is not available for it.
ACTOR_CRITIC = {
    "num_envs": 8,
    "num_steps": 16,
    "lr": 7.0e-4,
    "eval_episodes": 1,
    "meta_gamma": True,
    "meta_gae_lambda": True,
    "meta_lr": 0.03,
}
METHODS = {
    "default": {"level_sampler": "default"},
    "dr": {"level_sampler": "dr"},
    "plr": {"level_sampler": "plr"},  # paper defaults: rank, beta 0.1, rho 0.1, positive value loss
    "alp_gmm": {"level_sampler": "curriculum"},  # ALP-GMM teacher with its defaults
    "widening": {
        "level_sampler": "curriculum",
        "curriculum_teacher": "widening",
        "curriculum_threshold": 250.0,
    },
}


def summarise(res: pd.DataFrame) -> None:
    """Mean/std table, then held-out mean with a 95 % bootstrap CI over seeds and the probability that
    a run of each method beats a run of DR and of default-only (Mann-Whitney), with its CI."""
    cols = ["heldout_return", "heldout_in_range", "heldout_out_of_range", "train_return", "gen_gap"]
    cols = [c for c in cols if c in res]  # full ranges leave no level outside training
    print(res.groupby("method")[cols].agg(["mean", "std"]).round(1).to_string())
    runs = {m: g["heldout_return"].to_numpy()[:, None] for m, g in res.groupby("method")}
    means = stats.stratified_bootstrap_ci(runs, stats.mean)
    print(
        f"\nheld-out return over {res['seed'].nunique()} seeds: mean [95% CI]; "
        "P(run beats a run of X) [95% CI]"
    )
    for m, iv in sorted(means.items(), key=lambda kv: -kv[1].point):
        vs = [
            f"P(>{b}) {p.point:.2f} [{p.low:.2f}, {p.high:.2f}]"
            for b in ("dr", "default")
            if b in runs and b != m
            for p in [stats.probability_of_improvement_ci(runs[m], runs[b])]
        ]
        print(f"{m:>10}: {iv.point:6.1f} [{iv.low:6.1f}, {iv.high:6.1f}]  " + "  ".join(vs))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30_000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="run seeds first-seed .. first-seed+seeds-1")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--ranges", choices=["issue", "full"], default="issue")
    ap.add_argument("--learner", choices=["ppo", "actor_critic"], default="ppo")
    ap.add_argument("--tag", default="", help="suffix of the output files, to keep several budgets")
    ap.add_argument("--summarise", nargs="+", metavar="CSV", help="only summarise result CSVs (concatenated)")
    a = ap.parse_args()
    if a.summarise:
        summarise(pd.concat([pd.read_csv(f) for f in a.summarise]))
        return
    torch.set_num_threads(1)
    FIG.mkdir(parents=True, exist_ok=True)
    rows, levels = [], []
    for seed in range(a.first_seed, a.first_seed + a.seeds):
        for name in a.methods.split(","):
            if a.learner == "actor_critic" and name == "plr":
                continue  # PLR needs an on-policy rollout buffer's value losses
            t = time.time()
            cfg = {
                **(PPO if a.learner == "ppo" else ACTOR_CRITIC),
                **METHODS[name],
                "train_ranges": FULL_RANGES if a.ranges == "full" else TRAIN_RANGES,
                "n_test_levels": 30,
                "family": "CartPole",
            }
            learner = EnvDesignTarget if a.learner == "ppo" else EnvDesignACTarget
            target = learner(cfg, TrialContext(seed=seed, budget=a.steps))
            m = target.train(a.steps)
            rows.append({"method": name, "seed": seed, **m, "wall_s": time.time() - t})
            df = target.last_eval.assign(method=name, seed=seed)
            levels.append(df)
            print(
                f"{name:>10} seed {seed}: held-out {m['heldout_return']:.1f} "
                f"(in {m['heldout_in_range']:.1f}, out {m.get('heldout_out_of_range', float('nan')):.1f}) "
                f"train {m['train_return']:.1f} [{time.time() - t:.0f}s]",
                flush=True,
            )
            if name in ("plr", "alp_gmm", "widening") and seed == 0:
                plot_level_history(target.levels_log, FIG / f"envdesign_{name}_history{a.tag}.png")
            pd.DataFrame(rows).to_csv(FIG / f"envdesign_results{a.tag}.csv", index=False)
            pd.concat(levels).to_csv(FIG / f"envdesign_levels{a.tag}.csv", index=False)
    summarise(pd.DataFrame(rows))
    lv = pd.concat(levels)
    for name in lv["method"].unique():
        heatmap(
            lv[lv["method"] == name],
            "pole_length",
            "force_mag",
            FIG / f"envdesign_heatmap_{name}{a.tag}.png",
            bins=5,
            title=f"{name}: held-out return (all seeds)",
        )


if __name__ == "__main__":
    main()
