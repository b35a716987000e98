"""The engine's speed as a user sees it: the shipped engine PBT example from process start to its exported
trials.csv, against one plain SB3 PPO agent at rl-zoo3's CartPole settings, measured in the same run.

Engine side: ``autorl sweep search_spaces/examples/engine_pbt_cartpole.yaml`` (8 members x 100,000 steps,
PBT, one worker) in a fresh interpreter, timed from ``Popen`` to its exit (trials.csv, best.yaml and the
population outputs written; plots off). Its env steps are the members' trained steps
(population_summary.json's ``total_steps``); its phases are that file's (train, evaluate, checkpoint,
other work in the worker, orchestration in the sweep's process) and ``outside``: the wall time not in
the population loop (interpreter start, imports, config, study, the worker's start, export).

SB3 side: one ``stable_baselines3.PPO`` agent with rl-zoo3's CartPole-v1 hyperparameters (8 envs,
n_steps 32, batch 256, 20 epochs, gamma 0.98, GAE lambda 0.8, linear learning rate 1e-3 and clip range
0.2, no entropy bonus) learning ``--sb3-steps`` steps on one torch thread in a fresh interpreter; its
figure is env steps per second of ``learn()`` alone (the friendlier figure for SB3), and from process
start to exit.

With ``--peer``, the JAX peer of ``engine_vs_jax.py`` runs similar, lighter work end to end as a third
side: ``python benchmarks/engine_vs_jax.py --pbt-run SEED``, PBT with the example's members, steps,
interval, poor start and decisions on training returns, in a fresh interpreter pinned to one core
(with ``--peer-no-pin`` not pinned: XLA then compiles on both cores), timed from ``Popen`` to its
exit. It runs twice per repeat: with JAX's persistent compilation cache off (what a first run pays)
and with it warm (a cache directory filled by one untimed run first). It is friendlier to the peer
than the example is to the engine: clip range and entropy coefficient are not tuned, and nothing is
evaluated or written (see ``pbt_run``). jax is an optional benchmark extra
(``pip install -e ".[bench-jax]"``).

The sides alternate (engine, [peer, peer with its cache,] SB3, engine, ...), ``--repeats`` times each
with the sweep seeds 0, 1, 2, ...; every run and the medians are printed. Run it on an otherwise idle
machine:

    python benchmarks/engine_end_to_end.py --json docs/figures/engine_end_to_end.json   # about 3 minutes
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEER = Path(__file__).resolve().parent / "engine_vs_jax.py"
EXAMPLE = ROOT / "search_spaces" / "examples" / "engine_pbt_cartpole.yaml"

SB3_SCRIPT = """
import json, sys, time
import torch
torch.set_num_threads(1)
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
steps, seed = int(sys.argv[1]), int(sys.argv[2])
env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
linear = lambda start: (lambda remaining: remaining * start)
model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, n_epochs=20, gamma=0.98, gae_lambda=0.8,
            learning_rate=linear(1e-3), clip_range=linear(0.2), ent_coef=0.0, seed=seed, device="cpu")
start = time.perf_counter()
model.learn(steps)
print(json.dumps({"learn_s": time.perf_counter() - start, "steps": int(model.num_timesteps)}))
"""


def engine_run(seed: int, out: Path, sets: list[str]) -> dict[str, Any]:
    """One sweep of the shipped example (with ``sets``: ``--set KEY=VALUE`` overrides), from process
    start to exit."""
    command = [sys.executable, "-m", "autorl.cli", "sweep", str(EXAMPLE), "--out", str(out)]
    command += ["--quiet", "--no-plots", "--set", f"seed={seed}"]
    for item in sets:
        command += ["--set", item]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
    wall = time.perf_counter() - start
    if not (out / "trials.csv").is_file():
        raise RuntimeError(f"the sweep wrote no trials.csv in {out}")
    summary = json.loads((out / "population_summary.json").read_text())
    phases = dict(summary["phases"])
    phases["outside"] = wall - sum(phases.values())
    return {
        "seed": seed,
        "wall_s": wall,
        "env_steps": summary["total_steps"],
        "steps_per_s": summary["total_steps"] / wall,
        "phases_s": phases,
    }


def sb3_run(seed: int, steps: int) -> dict[str, Any]:
    """One SB3 agent at rl-zoo3's CartPole settings, from process start to exit."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", SB3_SCRIPT, str(steps), str(seed)], check=True, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "seed": seed,
        "wall_s": wall,
        "env_steps": result["steps"],
        "learn_s": result["learn_s"],
        "steps_per_s": result["steps"] / result["learn_s"],
        "steps_per_s_from_start": result["steps"] / wall,
    }


def peer_run(seed: int, cache: Path | None, pin: bool = True) -> dict[str, Any]:
    """One PBT run of the JAX peer at the example's size (``cache``: JAX's persistent compilation cache;
    ``pin``: the peer pins itself to one core, else XLA may use more), from process start to exit;
    ``start`` is the rest of the wall time: the interpreter's start, jax's import and the exit."""
    command = [sys.executable, str(PEER), "--pbt-run", str(seed)]
    command += ["--jax-cache", str(cache)] if cache else []
    command += [] if pin else ["--no-pin"]
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}  # cold means cold
    start = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    result = json.loads(done.stdout.strip().splitlines()[-1])
    phases = {k: result[f"{k}_s"] for k in ("init", "compile", "train", "exploit")}
    phases["start"] = wall - result["in_process_s"]
    return {
        "seed": seed,
        "cache": bool(cache),
        "wall_s": wall,
        "env_steps": result["env_steps"],
        "steps_per_s": result["env_steps"] / wall,
        "phases_s": phases,
        "final_train_return": result["final_train_return"],
    }


def summary(runs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """Medians of one side's end-to-end runs: env steps/s, wall time and each phase."""
    return {
        f"{name}_steps_per_s": statistics.median(r["steps_per_s"] for r in runs),
        f"{name}_wall_s": statistics.median(r["wall_s"] for r in runs),
        f"{name}_phases_s": {
            k: statistics.median(r["phases_s"][k] for r in runs) for k in runs[0]["phases_s"]
        },
    }


def printed(name: str, run: dict[str, Any]) -> str:
    phases = ", ".join(f"{k} {v:.2f}" for k, v in run["phases_s"].items())
    return (
        f"{name} seed {run['seed']}: {run['env_steps']:,} steps in {run['wall_s']:.2f} s = "
        f"{run['steps_per_s']:,.0f} steps/s ({phases})"
    )


def _jax_version() -> str:
    from importlib.metadata import version

    return version("jax")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side (sweep seeds 0, 1, ...)")
    parser.add_argument("--sb3-steps", type=int, default=50_000, help="env steps of each SB3 run")
    parser.add_argument("--json", type=Path, help="write the runs and medians here")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="an override of the example"
    )
    parser.add_argument("--peer", action="store_true", help="also the JAX peer, cold and with its cache")
    parser.add_argument(
        "--peer-no-pin", action="store_true", help="the peer not pinned to one core (XLA compiles on more)"
    )
    args = parser.parse_args()
    began = time.perf_counter()
    engine: list[dict[str, Any]] = []
    sb3: list[dict[str, Any]] = []
    peers: dict[str, list[dict[str, Any]]] = {"peer_cold": [], "peer_cached": []}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "jax-cache"
        if args.peer:
            peer_run(0, cache, not args.peer_no_pin)  # fills the cache; not timed
        for seed in range(args.repeats):
            e = engine_run(seed, Path(tmp) / f"engine-{seed}", args.set)
            engine.append(e)
            print(printed("engine", e))
            if args.peer:
                for name, directory in (("peer_cold", None), ("peer_cached", cache)):
                    peers[name].append(peer_run(seed, directory, not args.peer_no_pin))
                    print(printed(name, peers[name][-1]))
            s = sb3_run(seed, args.sb3_steps)
            sb3.append(s)
            print(
                f"sb3 seed {seed}: {s['env_steps']:,} steps, learn() {s['learn_s']:.2f} s = "
                f"{s['steps_per_s']:,.0f} steps/s; from start {s['wall_s']:.2f} s = "
                f"{s['steps_per_s_from_start']:,.0f} steps/s"
            )
    median: dict[str, Any] = summary(engine, "engine") | {
        "sb3_steps_per_s": statistics.median(s["steps_per_s"] for s in sb3),
        "sb3_steps_per_s_from_start": statistics.median(s["steps_per_s_from_start"] for s in sb3),
    }
    median["ratio"] = median["engine_steps_per_s"] / median["sb3_steps_per_s"]
    median["ratio_from_start"] = median["engine_steps_per_s"] / median["sb3_steps_per_s_from_start"]
    for name, runs in peers.items():
        if runs:
            median |= summary(runs, name)
            median[f"{name}_ratio"] = median[f"{name}_steps_per_s"] / median["sb3_steps_per_s"]
    wall = time.perf_counter() - began
    print(
        f"\nmedian: engine {median['engine_steps_per_s']:,.0f} env steps/s end to end "
        f"({median['engine_wall_s']:.2f} s), SB3 {median['sb3_steps_per_s']:,.0f} in learn() "
        f"({median['sb3_steps_per_s_from_start']:,.0f} from start): "
        f"{median['ratio']:.1f}x ({median['ratio_from_start']:.1f}x against SB3 from start)"
    )
    phases = ", ".join(f"{k} {v:.2f}" for k, v in median["engine_phases_s"].items())
    print(f"engine phases (median s): {phases}")
    for name, runs in peers.items():
        if runs:
            phases = ", ".join(f"{k} {v:.2f}" for k, v in median[f"{name}_phases_s"].items())
            print(
                f"{name}: {median[f'{name}_steps_per_s']:,.0f} env steps/s end to end "
                f"({median[f'{name}_wall_s']:.2f} s), {median[f'{name}_ratio']:.1f}x SB3; phases {phases}"
            )
    print(f"wall time {wall:.0f} s")
    if args.json:
        import torch

        record = {
            "command": "python benchmarks/engine_end_to_end.py " + " ".join(sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d"),
            "torch": torch.__version__,
            "example": str(EXAMPLE.relative_to(ROOT)),
            "example_config": EXAMPLE.read_text(),  # what "the shipped example" was in this run
            "sets": args.set,
            # set, it keeps torch.compile's code between runs (args.compile): the first run fills it
            "torchinductor_cache_dir": os.environ.get("TORCHINDUCTOR_CACHE_DIR"),
            "sb3_steps": args.sb3_steps,
            "jax": _jax_version() if args.peer else None,
            "engine": engine,
            "sb3": sb3,
            **{name: runs for name, runs in peers.items() if runs},
            "median": median,
            "wall_s": wall,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
