"""Which ``aggregate`` should judge a configuration trained on several seeds? Measured by resampling
agents already trained, so it costs seconds and no training.

Each pool is a set of configurations with the final return of each on many seeds, from runs committed
under docs/figures/:

- ``acrobot-incumbents``: the incumbents of the racing benchmark's engine ASHA sweeps on Acrobot-v1
  (``race_acrobot_runs.jsonl``, both arms), each on its 20 fresh seeds: good configurations, the ones a
  sweep's final choice is among.
- ``acrobot-engine``, ``acrobot-sb3``, ``pendulum-engine``, ``pendulum-sb3``: 16 configurations drawn
  from the engine's default space, 10 seeds each, on the engine and on SB3 (``engine_sb3_space_runs.jsonl``).

One draw plays a sweep's last decision: ``candidates`` configurations of the pool, each trained on
``k`` of its seeds (``seeds_per_trial: k``); each aggregate names the one whose aggregate of those k
values is best, and the named configuration is judged on its other seeds (held out). Over many draws
this gives, per aggregate, what the user gets: the held-out mean, IQM and share below ``--low``, and how
often the aggregate named the best of the candidates (the best mean over all their seeds). The 95%
intervals come from bootstrapping the pool's configurations (a new pool of the same size, drawn with
replacement, per outer repetition), so they say how much the answer depends on which configurations the
pool happened to hold; differences between aggregates are paired on the same draws.

    python benchmarks/aggregate_choice.py --json docs/figures/aggregate_choice.json
    python benchmarks/aggregate_choice.py --table docs/figures/aggregate_choice.json
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from autorl.targets.runner import Aggregate, iqm

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "docs" / "figures"
LOWS = {"acrobot": -200.0, "pendulum": -1000.0}  # a seed below this has not learned the task


def pools(figures: Path) -> dict[str, np.ndarray]:
    """Each pool as an array [configurations, seeds] of final returns."""
    out: dict[str, np.ndarray] = {}
    race = [json.loads(r) for r in (figures / "race_acrobot_runs.jsonl").read_text().splitlines() if r]
    out["acrobot-incumbents"] = np.array([r["fresh"] for r in race])
    space: dict[tuple[str, str], dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for line in (figures / "engine_sb3_space_runs.jsonl").read_text().splitlines():
        if line:
            r = json.loads(line)
            space[(r["env"].split("-")[0].lower(), r["side"])][r["config"]][r["seed"]] = r["return"]
    for (env, side), configs in sorted(space.items()):
        out[f"{env}-{side}"] = np.array([[s[k] for k in sorted(s)] for _, s in sorted(configs.items())])
    return out


def draws(
    pool: np.ndarray, k: int, candidates: int, n: int, rng: np.random.Generator, low: float
) -> dict[str, dict[str, np.ndarray]]:
    """``n`` draws of a sweep's last decision on ``pool``: per aggregate, per draw, the named
    configuration's held-out mean, IQM, share below ``low``, and whether it is the candidates' best."""
    c, s = pool.shape
    out: dict[str, dict[str, list[float]]] = {a.value: defaultdict(list) for a in Aggregate}
    for _ in range(n):
        chosen = rng.choice(c, size=min(candidates, c), replace=False)
        order = np.argsort(rng.random((len(chosen), s)), axis=1)  # each candidate's seeds, shuffled
        values = np.take_along_axis(pool[chosen], order, axis=1)
        picked, held = values[:, :k], values[:, k:]
        best = int(values.mean(1).argmax())
        for a in Aggregate:
            i = int(np.argmax([a(list(p)) for p in picked]))
            out[a.value]["mean"].append(float(held[i].mean()))
            out[a.value]["iqm"].append(iqm(held[i]))
            out[a.value]["below"].append(float((held[i] < low).mean()))
            out[a.value]["best"].append(float(i == best))
    return {a: {m: np.asarray(v) for m, v in d.items()} for a, d in out.items()}


def measure(
    pool: np.ndarray, k: int, candidates: int, inner: int, outer: int, low: float, seed: int
) -> dict[str, Any]:
    """Per aggregate: each statistic's mean over the pool's draws, a 95% interval over bootstrapped
    pools, and its difference from ``mean``'s (paired)."""
    rng = np.random.default_rng(seed)
    here = draws(pool, k, candidates, inner, rng, low)
    boot: dict[str, dict[str, list[float]]] = {a.value: defaultdict(list) for a in Aggregate}
    for _ in range(outer):
        world = pool[rng.integers(0, len(pool), len(pool))]
        d = draws(world, k, candidates, max(1, inner // 20), rng, low)
        for a, stats in d.items():
            for m, v in stats.items():
                boot[a][m].append(float(v.mean()))
                boot[a][m + "_diff"].append(float(v.mean() - d["mean"][m].mean()))
    out: dict[str, Any] = {}
    for a, stats in here.items():
        row: dict[str, Any] = {}
        for m in ("mean", "iqm", "below", "best"):
            row[m] = float(stats[m].mean())
            row[m + "_ci95"] = [float(q) for q in np.quantile(boot[a][m], [0.025, 0.975])]
            row[m + "_minus_mean_agg"] = float(stats[m].mean() - here["mean"][m].mean())
            diff = np.quantile(boot[a][m + "_diff"], [0.025, 0.975])
            row[m + "_minus_mean_agg_ci95"] = [float(q) for q in diff]
        out[a] = row
    return out


def table(result: dict[str, Any]) -> str:
    """The measurement as a markdown table: per setting, the mean's held-out mean and each other
    aggregate's difference from it with its 95% interval (bold where the interval excludes 0), and
    how often each named the best of the candidates."""
    others = [a.value for a in Aggregate if a is not Aggregate.MEAN]
    head = ["pool", "k", "candidates", "mean: held-out mean", *(f"{a} - mean" for a in others)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in result["rows"]:
        by = row["by"]
        cells = [row["pool"], str(row["k"]), str(row["candidates"]), f"{by['mean']['mean']:.1f}"]
        for a in others:
            d, (lo, hi) = by[a]["mean_minus_mean_agg"], by[a]["mean_minus_mean_agg_ci95"]
            cell = f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]"
            cells.append(f"**{cell}**" if lo > 0 or hi < 0 else cell)
        lines.append("| " + " | ".join(cells) + " |")
    best = ["| pool | k | candidates | " + " | ".join(a.value for a in Aggregate) + " |"]
    best.append("|" + "---|" * (3 + len(Aggregate)))
    for row in result["rows"]:
        rates = " | ".join(f"{row['by'][a.value]['best']:.2f}" for a in Aggregate)
        best.append(f"| {row['pool']} | {row['k']} | {row['candidates']} | {rates} |")
    return "\n".join(lines) + "\n\nHow often each named the best of the candidates:\n\n" + "\n".join(best)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--figures", type=Path, default=FIGURES, help="where the runs files are")
    p.add_argument("--k", type=int, nargs="+", default=[3, 5], help="seeds per trial")
    p.add_argument("--candidates", type=int, nargs="+", default=[4, 16], help="configurations compared")
    p.add_argument("--inner", type=int, default=2000, help="draws per pool")
    p.add_argument("--outer", type=int, default=100, help="bootstrapped pools")
    p.add_argument("--json", type=Path)
    p.add_argument("--table", type=Path, help="print the tables of a JSON this script wrote, and stop")
    args = p.parse_args()
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return
    setting = {k: v for k, v in vars(args).items() if k not in ("json", "figures")}
    result: dict[str, Any] = {"setting": setting}
    rows: list[dict[str, Any]] = []
    for name, pool in pools(args.figures).items():
        low = LOWS[name.split("-")[0]]
        for k in args.k:
            for m in args.candidates:
                res = measure(pool, k, m, args.inner, args.outer, low, seed=0)
                row = {"pool": name, "shape": list(pool.shape), "k": k, "candidates": m, "low": low}
                rows.append({**row, "by": res})
                print(f"\n{name} {pool.shape[0]} configs x {pool.shape[1]} seeds, k={k}, {m} candidates")
                for a, r in res.items():
                    lo, hi = r["mean_minus_mean_agg_ci95"]
                    print(
                        f"  {a:6s} held-out mean {r['mean']:8.1f}  vs mean {r['mean_minus_mean_agg']:+6.1f} "
                        f"[{lo:+6.1f}, {hi:+6.1f}]  IQM {r['iqm']:8.1f}  below {r['below']:.3f}  "
                        f"best named {r['best']:.2f}"
                    )
    result["rows"] = rows
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
