"""Is the engine a faithful proxy for SB3 across its search space? ``engine:ppo`` and SB3's PPO trained
with the same configurations, drawn from the engine's default space, at equal env steps.

For each task, ``--configs`` configurations are drawn (seeded) from ``search_spaces/engine/ppo.yaml``
(learning rate 1e-5..1e-2, 4 or 10 epochs, 32 or 128 steps, ...), with the issue's shared setting: 16
envs, observations and rewards normalised, 4 minibatches. Each configuration trains on ``--seeds``
seeds on each side for the task's budget rounded up to whole rollouts (Acrobot-v1 50,000 env steps,
Pendulum-v1 100,000), so both sides train exactly the same env steps; then 20 deterministic test
episodes. The engine trains a configuration's seeds as one population; SB3 gets the configuration
through ``autorl.engine.handover.to_sb3`` (what ``autorl train --with sb3`` runs), one process per run,
``--jobs`` at a time, one torch thread each.

Runs are appended to ``--runs`` (JSON lines) as they finish, so the benchmark resumes where it
stopped: run it in parts (``--envs Acrobot-v1`` now, ``--envs Pendulum-v1`` later). ``--report``
reads the runs and writes, per task: each configuration's mean return per side with 95% bootstrap CIs,
the Spearman rank correlation of the two sides' means, the configurations whose difference has a
bootstrap CI excluding 0 (about 5% by chance), how many configurations the engine's mean leads (a sign
test, and a permutation test that keeps each seed's runs together: every configuration of a side trains
on the same seeds), and a scatter plot engine against SB3.

    python benchmarks/engine_sb3_space.py --envs Acrobot-v1 --runs docs/figures/engine_sb3_space_runs.jsonl
    python benchmarks/engine_sb3_space.py --report --runs docs/figures/engine_sb3_space_runs.jsonl \\
        --json docs/figures/engine_sb3_space.json --png docs/figures/engine_sb3_space.png
"""

from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BUDGETS = {"Acrobot-v1": 50_000, "Pendulum-v1": 100_000}
SHARED: dict[str, Any] = {"n_envs": 16, "n_minibatches": 4, "normalize_obs": True, "normalize_reward": True}
TEST_EPISODES = 20
SHOWN = ("learning_rate", "n_epochs", "n_steps", "gamma", "clip_range")  # per configuration, in the report


def draw_configs(env: str, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` configurations of the engine's default space, seeded per task."""
    from autorl.space import SearchSpace, sample

    space = SearchSpace.from_yaml(ROOT / "autorl" / "search_spaces" / "engine" / "ppo.yaml")
    rng = np.random.default_rng([seed, sum(map(ord, env))])
    return [{"env": env, **SHARED, **sample(space, rng)} for _ in range(n)]


def budget_of(config: dict[str, Any]) -> int:
    """The task's budget rounded up to whole rollouts of this configuration."""
    rollout = int(config["n_envs"]) * int(config["n_steps"])
    return -(-BUDGETS[config["env"]] // rollout) * rollout


def engine_runs(
    config: dict[str, Any], seeds: list[int], starts: str = "engine", dtype: str = "float32"
) -> list[float]:
    """The configuration's seeds trained as one engine population; each seed's test return, tested on the
    engine's own test starts or (``starts="sb3"``) on exactly those the SB3 side tests that seed on.
    ``dtype`` float64 steps the envs, networks and statistics in double precision (gymnasium's Acrobot
    integrates in float64; SB3's networks stay float32)."""
    import torch

    from autorl.engine.config import engine_config, hparams_of

    torch.set_num_threads(1)
    from autorl.engine.ppo import Population

    budget = budget_of(config)
    cfg = engine_config({**config, "dtype": dtype}, total_steps=budget)
    pop = Population(cfg, [hparams_of(config)] * len(seeds), seeds=seeds)
    pop.train(budget)
    if starts == "sb3":
        return [sb3_test(config, seed, pop.member_state(i)) for i, seed in enumerate(seeds)]
    return [float(x) for x in pop.evaluate(TEST_EPISODES)]


def sb3_test(config: dict[str, Any], seed: int, member_state: dict[str, Any]) -> float:
    """An engine member's policy (exported to SB3) tested by the SB3 side's own evaluation of ``seed``:
    its test env, the same episodes (the second evaluation, as :func:`sb3_run` reads it)."""
    from autorl.engine.export import to_sb3 as export
    from autorl.engine.handover import to_sb3
    from autorl.targets import TrialContext
    from autorl.targets.sb3 import SB3Target

    handed = to_sb3(config)
    agent = SB3Target(
        {**handed["args"], "eval_episodes": TEST_EPISODES, **handed["params"]},
        TrialContext(seed=seed, budget=budget_of(config)),
    )
    agent.model = export(member_state)
    if member_state["normalize_obs"]:  # the member's statistics, as SB3Target.evaluate reads them
        agent.env.obs_rms = agent.model.get_env().obs_rms
    agent.evaluate()  # the evaluation at the end of train()
    return float(agent.evaluate()["eval_return"])


def sb3_run(config: dict[str, Any], seed: int) -> float:
    """One SB3 PPO run of the configuration (handed over as ``train --with sb3`` does); its test return."""
    import torch

    torch.set_num_threads(1)
    from autorl.engine.handover import to_sb3
    from autorl.targets import TrialContext
    from autorl.targets.sb3 import SB3Target

    handed = to_sb3(config)
    budget = budget_of(config)
    agent = SB3Target(
        {**handed["args"], "eval_episodes": TEST_EPISODES, **handed["params"]},
        TrialContext(seed=seed, budget=budget),
    )
    agent.train(budget)
    return float(agent.evaluate()["eval_return"])


def _done(path: Path) -> dict[tuple[str, str, int, int], float]:
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["side"], r["env"], r["config"], r["seed"]): r["return"] for r in rows}


def _append(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def run(args: argparse.Namespace) -> None:
    done = _done(args.runs)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    for env in args.envs:
        configs = draw_configs(env, args.configs, args.draw_seed)
        chosen = args.only if args.only is not None else range(len(configs))
        start = time.perf_counter()
        for i, config in enumerate(configs):  # the engine: one process, one thread, a population per config
            if i not in chosen or all(("engine", env, i, s) in done for s in seeds):
                continue
            began = time.perf_counter()
            returns = engine_runs(config, seeds, args.engine_starts, args.engine_dtype)
            took = time.perf_counter() - began
            for s, r in zip(seeds, returns, strict=True):
                row = {"side": "engine", "env": env, "config": i, "seed": s, "return": r, "wall_s": took}
                extra = {"starts": args.engine_starts, "dtype": args.engine_dtype}
                _append(args.runs, {**row, "params": config, **extra})
            print(f"engine {env} config {i}: {np.mean(returns):.1f} ({took:.0f} s)", flush=True)
        if args.engine_starts == "sb3":  # the SB3 side is in the runs of the first measurement
            continue
        todo = [(i, s) for i in chosen for s in seeds if ("sb3", env, i, s) not in done]
        with ProcessPoolExecutor(args.jobs) as pool:  # SB3: one run per process, --jobs at once
            futures = {pool.submit(sb3_run, configs[i], s): (i, s) for i, s in todo}
            for n, future in enumerate(as_completed(futures), 1):
                i, s = futures[future]
                try:
                    value = future.result()
                except Exception as exc:  # a diverged run is a result too: recorded as nan
                    print(f"sb3 {env} config {i} seed {s} failed: {exc}", flush=True)
                    value = math.nan
                row = {"side": "sb3", "env": env, "config": i, "seed": s, "return": value}
                _append(args.runs, {**row, "params": configs[i]})
                print(f"sb3 {env} config {i} seed {s}: {value:.1f} ({n}/{len(todo)})", flush=True)
        print(f"{env}: {time.perf_counter() - start:.0f} s", flush=True)


def _ci(x: np.ndarray, rng: np.random.Generator, reps: int = 5000) -> tuple[float, float]:
    means = x[rng.integers(0, len(x), (reps, len(x)))].mean(1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def seed_permutation_counts(
    rows: list[dict[str, Any]], rng: np.random.Generator, reps: int = 20_000
) -> np.ndarray:
    """How many configurations "the engine" leads in, where the sides do not differ: the null
    distribution of the lean when every configuration of a side trains on the same seeds. The sign test
    takes the configurations as independent; here the unit is a (side, seed), its returns on every
    configuration. With no difference between the sides those units are exchangeable, so each draw
    splits them at random into two sides of the sizes measured and counts again."""
    configs = sorted({r["config"] for r in rows})
    units: dict[tuple[str, int], dict[int, float]] = {}
    for r in rows:
        units.setdefault((r["side"], r["seed"]), {})[r["config"]] = r["return"]
    keys = [k for k, v in units.items() if all(c in v for c in configs)]  # units with every configuration
    values = np.array([[units[k][c] for c in configs] for k in keys])
    n_engine = sum(k[0] == "engine" for k in keys)
    counts = np.empty(reps, dtype=int)
    for n in range(reps):
        order = rng.permutation(len(keys))
        counts[n] = (np.nanmean(values[order[:n_engine]], 0) > np.nanmean(values[order[n_engine:]], 0)).sum()
    return counts


def _two_sided(counts: np.ndarray, ahead: int, n: int) -> float:
    """The share of ``counts`` at least as far from ``n / 2`` as ``ahead``."""
    return float((np.abs(counts - n / 2) >= abs(ahead - n / 2)).mean())


def report(args: argparse.Namespace) -> None:
    from scipy.stats import binomtest, spearmanr

    rows = [json.loads(line) for line in args.runs.read_text().splitlines() if line.strip()]
    if args.sb3_runs:  # the engine's runs tested on SB3's starts, against the SB3 runs measured before
        given = [json.loads(line) for line in args.sb3_runs.read_text().splitlines() if line.strip()]
        rows = [r for r in rows if r["side"] == "engine"] + [r for r in given if r["side"] == "sb3"]
    for extra in args.pool or ():  # the same configurations trained on other seeds
        pooled = [json.loads(line) for line in extra.read_text().splitlines() if line.strip()]
        have = {(r["side"], r["env"], r["config"], r["seed"]) for r in rows}
        rows += [r for r in pooled if (r["side"], r["env"], r["config"], r["seed"]) not in have]
    rows = [r for r in rows if r["env"] in args.envs and (args.only is None or r["config"] in args.only)]
    out: dict[str, Any] = {"command": "python benchmarks/engine_sb3_space.py --report", "tasks": {}}
    null: dict[str, np.ndarray] = {}  # per task, the lean's permutation distribution
    for env in sorted({r["env"] for r in rows}):
        rng = np.random.default_rng(0)
        shuffle = np.random.default_rng(1)  # the permutation tests' own: the CIs stay as first reported
        table = []
        for i in sorted({r["config"] for r in rows if r["env"] == env}):
            side = {
                s: np.array(
                    [r["return"] for r in rows if r["env"] == env and r["config"] == i and r["side"] == s]
                )
                for s in ("engine", "sb3")
            }
            if not (len(side["engine"]) and len(side["sb3"])):
                continue
            e, b = side["engine"][np.isfinite(side["engine"])], side["sb3"][np.isfinite(side["sb3"])]
            diffs = [
                rng.choice(e, len(e)).mean() - rng.choice(b, len(b)).mean() for _ in range(5000)
            ]  # a bootstrap of the difference of means
            low, high = np.quantile(diffs, [0.025, 0.975])
            both, gap = np.concatenate([e, b]), abs(e.mean() - b.mean())
            shuffled = (shuffle.permutation(both) for _ in range(20_000))  # the sides' labels exchanged
            floor = gap - 1e-9 * max(1.0, gap)  # a split as far apart as measured, to rounding
            hits = sum(abs(x[: len(e)].mean() - x[len(e) :].mean()) >= floor for x in shuffled)
            perm_p = (hits + 1) / (20_000 + 1)
            params = next(r["params"] for r in rows if r["env"] == env and r["config"] == i)
            table.append({
                "config": i,
                "params": {k: params[k] for k in SHOWN},
                "engine_mean": float(e.mean()), "engine_ci": _ci(e, rng), "engine_seeds": len(e),
                "sb3_mean": float(b.mean()), "sb3_ci": _ci(b, rng), "sb3_seeds": len(b),
                "sb3_failed": int((~np.isfinite(side["sb3"])).sum()),
                "difference_ci": (float(low), float(high)),
                "differs": bool(low > 0 or high < 0),
                "permutation_p": perm_p,
            })  # fmt: skip
        if not table:
            continue
        rho, p = (
            spearmanr([t["engine_mean"] for t in table], [t["sb3_mean"] for t in table])
            if len(table) > 2
            else (None, None)  # --only one or two configurations: no ranking to correlate
        )
        ahead = sum(t["engine_mean"] > t["sb3_mean"] for t in table)
        out["tasks"][env] = {
            "configs": table,
            "spearman": None if rho is None else float(rho),
            "spearman_p": None if p is None else float(p),
            "differ": sum(t["differs"] for t in table),
            "engine_ahead": ahead,
            "sign_test_p": float(binomtest(ahead, len(table)).pvalue),
        }
        dtypes = {r.get("dtype", "float32") for r in rows if r["env"] == env and r["side"] == "engine"}
        out["tasks"][env]["engine_dtype"] = ", ".join(sorted(dtypes))
        null[env] = seed_permutation_counts([r for r in rows if r["env"] == env], rng)
        out["tasks"][env]["seed_permutation_p"] = _two_sided(null[env], ahead, len(table))
        task = out["tasks"][env]
        print(
            f"{env}: {len(table)} configurations, Spearman "
            f"{'-' if rho is None else f'{rho:.2f} (p {p:.2g})'}; "
            f"difference CI excludes 0 for {task['differ']} of {len(table)}; the engine's mean is the "
            f"higher in {ahead} (sign test p {task['sign_test_p']:.3f}, seed permutation p "
            f"{task['seed_permutation_p']:.3f})"
        )
        for t in table:
            mark = "  differs" if t["differs"] else ""
            shape = f"lr {t['params']['learning_rate']:.2e} epochs {t['params']['n_epochs']:>2}"
            shape += f" n_steps {t['params']['n_steps']:>3}"
            print(
                f"  {t['config']:>2} {shape}: engine {t['engine_mean']:8.1f} ({t['engine_seeds']} seeds) "
                f"sb3 {t['sb3_mean']:8.1f} ({t['sb3_seeds']}), permutation p {t['permutation_p']:.3f}{mark}"
            )
    if len(null) > 1:  # the tasks together: their permutations are independent, their counts add
        tasks = out["tasks"].values()
        ahead, n = sum(t["engine_ahead"] for t in tasks), sum(len(t["configs"]) for t in tasks)
        together = {"engine_ahead": ahead, "configs": n, "sign_test_p": float(binomtest(ahead, n).pvalue)}
        together["seed_permutation_p"] = _two_sided(sum(null.values()), ahead, n)
        out["together"] = together
        print(
            f"together: the engine's mean is the higher in {ahead} of {n} (sign test p "
            f"{together['sign_test_p']:.3f}, seed permutation p {together['seed_permutation_p']:.3f})"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        tasks = out["tasks"]
        fig, axes = plt.subplots(len(tasks), 2, figsize=(10.4, 4.8 * len(tasks)), squeeze=False)
        for k, (env, task) in enumerate(tasks.items()):  # a row per task: all, then the better half
            for ax, zoom in ((axes[k, 0], False), (axes[k, 1], True)):
                _scatter(ax, task, env, zoom)
        fig.tight_layout()
        fig.savefig(args.png, dpi=110)


def _scatter(ax: Any, task: dict[str, Any], env: str, zoom: bool) -> None:
    """Engine against SB3 per configuration with both CIs; ``zoom``: only the best cluster, closer."""
    configs = task["configs"]
    if zoom:  # the configurations both sides learned well: the top half by their mean of the two means
        middle = float(np.median([(t["engine_mean"] + t["sb3_mean"]) / 2 for t in configs]))
        configs = [t for t in configs if (t["engine_mean"] + t["sb3_mean"]) / 2 >= middle]
    for t in configs:
        colour = "tab:red" if t["differs"] else "tab:blue"
        ax.errorbar(
            t["sb3_mean"], t["engine_mean"],
            xerr=[[t["sb3_mean"] - t["sb3_ci"][0]], [t["sb3_ci"][1] - t["sb3_mean"]]],
            yerr=[[t["engine_mean"] - t["engine_ci"][0]], [t["engine_ci"][1] - t["engine_mean"]]],
            fmt="o", color=colour, ms=4, capsize=2, lw=0.8,
        )  # fmt: skip
        if zoom:
            ax.annotate(str(t["config"]), (t["sb3_mean"], t["engine_mean"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")  # fmt: skip
    lims = [min(ax.get_xlim()[0], ax.get_ylim()[0]), max(ax.get_xlim()[1], ax.get_ylim()[1])]
    ax.plot(lims, lims, color="grey", lw=0.8, ls="--")
    ax.set_xlim(lims)
    ax.set_ylim(lims)
    ax.set_xlabel("SB3 PPO: mean test return (95% CI)")
    ax.set_ylabel("engine:ppo: mean test return (95% CI)")
    rho = task["spearman"]
    title = f"{env}: {len(task['configs'])} configurations, Spearman {'-' if rho is None else f'{rho:.2f}'}"
    if task["engine_dtype"] != "float32":
        title += f" (the engine in {task['engine_dtype']})"
    title += f"\nred: difference CI excludes 0 ({task['differ']})"
    ax.set_title(title + ("; zoom: the better half, numbered" if zoom else ""), fontsize=9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(BUDGETS), choices=list(BUDGETS))
    parser.add_argument("--configs", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0, help="train seeds FIRST..FIRST+SEEDS-1")
    parser.add_argument("--only", type=int, nargs="+", help="run (or --report) only these configurations")
    parser.add_argument("--draw-seed", type=int, default=0, help="which configurations are drawn")
    parser.add_argument("--jobs", type=int, default=2, help="SB3 processes at once")
    parser.add_argument("--runs", type=Path, required=True, help="JSON lines of finished runs (resumable)")
    parser.add_argument(
        "--engine-starts",
        choices=["engine", "sb3"],
        default="engine",
        help="test the engine's policies on its own test starts, or on exactly the SB3 side's (then only "
        "the engine side runs; report it against the SB3 runs with --sb3-runs)",
    )
    parser.add_argument(
        "--engine-dtype",
        choices=["float32", "float64"],
        default="float32",
        help="the engine side's precision (envs, networks, statistics); float64 to test the lean's cause",
    )
    parser.add_argument("--sb3-runs", type=Path, help="with --report: take the SB3 side from these runs")
    parser.add_argument(
        "--pool",
        type=Path,
        nargs="+",
        help="with --report: add these runs (the same configurations, other seeds)",
    )
    parser.add_argument("--report", action="store_true", help="summarise --runs instead of running")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--png", type=Path)
    args = parser.parse_args()
    if args.only is not None and not all(0 <= i < args.configs for i in args.only):
        parser.error(f"--only: configurations are numbered 0..{args.configs - 1}")
    (report if args.report else run)(args)


if __name__ == "__main__":
    main()
