"""Do two engine processes slow each other down? Training throughput of ``Population.train`` (the
shipped example's settings, as ``engine_train_rate.py`` measures it) in one fresh one-thread process
alone, and in two such processes at once, alternating, for each population size P.

Two one-thread processes are how a sharded population or a batch on two workers runs; where each of
them trains slower beside the other than alone, no placement can reach twice one process's speed.
Sizes near one agent are bound by Python's dispatch, larger ones by the kernels and their memory: the
difference between them says which. Run it on an otherwise idle machine:

    python benchmarks/engine_contention.py --json docs/figures/engine_contention.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from engine_train_rate import ROOT, rate, result, start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 32, 64])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    runs: dict[str, dict[str, list[float]]] = {str(s): {"alone": [], "beside": []} for s in args.sizes}
    for _ in range(args.repeats):
        for size in args.sizes:
            _, alone = rate(ROOT, size, args.seconds)
            pair = [start(ROOT, size, args.seconds) for _ in range(2)]
            beside = [result(process)[1] for process in pair]
            runs[str(size)]["alone"].append(round(alone))
            runs[str(size)]["beside"] += [round(v) for v in beside]
            both = f"{beside[0]:,.0f} + {beside[1]:,.0f}"
            print(f"P = {size:>3}: alone {alone:,.0f}, two at once {both}", flush=True)
    out: dict[str, Any] = {"seconds": args.seconds, "runs": runs, "beside_over_alone": {}}
    for size, sides in runs.items():
        ratio = statistics.median(sides["beside"]) / statistics.median(sides["alone"])
        out["beside_over_alone"][size] = round(ratio, 3)
        print(f"P = {size:>3}: one process beside another / alone = {ratio:.3f} (medians)")
    if args.json:
        out["command"] = "python benchmarks/engine_contention.py " + " ".join(sys.argv[1:])
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
