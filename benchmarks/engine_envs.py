"""Throughput of the batched classic-control envs: env steps per second for each env and batch size.

Steps N copies with random actions (auto-reset included), on one thread by default, and prints
``N * steps / second``. The actions and reset uniforms are drawn beforehand (a pool cycled through), so
the figures are those of the env step alone. Run: ``python benchmarks/engine_envs.py`` (``--help`` for
sizes, dtype, threads and device).
"""

from __future__ import annotations

import argparse
import time

import torch

from autorl.engine.envs import SPECS, make


def steps_per_second(env_id: str, n: int, *, dtype: torch.dtype, device: str, seconds: float) -> float:
    """Env steps per second (copies times steps) of ``env_id`` at ``n`` copies."""
    spec = SPECS[env_id]
    env = make(env_id, n, device=device, dtype=dtype)
    gen = torch.Generator(device=device).manual_seed(0)
    pool = 16
    if spec.n_actions is not None:
        actions = torch.randint(0, spec.n_actions, (pool, n), generator=gen, device=device)
    else:
        low, high = spec.action_low[0], spec.action_high[0]  # type: ignore[index]
        u = torch.rand(pool, n, spec.action_dim, generator=gen, device=device, dtype=dtype)
        actions = low + (high - low) * u
    uniforms = torch.rand(pool, n, spec.reset_dims, generator=gen, device=device, dtype=dtype)
    env.reset(uniforms[0])

    def run(steps: int) -> None:
        for i in range(steps):
            env.step(actions[i % pool], uniforms[i % pool])
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    run(20)  # warm-up
    steps, elapsed = 32, 0.0
    while elapsed < seconds:
        start = time.perf_counter()
        run(steps)
        elapsed = time.perf_counter() - start
        if elapsed < seconds:
            steps *= 2
    return n * steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 4096], help="numbers of copies N")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=0.5, help="minimum timed seconds per figure")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)

    print(f"env steps per second ({args.dtype}, {args.threads} thread(s), {args.device})")
    print(f"{'env':<26}" + "".join(f"{f'N={n}':>14}" for n in args.sizes))
    for env_id in SPECS:
        figures = [
            steps_per_second(env_id, n, dtype=dtype, device=args.device, seconds=args.seconds)
            for n in args.sizes
        ]
        print(f"{env_id:<26}" + "".join(f"{f:>14,.0f}" for f in figures))


if __name__ == "__main__":
    main()
