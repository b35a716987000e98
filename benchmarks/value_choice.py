"""Which ``value`` should be a trial's value: its last evaluation, its best, or the mean of its last k?
Measured on curves of engine runs, judged by held-out returns.

The runs: the 16 configurations ``engine_sb3_space.py`` draws from the engine's default space for
Acrobot-v1 (16 envs, observations and rewards normalised, 4 minibatches), each trained on 10 seeds as
one engine population, 5 x 10,240 env steps. After each 10,240 steps every member is evaluated as a
sweep reports it (the engine's deterministic evaluation, 10 episodes from its evaluation stream): the
curve a ``value`` rule reads. At the end each member is tested on 20 episodes from a fresh seed of its
own (never a training or evaluation start): what the configuration delivers.

One draw plays a sweep's last decision with ``seeds_per_trial: 1``: 4 (or 16) candidates, each with
one of its seeds; each rule (``last``, ``best``, ``mean_last`` with k = 3) names the candidate whose
value on that seed's curve is best, and the named configuration is judged by the mean of its held-out
tests on its other 9 seeds. 2,000 draws per setting; 95% intervals from 100 bootstrapped pools of
configurations; differences paired on the same draws.

Runs are appended to ``--runs`` as they finish (a killed run resumes); ``--part i/n`` trains every
n-th configuration, so two processes can share the work:

    python benchmarks/value_choice.py --part 0/2 --runs docs/figures/value_choice_runs.jsonl
    python benchmarks/value_choice.py --part 1/2 --runs docs/figures/value_choice_runs.jsonl
    python benchmarks/value_choice.py --report --runs docs/figures/value_choice_runs.jsonl \\
        --json docs/figures/value_choice.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from engine_sb3_space import draw_configs

ENV = "Acrobot-v1"
SEEDS = 10
CHUNKS, CHUNK = 5, 10_000  # evaluations, env steps between them (whole rollouts: 10,240)
TEST_EPISODES = 20
HELD_OUT = 50_000_000  # fresh test seeds: HELD_OUT + seed
RULES = ("last", "best", "mean_last")
K = 3  # mean_last's k, the default of ValueSpec


def train(config: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, float]:
    """``[seeds, CHUNKS]`` evaluation curves, ``[seeds]`` held-out test returns, and seconds."""
    import torch

    torch.set_num_threads(1)
    from autorl.engine.config import engine_config, hparams_of
    from autorl.engine.ppo import Population

    start = time.perf_counter()
    seeds = list(range(SEEDS))
    pop = Population(
        engine_config(config, total_steps=CHUNKS * CHUNK), [hparams_of(config)] * SEEDS, seeds=seeds
    )
    curves = []
    for _ in range(CHUNKS):
        pop.train(CHUNK)
        curves.append(pop.evaluate().numpy())
    tests = pop.evaluate(TEST_EPISODES, seeds=[HELD_OUT + s for s in seeds]).numpy()
    return np.stack(curves, 1), tests, time.perf_counter() - start


def run(args: argparse.Namespace) -> None:
    done = (
        {json.loads(r)["config"] for r in args.runs.read_text().splitlines() if r}
        if args.runs.is_file()
        else set()
    )
    part, parts = (int(x) for x in args.part.split("/"))
    for i, config in enumerate(draw_configs(ENV, 16, 0)):
        if i % parts != part or i in done:
            continue
        curves, tests, took = train(config)
        row = {
            "config": i,
            "curves": curves.tolist(),
            "tests": tests.tolist(),
            "wall_s": took,
            "params": config,
        }
        with open(args.runs, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(
            f"config {i}: last {curves[:, -1].mean():.1f}, held-out {tests.mean():.1f} ({took:.0f} s)",
            flush=True,
        )


def value(curve: np.ndarray, rule: str) -> float:
    """A trial's value from its evaluations, as :func:`autorl.targets.runner.select_value` takes it."""
    from autorl.targets.runner import Select, select_value

    return select_value([float(v) for v in curve], Select(rule), K, maximize=True)


def draws(
    curves: np.ndarray, tests: np.ndarray, candidates: int, n: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Per rule, per draw: the named configuration's held-out mean over its other seeds."""
    c, s, _ = curves.shape
    out: dict[str, list[float]] = defaultdict(list)
    for _ in range(n):
        chosen = rng.choice(c, size=min(candidates, c), replace=False)
        seed = rng.integers(0, s, len(chosen))  # each candidate's one tuning seed
        for rule in RULES:
            i = int(np.argmax([value(curves[k, j], rule) for k, j in zip(chosen, seed, strict=True)]))
            others = np.delete(tests[chosen[i]], seed[i])
            out[rule].append(float(others.mean()))
    return {r: np.asarray(v) for r, v in out.items()}


def report(args: argparse.Namespace) -> None:
    rows = sorted((json.loads(r) for r in args.runs.read_text().splitlines() if r), key=lambda r: r["config"])
    curves = np.array([r["curves"] for r in rows])  # [configs, seeds, chunks]
    tests = np.array([r["tests"] for r in rows])  # [configs, seeds]
    out: dict[str, Any] = {"setting": {"env": ENV, "configs": len(rows), "seeds": SEEDS, "k": K}, "rows": []}
    for m in args.candidates:
        rng = np.random.default_rng(0)
        here = draws(curves, tests, m, args.inner, rng)
        boot: dict[str, list[float]] = defaultdict(list)
        for _ in range(args.outer):
            pick = rng.integers(0, len(rows), len(rows))
            d = draws(curves[pick], tests[pick], m, max(1, args.inner // 20), rng)
            for rule in RULES:
                boot[rule].append(float(d[rule].mean() - d["last"].mean()))
        row = {"candidates": m}
        for rule in RULES:
            diff = float(here[rule].mean() - here["last"].mean())
            lo, hi = np.quantile(boot[rule], [0.025, 0.975])
            row[rule] = {
                "held_out": float(here[rule].mean()),
                "minus_last": diff,
                "minus_last_ci95": [float(lo), float(hi)],
            }
            shown = f"held-out {here[rule].mean():7.1f}, minus last {diff:+5.1f} [{lo:+5.1f}, {hi:+5.1f}]"
            print(f"{m:>2} candidates, {rule:9s}: {shown}")
        out["rows"].append(row)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, required=True)
    p.add_argument("--part", default="0/1", help="i/n: train every n-th configuration from the i-th")
    p.add_argument("--report", action="store_true")
    p.add_argument("--candidates", type=int, nargs="+", default=[4, 16])
    p.add_argument("--inner", type=int, default=2000)
    p.add_argument("--outer", type=int, default=100)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    report(args) if args.report else run(args)


if __name__ == "__main__":
    main()
