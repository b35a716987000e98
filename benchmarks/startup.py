"""Start-up time of the commands a user types first, and what each one imports.

Each command runs in a fresh interpreter (`python -m autorl.cli ...`) several times; the figure is the
best wall time (the least disturbed by other load) and the median. `python -X importtime` then lists
the heavy packages the command imported and their cumulative import time: `--help`, `list` and
`validate` of a plain function should import none of torch, SB3, scipy, pandas, matplotlib or Ray.

    python benchmarks/startup.py              # about 30 s
    python benchmarks/startup.py --repeat 10
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = (
    "torch",
    "stable_baselines3",
    "scipy",
    "pandas",
    "matplotlib",
    "ray",
    "gymnasium",
    "optuna",
    "sklearn",
)
AUTORL = [sys.executable, "-m", "autorl.cli"]


def heavy_imports(args: list[str], cwd: Path) -> dict[str, float]:
    """The heavy top-level packages ``autorl ARGS`` imports, with their cumulative import time in s."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "autorl.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
    )
    found: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        if name in HEAVY and cumulative.isdigit():  # the top-level line of the package, in microseconds
            found[name] = int(cumulative) / 1e6
    return found


def wall_times(args: list[str], cwd: Path, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run([*AUTORL, *args], capture_output=True, text=True, cwd=cwd)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"autorl {' '.join(args)} failed: {done.stderr[-2000:]}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "f.py").write_text("def f(config):\n    return (config['x'] - 0.3) ** 2\n")
        (work / "quad.yaml").write_text(
            "target: f.py:f\nspace:\n  x: {type: float, low: 0.0, high: 1.0}\n"
            "direction: minimize\nmethod: random\ntrials: 4\nout: run\n"
        )
        subprocess.run(
            [*AUTORL, "sweep", "quad.yaml", "--quiet", "--no-plots"],
            cwd=work,
            check=True,
            capture_output=True,
        )
        commands = [
            ["--help"],
            ["list", "targets"],
            ["list", "methods"],
            ["validate", "quad.yaml"],
            ["validate", "examples/ppo_cartpole.yaml"],
            ["show", "run"],
        ]
        print(f"{'command':<44} {'best s':>7} {'median s':>9}  heavy imports (cumulative s)")
        for args in commands:
            times = wall_times(args, work, opts.repeat)
            heavy = heavy_imports(args, work)
            listed = (
                ", ".join(f"{k} {v:.2f}" for k, v in sorted(heavy.items(), key=lambda kv: -kv[1])) or "none"
            )
            print(
                f"autorl {' '.join(args):<37} {min(times):>7.2f} {statistics.median(times):>9.2f}  {listed}"
            )


if __name__ == "__main__":
    main()
