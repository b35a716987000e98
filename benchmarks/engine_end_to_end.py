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

The two sides alternate (engine, SB3, engine, SB3, ...), ``--repeats`` times each with the sweep seeds
0, 1, 2, ...; every run and the medians are printed. Run it on an otherwise idle machine:

    python benchmarks/engine_end_to_end.py --json docs/figures/engine_end_to_end.json   # about 3 minutes
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side (sweep seeds 0, 1, ...)")
    parser.add_argument("--sb3-steps", type=int, default=50_000, help="env steps of each SB3 run")
    parser.add_argument("--json", type=Path, help="write the runs and medians here")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="an override of the example"
    )
    args = parser.parse_args()
    began = time.perf_counter()
    engine: list[dict[str, Any]] = []
    sb3: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.repeats):
            e = engine_run(seed, Path(tmp) / f"engine-{seed}", args.set)
            engine.append(e)
            phases = ", ".join(f"{k} {v:.2f}" for k, v in e["phases_s"].items())
            print(
                f"engine seed {seed}: {e['env_steps']:,} steps in {e['wall_s']:.2f} s = "
                f"{e['steps_per_s']:,.0f} steps/s ({phases})"
            )
            s = sb3_run(seed, args.sb3_steps)
            sb3.append(s)
            print(
                f"sb3    seed {seed}: {s['env_steps']:,} steps, learn() {s['learn_s']:.2f} s = "
                f"{s['steps_per_s']:,.0f} steps/s; from start {s['wall_s']:.2f} s = "
                f"{s['steps_per_s_from_start']:,.0f} steps/s"
            )
    median: dict[str, Any] = {
        "engine_steps_per_s": statistics.median(e["steps_per_s"] for e in engine),
        "engine_wall_s": statistics.median(e["wall_s"] for e in engine),
        "engine_phases_s": {
            k: statistics.median(e["phases_s"][k] for e in engine) for k in engine[0]["phases_s"]
        },
        "sb3_steps_per_s": statistics.median(s["steps_per_s"] for s in sb3),
        "sb3_steps_per_s_from_start": statistics.median(s["steps_per_s_from_start"] for s in sb3),
    }
    median["ratio"] = median["engine_steps_per_s"] / median["sb3_steps_per_s"]
    median["ratio_from_start"] = median["engine_steps_per_s"] / median["sb3_steps_per_s_from_start"]
    wall = time.perf_counter() - began
    print(
        f"\nmedian: engine {median['engine_steps_per_s']:,.0f} env steps/s end to end "
        f"({median['engine_wall_s']:.2f} s), SB3 {median['sb3_steps_per_s']:,.0f} in learn() "
        f"({median['sb3_steps_per_s_from_start']:,.0f} from start): "
        f"{median['ratio']:.1f}x ({median['ratio_from_start']:.1f}x against SB3 from start)"
    )
    phases = ", ".join(f"{k} {v:.2f}" for k, v in median["engine_phases_s"].items())
    print(f"engine phases (median s): {phases}")
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
            "sb3_steps": args.sb3_steps,
            "engine": engine,
            "sb3": sb3,
            "median": median,
            "wall_s": wall,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
