"""Meta-gradient gamma, lambda versus the same agent with those values fixed, started from poor values.

For each task three variants run at equal env steps on the same seeds:

* ``fixed_poor``: the agent with a poor (gamma, lambda), kept fixed;
* ``meta_poor``: the same agent and start, with gamma and lambda learned online by meta-gradients towards the
  meta-objective with reference values (gamma_ref, lambda_ref);
* ``fixed_ref``: the agent with (gamma, lambda) fixed at the reference values, for context (what a well-tuned
  static choice reaches).

The poor values are deliberately myopic: gamma = 0.6, lambda = 0.3 on CartPole-v1 (a horizon of about 2.5
steps, where the pole's fall is only felt a few steps before it happens) and gamma = 0.5, lambda = 0.3 on
Pendulum-v1 (the swing-up pays off only after many steps). Reference values are the usual ones:
gamma_ref = 0.99, lambda_ref = 0.95 on CartPole (CleanRL), gamma_ref = 0.9, lambda_ref = 0.95 on Pendulum
(rl-zoo3's PPO).

Usage::

    python benchmarks/metagrad_vs_fixed.py --seeds 0 1 2 --jobs 2 --out runs/metagrad_vs_fixed

Prints a table of the final evaluation return (mean ± std over seeds) and writes
``docs/figures/metagrad_vs_fixed.png`` and one eta history plot per task (``metagrad_history_<task>.png``).
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from autorl.agents.actor_critic import ActorCriticTarget, plot_history
from autorl.targets import TrialContext

REPO = Path(__file__).resolve().parents[1]

TASKS: dict[str, dict[str, Any]] = {
    "CartPole-v1": {
        "budget": 40_000,
        "base": {"env_id": "CartPole-v1", "num_envs": 8, "num_steps": 16, "lr": 7.0e-4, "eval_episodes": 5},
        "poor": {"gamma": 0.6, "gae_lambda": 0.3},
        "ref": {"gamma": 0.99, "gae_lambda": 0.95},
    },
    "Pendulum-v1": {
        "budget": 60_000,
        "base": {
            "env_id": "Pendulum-v1",
            "num_envs": 8,
            "num_steps": 16,
            "lr": 3.0e-3,
            "clip_coef": 0.2,
            "update_epochs": 4,
            "norm_adv": True,
            "reward_scale": 0.1,
            "ent_coef": 0.0,
            "eval_episodes": 5,
        },
        "poor": {"gamma": 0.5, "gae_lambda": 0.3},
        "ref": {"gamma": 0.9, "gae_lambda": 0.95},
    },
}
META = {"meta_gamma": True, "meta_gae_lambda": True, "meta_lr": 0.03}
VARIANTS = ("fixed_poor", "meta_poor", "fixed_ref")
EVALS = 10  # evaluations per run, evenly spaced
FINAL_EPISODES = 20


def variant_config(task: str, variant: str) -> dict[str, Any]:
    spec = TASKS[task]
    refs = {"ref_gamma": spec["ref"]["gamma"], "ref_gae_lambda": spec["ref"]["gae_lambda"]}
    if variant == "fixed_poor":
        return {**spec["base"], **spec["poor"]}
    if variant == "meta_poor":
        return {**spec["base"], **spec["poor"], **META, **refs}
    return {**spec["base"], **spec["ref"]}


def run_one(task: str, variant: str, seed: int, budget: int) -> dict[str, Any]:
    """Train one run of ``budget`` env steps; return its evaluation curve, final return and eta history."""
    agent = ActorCriticTarget(variant_config(task, variant), TrialContext(seed=seed))
    start = time.perf_counter()
    curve = []
    for _ in range(EVALS):
        m = agent.train(budget // EVALS)
        curve.append((m["env_steps"], m["eval_return"]))
    final = agent.evaluate(FINAL_EPISODES)
    eta = agent.current_eta()
    return {
        "task": task,
        "variant": variant,
        "seed": seed,
        "curve": curve,
        "final": final,
        "gamma": eta["gamma"],
        "gae_lambda": eta["gae_lambda"],
        "meta_time_share": m["meta_time_share"],
        "wall_s": time.perf_counter() - start,
        "history": agent.history,
    }


def summarise(results: list[dict[str, Any]]) -> str:
    lines = [
        "| task | variant | final eval return (mean ± std) | per seed | mean eval return over training "
        "| final gamma | final lambda | meta time share |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task in TASKS:
        for variant in VARIANTS:
            rs = sorted(
                (r for r in results if r["task"] == task and r["variant"] == variant), key=lambda r: r["seed"]
            )
            if not rs:
                continue
            f = np.array([r["final"] for r in rs])
            auc = np.array([np.mean([v for _, v in r["curve"]]) for r in rs])
            lines.append(
                f"| {task} | {variant} | {f.mean():.1f} ± {f.std():.1f} | {', '.join(f'{x:.0f}' for x in f)} "
                f"| {auc.mean():.1f} ± {auc.std():.1f} "
                f"| {np.mean([r['gamma'] for r in rs]):.3f} | {np.mean([r['gae_lambda'] for r in rs]):.3f} "
                f"| {np.mean([r['meta_time_share'] for r in rs]):.2f} |"
            )
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in TASKS if any(r["task"] == t for r in results)]
    fig, axes = plt.subplots(2, len(tasks), figsize=(5 * len(tasks), 6), squeeze=False)
    colors = {"fixed_poor": "tab:red", "meta_poor": "tab:blue", "fixed_ref": "tab:gray"}
    for j, task in enumerate(tasks):
        ax = axes[0, j]
        for variant in VARIANTS:
            rs = [r for r in results if r["task"] == task and r["variant"] == variant]
            if not rs:
                continue
            x = np.array([s for s, _ in rs[0]["curve"]])
            y = np.array([[v for _, v in r["curve"]] for r in rs])
            ax.plot(
                x, y.mean(0), color=colors[variant], label=variant, ls="--" if variant == "fixed_ref" else "-"
            )
            ax.fill_between(x, y.mean(0) - y.std(0), y.mean(0) + y.std(0), color=colors[variant], alpha=0.15)
        ax.set_title(f"{task}: eval return (mean ± std, {len(rs)} seeds)")
        ax.legend(fontsize=8)
        ax = axes[1, j]
        for r in (r for r in results if r["task"] == task and r["variant"] == "meta_poor"):
            h = r["history"]
            xs = [row["env_steps"] for row in h]
            ax.plot(xs, [row["eta_gamma"] for row in h], color="tab:blue", alpha=0.7)
            ax.plot(xs, [row["eta_gae_lambda"] for row in h], color="tab:green", alpha=0.7)
        spec = TASKS[task]
        ax.axhline(spec["ref"]["gamma"], color="tab:blue", ls=":", lw=1)
        ax.axhline(spec["ref"]["gae_lambda"], color="tab:green", ls=":", lw=1)
        ax.set_title(
            r"meta_poor per seed: $\gamma$ (blue), $\lambda$ (green); dotted: reference", fontsize=10
        )
        ax.set_xlabel("env steps")
        ax.set_ylim(0, 1)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=70)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--budget", type=int, default=None, help="env steps per run (default: per task)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel processes (one torch thread each)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "metagrad_vs_fixed")
    parser.add_argument("--figures", type=Path, default=REPO / "docs" / "figures")
    args = parser.parse_args()

    jobs = [
        (t, v, s, args.budget or TASKS[t]["budget"]) for t in args.tasks for s in args.seeds for v in VARIANTS
    ]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = []
        for r in pool.map(run_one, *zip(*jobs, strict=True)):
            print(
                f"{r['task']:<12} {r['variant']:<10} seed {r['seed']}: final {r['final']:8.1f}  "
                f"gamma {r['gamma']:.3f} lambda {r['gae_lambda']:.3f}  {r['wall_s']:.0f}s",
                flush=True,
            )
            results.append(r)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results))
    table = summarise(results)
    (args.out / "table.md").write_text(table + "\n")
    print(table)
    plot(results, args.figures / "metagrad_vs_fixed.png")
    for task in args.tasks:
        r = next(r for r in results if r["task"] == task and r["variant"] == "meta_poor")
        name = task.split("-")[0].lower()
        plot_history(
            r["history"],
            args.figures / f"metagrad_history_{name}.png",
            title=f"{task} meta_poor seed {r['seed']}",
        )
    print(f"total wall time {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()
