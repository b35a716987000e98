"""The engine on an accelerator: throughput by population size, PBT's time to solve CartPole, and a member
trained there saved, loaded and run. Imports only torch, numpy and ``autorl.engine`` (no gymnasium,
Optuna, Ray or SB3), so it runs on a bare GPU machine from a checkout: ``PYTHONPATH=. python ...``.

1. **Throughput.** For each population size P, a fresh CartPole-v1 population (the shipped engine
   example's settings: 32 envs x 32 steps per member per rollout, 4 epochs of 4 minibatches, learning
   rate 1e-3) trains in calls of ``train(4096)`` for about ``--seconds`` after a one-rollout warm-up;
   the figure is the members' env steps per second of training (no evaluation), the device synchronised
   before each clock reading.
2. **PBT to solve CartPole.** The shipped example's PBT, written here with the engine's own calls:
   ``--pbt-members`` members from the poor start (learning rate 1e-5..3e-5, entropy coefficient
   1e-8..1e-6, clip range 0.05..0.4), every 4,096 steps per member each member is evaluated (10
   deterministic episodes), each of the bottom quarter copies one of the top quarter
   (``Population.copy``) and explores as autorl's PBT does (each value resampled with probability 1/4,
   else multiplied by 0.8 or 1.2, within the example's bounds); solved when a member's evaluation reaches
   475 (CartPole-v1's reward threshold). Time, env steps and intervals to solve, per seed.
3. **Save, load and run.** The population's ``state_dict`` is saved with ``torch.save`` and loaded into
   a CPU population (``map_location="cpu"``), whose evaluation is compared with the device's; the best
   member's ``member_state`` must hold CPU tensors, and ``load_policy`` runs it on numpy observations.
   Where gymnasium and SB3 are installed, ``autorl.engine.export.save_sb3`` writes it as an SB3 model.

    python benchmarks/engine_device.py                       # cuda if available; P = 1, 64, 1024, 4096
    python benchmarks/engine_device.py --device cpu --sizes 1 8 64 --seconds 3   # a CPU try, ~2 min

Under 5 minutes on a GPU with the defaults; ``--json PATH`` writes every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autorl.engine.config import EngineConfig
from autorl.engine.ppo import Population, load_policy

SETTINGS: dict[str, Any] = {"n_envs": 32, "n_steps": 32, "n_epochs": 4, "n_minibatches": 4}
BOUNDS = {"learning_rate": (1e-5, 1e-2), "clip_range": (0.05, 0.4), "ent_coef": (1e-8, 0.1)}
SOLVED = 475.0
INTERVAL = 4096


def sync(device: str) -> None:
    """Wait for the device's queued work, so that a clock reading counts it."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def throughput(device: str, members: int, seconds: float) -> dict[str, Any]:
    """Training env steps per second of a fresh ``members``-member CartPole population."""
    config = EngineConfig("CartPole-v1", **SETTINGS, device=device)
    pop = Population(config, [{"learning_rate": 1e-3}] * members, seeds=range(members))
    start = time.perf_counter()
    pop.train(1)  # warm-up: the first rollout allocates (and on cuda loads the kernels)
    sync(device)
    warm = time.perf_counter() - start
    calls, elapsed, before = 0, 0.0, int(pop.steps.sum())
    while elapsed < seconds or calls < 2:
        start = time.perf_counter()
        pop.train(INTERVAL)
        sync(device)
        elapsed += time.perf_counter() - start
        calls += 1
    steps = int(pop.steps.sum()) - before
    return {"members": members, "steps_per_s": steps / elapsed, "calls": calls, "warmup_s": warm}


def explore(hparams: dict[str, float], rng: np.random.Generator) -> dict[str, float]:
    """autorl's PBT explore: each value resampled from the example's space with probability 1/4 (log
    scale but for the clip range), else multiplied by 0.8 or 1.2 and kept within the bounds. Written
    out rather than ``autorl.space.perturb``: autorl.space needs PyYAML, which the GPU machine lacks."""
    out = {}
    for name, (low, high) in BOUNDS.items():
        if rng.random() < 0.25:
            if name == "clip_range":
                out[name] = float(rng.uniform(low, high))
            else:
                out[name] = float(math.exp(rng.uniform(math.log(low), math.log(high))))
        else:
            out[name] = min(high, max(low, hparams[name] * float(rng.choice([0.8, 1.2]))))
    return out


def pbt_to_solve(device: str, members: int, seed: int, max_steps: int) -> dict[str, Any]:
    """Engine PBT from the poor start until a member's evaluation reaches 475, or ``max_steps`` each."""
    rng = np.random.default_rng(seed)

    def draw(low: float, high: float) -> float:
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))

    hparams = [
        {
            "learning_rate": draw(1e-5, 3e-5),
            "clip_range": float(rng.uniform(*BOUNDS["clip_range"])),
            "ent_coef": draw(1e-8, 1e-6),
        }
        for _ in range(members)
    ]
    config = EngineConfig("CartPole-v1", **SETTINGS, device=device)
    start = time.perf_counter()
    pop = Population(config, hparams, seeds=[seed * 1000 + i for i in range(members)])
    quarter = max(1, members // 4)
    best, intervals = -math.inf, 0
    while int(pop.steps.max()) < max_steps:
        pop.train(INTERVAL)
        returns = pop.evaluate().cpu().numpy()
        intervals += 1
        best = float(np.nanmax(returns))
        if best >= SOLVED:
            break
        order = np.argsort(np.nan_to_num(returns, nan=-math.inf))  # worst first
        for dst in order[:quarter]:
            src = int(rng.choice(order[::-1][:quarter]))
            pop.copy(src, int(dst))
            pop.set_hparams(int(dst), explore(pop.hparams(src), rng))
    sync(device)
    return {
        "seed": seed,
        "solved": best >= SOLVED,
        "seconds": time.perf_counter() - start,
        "env_steps": int(pop.steps.sum()),
        "intervals": intervals,
        "best_return": best,
        "population": pop,
    }


def save_load_run(pop: Population, device: str) -> dict[str, Any]:
    """Save the population, load it on the CPU, and run its best member with numpy alone."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "population.pt"
        torch.save(pop.state_dict(), path)
        cpu_config = EngineConfig("CartPole-v1", **SETTINGS, device="cpu")
        on_cpu = Population(cpu_config, [{}], seeds=[0])
        on_cpu.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
        here = pop.evaluate(2).cpu()
        there = on_cpu.evaluate(2)
        member = int(torch.nan_to_num(here, nan=-math.inf).argmax())
        state = pop.member_state(member)
        tensors = [t for t in _tensors(state)]
        policy = load_policy(state)
        obs = np.random.default_rng(0).uniform(-0.05, 0.05, (16, 4)).astype(np.float32)
        actions = [int(policy(o)) for o in obs]
        exported: str
        try:
            from autorl.engine.export import save_sb3

            save_sb3(state, Path(tmp) / "sb3")
            exported = "model.zip written"
        except ImportError as err:
            exported = f"skipped: {err.name} not installed"
    return {
        "state_mb": state_mb(pop),
        "evaluate_device": here.tolist(),
        "evaluate_cpu_after_load": there.tolist(),
        "member_state_on_cpu": all(t.device.type == "cpu" for t in tensors),
        "load_policy_actions": actions,
        "export_sb3": exported,
    }


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _tensors(v)]
    return []


def state_mb(pop: Population) -> float:
    """The population state_dict's tensors, in MiB."""
    return sum(t.numel() * t.element_size() for t in _tensors(pop.state_dict())) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    available = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=available, help=f"default here: {available}")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 64, 1024, 4096])
    parser.add_argument("--seconds", type=float, default=10.0, help="timed training per size")
    parser.add_argument("--pbt-members", type=int, default=8)
    parser.add_argument("--pbt-seeds", type=int, default=3)
    parser.add_argument("--pbt-max-steps", type=int, default=100_000, help="per member")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU work)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    where = (
        torch.cuda.get_device_name(0)
        if args.device.startswith("cuda")
        else (platform.processor() or platform.machine())
    )
    print(f"{time.strftime('%Y-%m-%d %H:%M')} torch {torch.__version__} on {args.device} ({where})")
    rows = []
    for size in args.sizes:
        row = throughput(args.device, size, args.seconds)
        rows.append(row)
        print(
            f"P = {size:>5}: {row['steps_per_s']:>12,.0f} env steps/s ({row['calls']} calls, "
            f"warm-up {row['warmup_s']:.2f} s)"
        )
    runs = []
    for seed in range(args.pbt_seeds):
        run = pbt_to_solve(args.device, args.pbt_members, seed, args.pbt_max_steps)
        pop = run.pop("population")
        runs.append(run)
        status = "solved" if run["solved"] else "not solved"
        print(
            f"PBT seed {seed}: {status} in {run['seconds']:.1f} s, {run['env_steps']:,} env steps, "
            f"{run['intervals']} intervals (best {run['best_return']:.1f})"
        )
    checks = save_load_run(pop, args.device)
    print(
        f"save/load/run: member_state on cpu {checks['member_state_on_cpu']}, evaluate on device "
        f"{[round(x, 1) for x in checks['evaluate_device']]}, on cpu after load "
        f"{[round(x, 1) for x in checks['evaluate_cpu_after_load']]}, export {checks['export_sb3']}"
    )
    wall = time.perf_counter() - began
    print(f"wall time {wall:.0f} s")
    if args.json:
        record = {
            "command": "python benchmarks/engine_device.py",
            "date": time.strftime("%Y-%m-%d"),
            "torch": torch.__version__,
            "device": args.device,
            "device_name": where,
            "settings": SETTINGS | {"pbt_members": args.pbt_members, "seconds": args.seconds},
            "throughput": rows,
            "pbt": runs,
            "checks": checks,
            "wall_s": wall,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
