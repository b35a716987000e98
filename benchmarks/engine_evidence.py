"""What the batched engine buys, measured: PBT that solves CartPole in seconds, throughput against
population size next to SB3, a 64-member PBT on Acrobot, one process of two threads against two of one,
a random search of 64 configurations as batches against SB3 PPO, and parity with SB3 PPO.

    python benchmarks/engine_evidence.py pbt-cartpole [--seeds 0 1 2]
    python benchmarks/engine_evidence.py scaling [--sizes 1 8 64 256] [--png docs/figures/engine_scaling.png]
    python benchmarks/engine_evidence.py acrobot-pbt [--population 64]
    python benchmarks/engine_evidence.py threads
    python benchmarks/engine_evidence.py random-search [--configs 64] [--sb3]   # --sb3: tens of minutes
    python benchmarks/engine_evidence.py parity [--seeds 10] [--envs Pendulum-v1] [--eval-episodes 10]
        [--sweep-seed 0]  # slow
    python benchmarks/engine_evidence.py parity-pool --inputs A.json B.json  # pooled seeds, permutation tests

Every part prints its figures (and ``--json PATH`` writes them); nothing here is a timed test. All
runs go through ``autorl.api.sweep`` as a user's would, except the scaling rows, which time the engine
(``Population``) and SB3 directly.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SOLVED = 475.0
# rl-zoo3 2.9.2's tuned PPO settings (rl_zoo3/hyperparams/ppo.yml) where the engine has the keys; gSDE
# (Pendulum) is not in the engine, so both sides run without it.
ZOO = {
    "Acrobot-v1": {
        "n_envs": 16,
        "n_steps": 256,
        "gae_lambda": 0.94,
        "gamma": 0.99,
        "n_epochs": 4,
        "ent_coef": 0.0,
        "normalize": True,
        "batch_size": 64,
        "steps": 204_800,  # rl-zoo3's 2e5 rounded up to whole rollouts (50 x 16 x 256)
        "report_every": 20_480,  # every 5 rollouts
    },
    "Pendulum-v1": {
        "n_envs": 4,
        "n_steps": 1024,
        "gae_lambda": 0.95,
        "gamma": 0.9,
        "n_epochs": 10,
        "ent_coef": 0.0,
        "learning_rate": 1e-3,
        "clip_range": 0.2,
        "batch_size": 64,
        "steps": 102_400,  # rl-zoo3's 1e5 rounded up to whole rollouts (25 x 4 x 1024)
        "report_every": 4_096,  # every rollout
    },
}


def _sweep(cfg: dict[str, Any], out: Path) -> tuple[Any, float]:
    from autorl.api import sweep

    t0 = time.perf_counter()
    result = sweep({**cfg, "out": str(out)}, plots=False)
    return result, time.perf_counter() - t0


# -------------------------------------------------------------------------------- PBT on CartPole
POOR = {
    "learning_rate": {
        "type": "float",
        "low": 1e-5,
        "high": 1e-2,
        "log": True,
        "mutable": True,
        "init": [1e-5, 3e-5],
    },
    "clip_range": {"type": "float", "low": 0.05, "high": 0.4, "mutable": True},
    "ent_coef": {
        "type": "float",
        "low": 1e-8,
        "high": 0.1,
        "log": True,
        "mutable": True,
        "init": [1e-8, 1e-6],
    },
}


def pbt_cartpole(a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """PBT with 8 members from pbt_cartpole.yaml's poor start, and the same population fixed."""
    rows = []
    for seed in a.seeds:
        for exploit in (True, False):
            cfg = {
                "target": "engine:ppo",
                "args": {
                    "env": "CartPole-v1",
                    "n_envs": 32,
                    "n_steps": 32,
                    "n_epochs": 4,
                    "n_minibatches": 4,
                },
                "space": POOR,
                "budget": {"max": a.steps, "report_every": 4096},
                "method": {"name": "pbt", "population": 8, "exploit": exploit},
                "seed": seed,
            }
            result, wall = _sweep(cfg, tmp / f"pbt-{seed}-{exploit}")
            state = json.loads((result.out / "population.json").read_text())
            hits = [int(s) for m in state["members"] for s, v in m["curve"].items() if v >= SOLVED]
            best = max(m["score"] for m in state["members"] if m["score"] is not None)
            row = {
                "method": "pbt" if exploit else "fixed",
                "seed": seed,
                "best_final_return": best,
                "solved": best >= SOLVED,
                "first_solved_member_steps": min(hits) if hits else None,
                "wall_s": round(wall, 1),
                "env_steps": state["total_steps"],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return {"rows": rows}


# -------------------------------------------------------------------------------- scaling
def _engine_rate(p: int, seconds: float) -> float:
    import torch

    from autorl.engine.ppo import EngineConfig, Population

    torch.set_num_threads(1)
    pop = Population(
        EngineConfig("CartPole-v1", n_envs=32, n_steps=32, n_epochs=4, n_minibatches=4),
        [{"learning_rate": 1e-3}] * p,
        range(p),
    )
    pop.train(1)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        pop.train(4000)
        pop.evaluate()
        steps += p * 4096
    return steps / (time.perf_counter() - t0)


def _sb3_rate(seconds: float) -> float:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    env = make_vec_env("CartPole-v1", n_envs=32, seed=0)
    model = PPO(
        "MlpPolicy", env, n_steps=32, batch_size=256, n_epochs=4, learning_rate=1e-3, verbose=0, device="cpu"
    )
    from stable_baselines3.common.evaluation import evaluate_policy

    from autorl.targets.sb3 import quiet

    quiet(model)
    eval_env = make_vec_env("CartPole-v1", n_envs=1, seed=10_000)
    model.learn(1024)
    t0, start = time.perf_counter(), model.num_timesteps
    while time.perf_counter() - t0 < seconds:  # as the engine: 4,096 steps, then 10 deterministic episodes
        model.learn(4096, reset_num_timesteps=False)
        evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    return (model.num_timesteps - start) / (time.perf_counter() - t0)


def _sb3_population_rate(p: int, tmp: Path, workers: int, steps: int = 6 * 4096) -> float:
    """The SB3 PBT population of autorl (members in worker processes), same rollout shape, ``steps``
    per member (the rate includes the workers' start-up and every exploit's checkpoint copy)."""
    cfg = {
        "target": "sb3:ppo",
        "args": {
            "env": "CartPole-v1",
            "n_envs": 32,
            "n_steps": 32,
            "batch_size": 256,
            "n_epochs": 4,
            "eval_episodes": 10,
        },
        "space": {
            "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True, "mutable": True}
        },
        "budget": {"max": steps, "report_every": 4096},
        "method": {"name": "pbt", "population": p},
        "workers": workers,
    }
    result, wall = _sweep(cfg, tmp / f"sb3pop-{p}-{workers}")
    state = json.loads((result.out / "population.json").read_text())
    return state["total_steps"] / wall


def scaling(a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    sb3_one = _sb3_rate(a.seconds)
    rows = []
    for p in a.sizes:
        row = {"population": p, "engine": _engine_rate(p, a.seconds), "sb3_one_agent": sb3_one}
        if p <= a.sb3_population_max:
            row["sb3_population_2_workers"] = (
                _sb3_population_rate(p, tmp, 2, a.sb3_steps) if p > 1 else sb3_one
            )
        rows.append(row)
        print(json.dumps(row), flush=True)
    if a.png:
        from autorl.plotting import pyplot, save_figure

        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6.5, 4))
        ps = [r["population"] for r in rows]
        ax.plot(ps, [r["engine"] for r in rows], "o-", label="autorl engine, 1 process, 1 thread")
        sb3p = [
            (r["population"], r["sb3_population_2_workers"]) for r in rows if "sb3_population_2_workers" in r
        ]
        ax.plot(
            [x for x, _ in sb3p], [y for _, y in sb3p], "s--", label="SB3 PPO population (PBT), 2 workers"
        )
        ax.axhline(sb3_one, color="C2", ls=":", label="SB3 PPO, one agent")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("population size (agents trained at once)")
        ax.set_ylabel("env steps per second, evaluation included")
        ax.set_title("CartPole-v1, 32 envs x 32 steps per agent, 4 epochs (2-core CPU)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        save_figure(fig, a.png)
    return {"rows": rows}


# -------------------------------------------------------------------------------- Acrobot PBT
def acrobot_pbt(a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    cfg = {
        "target": "engine:ppo",
        "args": {
            "env": "Acrobot-v1",
            "n_envs": 16,
            "n_steps": 64,
            "n_epochs": 4,
            "n_minibatches": 4,
            "normalize_obs": True,
            "eval_episodes": 5,
        },
        "space": {
            "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True, "mutable": True},
            "ent_coef": {"type": "float", "low": 1e-8, "high": 0.1, "log": True, "mutable": True},
            "gae_lambda": {"type": "float", "low": 0.8, "high": 1.0, "mutable": True},
        },
        "budget": {"max": a.steps, "report_every": 8192},
        "method": {"name": "pbt", "population": a.population},
        "seed": 0,
    }
    result, wall = _sweep(cfg, tmp / "acrobot")
    df = result.trials
    out = {
        "population": a.population,
        "steps_per_member": a.steps,
        "wall_s": round(wall, 1),
        "env_steps_per_s": round(a.population * a.steps / wall),
        "best_return": float(df["value"].max()),
        "median_return": float(df["value"].median()),
        "share_above_minus_100": float((df["value"] > -100).mean()),
    }
    print(json.dumps(out), flush=True)
    return out


# -------------------------------------------------------------------------------- threads vs processes
def threads(a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    base = {
        "target": "engine:ppo",
        "args": {"env": "CartPole-v1", "n_envs": 32, "n_steps": 32, "n_epochs": 4, "n_minibatches": 4},
        "space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True}},
        "budget": {"max": a.steps, "report_every": 4096},
        "method": "random",
        "trials": 16,
    }
    rows = []
    for name, workers, batch, n_threads in (
        ("1 process x 2 threads", 1, 16, 2),
        ("2 processes x 1 thread", 2, 8, 1),
    ):
        cfg = {**base, "workers": workers, "batch": batch, "args": {**base["args"], "threads": n_threads}}
        _, wall = _sweep(cfg, tmp / f"threads-{workers}")
        rows.append({"layout": name, "wall_s": round(wall, 1), "env_steps_per_s": round(16 * a.steps / wall)})
        print(json.dumps(rows[-1]), flush=True)
    return {"rows": rows}


# -------------------------------------------------------------------------------- random search
def random_search(a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """64 configs of one space at 100,000 steps each, as batches on the engine; with --sb3 the same 64
    configs (the same sampler seed) trained one by one by SB3 PPO."""
    space = {
        "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
        "clip_range": {"type": "float", "low": 0.1, "high": 0.4},
        "ent_coef": {"type": "float", "low": 1e-8, "high": 0.1, "log": True},
        "gamma": {"type": "float", "low": 0.9, "high": 0.9999, "log": True, "transform": "one_minus"},
        "gae_lambda": {"type": "float", "low": 0.8, "high": 1.0},
    }
    shape = {"n_envs": 32, "n_steps": 32, "n_epochs": 4}
    base = {
        "space": space,
        "budget": {"max": a.steps, "report_every": a.steps // 5},
        "method": "random",
        "trials": a.configs,
        "seed": 0,
    }
    out: dict[str, Any] = {}
    runs = [
        (
            "engine",
            {
                "target": "engine:ppo",
                "args": {"env": "CartPole-v1", **shape, "n_minibatches": 4},
                "batch": a.batch,
                "workers": 2,
            },
        )
    ]
    if a.sb3:
        runs.append(
            (
                "sb3",
                {
                    "target": "sb3:ppo",
                    "args": {"env": "CartPole-v1", **shape, "batch_size": 256, "eval_episodes": 10},
                    "workers": 2,
                },
            )
        )
    for name, extra in runs:
        result, wall = _sweep({**base, **extra}, tmp / f"rs-{name}")
        values = result.trials["value"].to_numpy(dtype=float)
        out[name] = {
            "wall_s": round(wall, 1),
            "median": float(np.median(values)),
            "p90": float(np.quantile(values, 0.9)),
            "share_solved": float(np.mean(values >= SOLVED)),
            "share_solved_ci": _bootstrap_ci((values >= SOLVED).astype(float)),  # 95%, bootstrap
            "failed": int(np.isnan(values).sum()),
        }
        print(name, json.dumps(out[name]), flush=True)
    return out


# -------------------------------------------------------------------------------- parity with SB3
def _bootstrap_ci(x: np.ndarray, reps: int = 5000) -> tuple[float, float]:
    rng = np.random.default_rng(0)  # each CI its own draws: one statistic more does not move the others
    means = x[rng.integers(0, len(x), (reps, len(x)))].mean(1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


PARITY_STATS = {
    "auc": lambda c: c.mean(1),
    "final": lambda c: c[:, -1],
    "last5": lambda c: c[:, -5:].mean(1),  # one evaluation of 10 episodes is noisy: the last five
}


def _each_in_the_others_ci(a: np.ndarray, b: np.ndarray, reps: int = 5000) -> bool:
    """The issue's parity criterion: each side's mean lies inside the other's 95% bootstrap CI."""
    ca, cb = _bootstrap_ci(a, reps), _bootstrap_ci(b, reps)
    return bool(cb[0] <= a.mean() <= cb[1] and ca[0] <= b.mean() <= ca[1])


def parity(a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """SB3 PPO and the engine at rl-zoo3's tuned settings, the same env steps, ``--seeds`` seeds each:
    the area under the deterministic evaluation curve and the final return, with 95% bootstrap CIs."""
    out: dict[str, Any] = {}
    curves: dict[str, dict[str, np.ndarray]] = {}
    for env, zoo in ZOO.items():
        if a.envs and env not in a.envs:
            continue
        every = zoo["report_every"]  # whole rollouts, so both sides evaluate at the same steps
        common = {
            k: zoo[k]
            for k in ("n_envs", "n_steps", "n_epochs", "gamma", "gae_lambda", "ent_coef")
            if k in zoo
        }
        for k in ("learning_rate", "clip_range"):
            if k in zoo:
                common[k] = zoo[k]
        minibatches = zoo["n_envs"] * zoo["n_steps"] // zoo["batch_size"]
        sides = {
            "engine": {
                "target": "engine:ppo",
                "args": {
                    "env": env,
                    **common,
                    "n_minibatches": minibatches,
                    "normalize_obs": bool(zoo.get("normalize")),
                    "normalize_reward": bool(zoo.get("normalize")),
                    "eval_episodes": a.eval_episodes,
                },
            },
            "sb3": {
                "target": "sb3:ppo",
                "args": {
                    "env": env,
                    **common,
                    "batch_size": zoo["batch_size"],
                    "normalize": bool(zoo.get("normalize")),
                    "eval_episodes": a.eval_episodes,
                },
                "workers": 2,
            },
        }
        for side, cfg in sides.items():
            space = {"ent_coef": {"type": "fixed", "value": zoo["ent_coef"]}}  # nothing searched: seeds only
            run = {
                **cfg,
                "args": {k: v for k, v in cfg["args"].items() if k != "ent_coef"},
                "space": space,
                "budget": {"max": zoo["steps"], "report_every": every},
                "method": "random",
                "trials": a.seeds,
                "seed": a.sweep_seed,  # the trials' seeds derive from it: another value, fresh seeds
            }
            if side == "engine":
                run["batch"] = a.seeds  # ten seeds of one config: one population
            result, wall = _sweep(run, tmp / f"parity-{env}-{side}")
            import pandas as pd

            cv = pd.read_csv(result.out / "curves.csv").pivot(index="trial", columns="step", values="value")
            arr = cv.to_numpy(dtype=float)
            curves.setdefault(env, {})[side] = arr
            out[f"{env}/{side}"] = {"wall_s": round(wall, 1)}
            for m, stat in PARITY_STATS.items():
                out[f"{env}/{side}"] |= {m: float(stat(arr).mean()), f"{m}_ci": _bootstrap_ci(stat(arr))}
            out[f"{env}/{side}"] |= {
                "steps": list(map(int, cv.columns)),
                "curves": arr.round(3).tolist(),  # per seed, at ``steps``
            }
            print(env, side, json.dumps(out[f"{env}/{side}"]), flush=True)
        e, s = out[f"{env}/engine"], out[f"{env}/sb3"]
        if e["steps"] != s["steps"]:  # the comparison is at equal env steps, or it is not made
            raise SystemExit(f"{env}: engine evaluated at {e['steps']}, SB3 at {s['steps']}")
        for m, stat in PARITY_STATS.items():
            out[f"{env}/{m}_each_in_the_others_ci"] = _each_in_the_others_ci(
                stat(curves[env]["engine"]), stat(curves[env]["sb3"])
            )
    if a.png:
        from autorl.plotting import pyplot, save_figure

        plt = pyplot()
        fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 3.8))
        for ax, (env, sides) in zip(np.atleast_1d(axes), curves.items(), strict=True):
            steps = out[f"{env}/engine"]["steps"]
            for (side, arr), (colour, ls) in zip(sides.items(), (("C0", "-"), ("C1", "--")), strict=True):
                mean = arr.mean(0)
                lo = np.quantile(arr, 0.25, axis=0)
                hi = np.quantile(arr, 0.75, axis=0)
                ax.plot(
                    steps,
                    mean,
                    color=colour,
                    ls=ls,
                    marker="o",
                    ms=3,
                    label=f"{side} (mean of {len(arr)} seeds)",
                )
                ax.fill_between(steps, lo, hi, color=colour, alpha=0.15, lw=0)
            ax.set_title(f"{env}: rl-zoo3's PPO settings")
            ax.set_xlabel("env steps")
            ax.set_ylabel(f"deterministic eval return ({a.eval_episodes} episodes)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle("engine vs SB3 PPO: mean and interquartile range over seeds", fontsize=10)
        save_figure(fig, a.png)
    return out


def parity_pool(a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Pool the per-seed curves of parity runs (``--inputs``: their ``--json`` files, distinct seeds, the
    same evaluation steps) and test the difference: bootstrap CIs on the pooled seeds, a permutation
    test of each statistic, and how often each side fails the criterion against itself when its pooled
    seeds are split at random into two halves: the rate at which equal algorithms fail it."""
    runs = [json.loads(Path(f).read_text()) for f in a.inputs]
    envs = sorted({k.split("/")[0] for run in runs for k in run if k.endswith("/engine")})
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"inputs": list(a.inputs)}
    for env in envs:
        if a.envs and env not in a.envs:
            continue
        have = [run for run in runs if f"{env}/engine" in run]
        curves = {}
        for side in ("engine", "sb3"):
            if len({tuple(run[f"{env}/{side}"]["steps"]) for run in have}) != 1:
                raise SystemExit(f"{env}: the runs evaluated {side} at different steps")
            curves[side] = np.concatenate([np.asarray(run[f"{env}/{side}"]["curves"]) for run in have])
        n = min(len(c) for c in curves.values())
        for name, stat in PARITY_STATS.items():
            e, s = stat(curves["engine"]), stat(curves["sb3"])
            both, seen = np.concatenate([e, s]), abs(e.mean() - s.mean())
            perms = np.argsort(rng.random((a.permutations, len(both))), 1)
            diffs = np.abs(both[perms[:, : len(e)]].mean(1) - both[perms[:, len(e) :]].mean(1))
            row: dict[str, Any] = {
                "engine": float(e.mean()),
                "engine_ci": _bootstrap_ci(e),
                "sb3": float(s.mean()),
                "sb3_ci": _bootstrap_ci(s),
                "each_in_the_others_ci": _each_in_the_others_ci(e, s),
                "permutation_p": float((diffs >= seen).mean()),
            }
            for side, v in (("engine", e), ("sb3", s)):  # equal algorithms: one side against itself
                halves = [rng.permutation(len(v)) for _ in range(a.splits)]
                fails = [
                    not _each_in_the_others_ci(v[h[: n // 2]], v[h[n // 2 : 2 * (n // 2)]], 1000)
                    for h in halves
                ]
                row[f"{side}_self_split_fails"] = float(np.mean(fails))
            out[f"{env}/{name}"] = row
            print(env, name, f"({len(e)} and {len(s)} seeds)", json.dumps(row), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "part",
        choices=[
            "pbt-cartpole",
            "scaling",
            "acrobot-pbt",
            "threads",
            "random-search",
            "parity",
            "parity-pool",
        ],
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 64, 256])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--sb3-population-max", type=int, default=8)
    ap.add_argument("--sb3-steps", type=int, default=6 * 4096, help="env steps per SB3 population member")
    ap.add_argument("--population", type=int, default=64)
    ap.add_argument("--configs", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--sb3", action="store_true")
    ap.add_argument("--envs", nargs="+", default=None, help="parity: only these envs")
    ap.add_argument("--eval-episodes", type=int, default=10, help="parity: episodes per evaluation")
    ap.add_argument("--sweep-seed", type=int, default=0, help="parity: another value draws other seeds")
    ap.add_argument("--inputs", nargs="+", default=[], help="parity-pool: the parity runs' --json files")
    ap.add_argument("--permutations", type=int, default=20_000, help="parity-pool")
    ap.add_argument("--splits", type=int, default=400, help="parity-pool: random halves per side")
    ap.add_argument("--png", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    defaults = {"pbt-cartpole": 100_000, "acrobot-pbt": 150_000, "threads": 50_000, "random-search": 100_000}
    a.steps = a.steps or defaults.get(a.part, 0)
    if a.seeds is None:
        a.seeds = [0, 1, 2] if a.part == "pbt-cartpole" else [10]
    if a.part == "parity":
        a.seeds = a.seeds[0]
    fn = {
        "pbt-cartpole": pbt_cartpole,
        "scaling": scaling,
        "acrobot-pbt": acrobot_pbt,
        "threads": threads,
        "random-search": random_search,
        "parity": parity,
        "parity-pool": parity_pool,
    }[a.part]
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        out = fn(a, Path(d))
        out["total_wall_s"] = round(time.perf_counter() - t0, 1)
        print(f"total wall time: {out['total_wall_s']} s")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
