"""Throughput of the hash-grid encoding: our batched version against a plain per-level, per-corner loop.

Prints points per second for the forward pass and for forward + backward, for both implementations on
the same tables, after checking that they agree. Run: ``python benchmarks/hashgrid_throughput.py``
(``--help`` for sizes; ``--device cuda`` on a GPU machine).
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable

import torch
from torch import nn

from autorl.targets.models.hashgrid import PRIMES, HashGridEncoding


class LoopEncoding(nn.Module):
    """The straightforward reference: for each level, for each corner, index, gather and weight."""

    def __init__(self, enc: HashGridEncoding) -> None:
        super().__init__()
        self.enc = enc  # for the resolutions and dense flags
        # The same values in the natural (L, T, F) layout, so that each lookup gathers whole rows.
        self.tables = nn.Parameter(enc.tables.detach().permute(1, 2, 0).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc, d, t = self.enc, self.enc.dims, self.enc.table_size
        x = x.clamp(0.0, 1.0)
        levels = []
        for level, n in enumerate(enc.resolutions):
            scaled = x * n
            low = torch.minimum(scaled.floor(), torch.tensor(n - 1.0, device=x.device)).long()
            frac = scaled - low
            out = torch.zeros(len(x), enc.n_features, device=x.device, dtype=x.dtype)
            for corner in range(2**d):
                bits = [(corner >> i) & 1 for i in range(d)]
                vertex = [low[:, i] + bits[i] for i in range(d)]
                if enc.dense[level]:
                    row = sum(vertex[i] * (n + 1) ** i for i in range(d))
                else:
                    row = vertex[0] * PRIMES[0]
                    for i in range(1, d):
                        row = row ^ (vertex[i] * PRIMES[i])
                    row = row % t
                weight = torch.ones(len(x), device=x.device, dtype=x.dtype)
                for i in range(d):
                    weight = weight * (frac[:, i] if bits[i] else 1.0 - frac[:, i])
                out = out + weight[:, None] * self.tables[level][row]
            levels.append(out)
        return torch.cat(levels, dim=1)


def time_calls(fn: Callable[[], object], device: str, min_time: float, clock: Callable[[], float]) -> float:
    """Seconds per call of ``fn``, averaged over as many calls as fit in ``min_time``."""

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    fn()  # warm-up
    sync()
    calls, start = 0, clock()
    while True:
        fn()
        calls += 1
        sync()
        elapsed = clock() - start
        if elapsed >= min_time:
            return elapsed / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2**14)
    parser.add_argument("--dims", type=int, default=2)
    parser.add_argument("--levels", type=int, default=16)
    parser.add_argument("--log2-table-size", type=int, default=14)
    parser.add_argument("--features", type=int, default=2)
    parser.add_argument("--n-min", type=int, default=16)
    parser.add_argument("--n-max", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min-time", type=float, default=2.0, help="seconds to time each case in all")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the best one counts")
    parser.add_argument(
        "--clock",
        choices=["process", "wall"],
        default=None,
        help="process CPU time (default on CPU: unaffected by other jobs on a shared machine; with several "
        "threads it sums them) or wall time (default on GPU)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock_name = args.clock or ("process" if args.device == "cpu" else "wall")
    clock = time.process_time if clock_name == "process" else time.perf_counter
    torch.manual_seed(0)

    enc = HashGridEncoding(
        args.dims, args.levels, args.log2_table_size, args.features, args.n_min, args.n_max
    ).to(args.device)
    loop = LoopEncoding(enc)
    x = torch.rand(args.points, args.dims, device=args.device)
    torch.testing.assert_close(enc(x), loop(x))  # both compute the same encoding

    def backward(module: nn.Module) -> Callable[[], None]:
        def run() -> None:
            module.zero_grad(set_to_none=True)
            module(x).square().sum().backward()

        return run

    print(
        f"device={args.device} threads={args.threads} clock={clock_name} points={args.points} "
        f"d={args.dims} L={args.levels} "
        f"T=2^{args.log2_table_size} F={args.features} N={args.n_min}..{args.n_max} "
        f"dense levels={sum(enc.dense)}/{args.levels}"
    )
    cases: dict[tuple[str, str], Callable[[], object]] = {}
    for name, module in (("batched (ours)", enc), ("loop reference", loop)):
        cases[name, "forward"] = functools.partial(_no_grad, module, x)
        cases[name, "fwd+bwd"] = backward(module)
    # Interleave the cases over several rounds and keep each one's best round, so a burst of other
    # load on a shared machine hits all of them alike and rarely the best round of any.
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(args.rounds):
        for key, fn in cases.items():
            best[key] = min(best[key], time_calls(fn, args.device, args.min_time / args.rounds, clock))
    rate = {key: args.points / seconds for key, seconds in best.items()}

    print(f"{'implementation':<16}{'forward pts/s':>16}{'fwd+bwd pts/s':>16}")
    for name in ("batched (ours)", "loop reference"):
        print(f"{name:<16}{rate[name, 'forward']:>16.3e}{rate[name, 'fwd+bwd']:>16.3e}")
    speed = [rate["batched (ours)", kind] / rate["loop reference", kind] for kind in ("forward", "fwd+bwd")]
    print(f"{'speed-up':<16}{speed[0]:>15.2f}x{speed[1]:>15.2f}x")


def _no_grad(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module(x)


if __name__ == "__main__":
    main()
