"""Per-trial orchestration overhead of autorl against plain Optuna and plain Ray Tune.

Each figure is a slope: (time of N2 trials - time of N1 trials) / (N2 - N1), so process and Ray
start-up costs cancel out and what remains is the cost each extra trial adds. The objective is
trivial (x**2), the sampler random for all. autorl runs as a user runs it: the `autorl sweep` command
(supervised worker processes, its default storage: an Optuna journal file), in a subprocess. Plain
Optuna runs `study.optimize` on a journal file (its fastest persistent storage) and on SQLite opened
the way autorl opens it (WAL journal, synchronous=NORMAL). The last rows run a CPU-bound target
(about 0.1-0.3 s per trial) with 1 and 2 workers and compare completed trials per second.

    python benchmarks/overhead.py            # about 5 minutes on 2 cores
    python benchmarks/overhead.py --quick    # fewer trials, no Ray
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from autorl.results.storage import make_storage
from tests.toy_targets import busy

TOY = Path(__file__).resolve().parent.parent / "tests" / "toy_targets.py"
optuna.logging.set_verbosity(optuna.logging.WARNING)


def trivial(config):
    return config["x"] ** 2


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def plain_optuna(n: int, tmp: Path, storage: str) -> float:
    def objective(trial):
        return trial.suggest_float("x", -1, 1) ** 2

    def run():
        url = (
            f"journal:{tmp / f'plain{n}.log'}"
            if storage == "journal"
            else f"sqlite:///{tmp / f'plain{n}.db'}"
        )
        study = optuna.create_study(storage=make_storage(url), sampler=optuna.samplers.RandomSampler(0))
        study.optimize(objective, n_trials=n)

    return _timed(run)


def autorl_cli(n: int, tmp: Path, workers: int, storage: str | None = None) -> float:
    """`autorl sweep` in a subprocess, as a user runs it (its start-up cancels out in the slope)."""
    import subprocess

    import yaml

    out = tmp / f"cli-{workers}-{storage or 'default'}-{n}"
    cfg = {
        "target": f"{Path(__file__).resolve()}:trivial",
        "space": {"x": {"type": "float", "low": -1.0, "high": 1.0}},
        "direction": "minimize",
        "method": "random",
        "trials": n,
        "workers": workers,
        "out": str(out),
        **({"storage": f"sqlite:///{out}.db"} if storage == "sqlite" else {}),
    }
    path = tmp / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "autorl.cli", "sweep", str(path), "--quiet", "--no-plots"]
    return _timed(lambda: subprocess.run(cmd, check=True, capture_output=True))


def autorl_sweep(
    n: int,
    tmp: Path,
    workers: int,
    executor: str = "embedded",
    target: str = "trivial",
    extra: dict | None = None,
) -> float:
    from autorl.api import sweep

    cfg = {
        "target": f"{Path(__file__).resolve()}:{target}" if target == "trivial" else f"{TOY}:{target}",
        "space": {"x": {"type": "float", "low": -1.0, "high": 1.0}, **(extra or {})},
        "direction": "minimize",
        "method": "random",
        "trials": n,
        "workers": workers,
        "executor": executor,
        "out": str(tmp / f"{executor}-{target}-{workers}-{n}"),
    }
    return _timed(lambda: sweep(cfg, plots=False))


def plain_ray(n: int, tmp: Path) -> float:
    import ray
    from ray import tune

    def trainable(config):
        tune.report({"loss": config["x"] ** 2})

    def run():
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        try:
            tuner = tune.Tuner(
                trainable,
                param_space={"x": tune.uniform(-1, 1)},
                tune_config=tune.TuneConfig(num_samples=n, metric="loss", mode="min", reuse_actors=True),
                run_config=tune.RunConfig(storage_path=str(tmp / f"ray{n}"), verbose=0),
            )
            tuner.fit()
        finally:
            ray.shutdown()

    return _timed(run)


def slope(fn, n1: int, n2: int) -> tuple[float, float]:
    t1, t2 = fn(n1), fn(n2)
    return (t2 - t1) / (n2 - n1), t2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n1, n2 = (20, 120) if args.quick else (20, 220)
    r1, r2 = 8, 24
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print(
            f"\n{'executor':40s} {'workers':>7s} {'s/trial':>9s} {'over plain Optuna, journal':>27s}",
            flush=True,
        )
        plain, _ = slope(lambda n: plain_optuna(n, tmp, "journal"), n1, n2)

        def row(name: str, w: int, s: float) -> None:
            print(f"{name:40s} {w:7d} {s * 1000:7.1f}ms {(s - plain) * 1000:+25.1f}ms", flush=True)

        row("plain Optuna, journal file", 1, plain)
        row("plain Optuna, SQLite", 1, slope(lambda n: plain_optuna(n, tmp, "sqlite"), n1, n2)[0])
        for w in (1, 2):
            row(
                "autorl sweep (CLI), journal (default)",
                w,
                slope(lambda n, w=w: autorl_cli(n, tmp, w), n1, n2)[0],
            )
        row("autorl sweep (CLI), SQLite", 1, slope(lambda n: autorl_cli(n, tmp, 1, "sqlite"), n1, n2)[0])
        if not args.quick:
            row("plain Ray Tune (reuse_actors)", 2, slope(lambda n: plain_ray(n, tmp), r1, r2)[0])
            row("autorl on Ray", 2, slope(lambda n: autorl_sweep(n, tmp, 2, executor="ray"), r1, r2)[0])

        n = 12 if args.quick else 30
        busy_space = {"n": {"type": "fixed", "value": 3_000_000}}
        t_busy = _timed(lambda: busy({"x": 0.5, "n": 3_000_000}))
        rates, steady = {}, {}
        for w in (1, 2):
            t = autorl_sweep(n, tmp, w, target="busy", extra=busy_space)
            rates[w] = n / t
            study = optuna.load_study(
                study_name="sweep",
                storage=make_storage(f"journal:{tmp / f'embedded-busy-{w}-{n}' / 'study.log'}"),
            )
            first = min(tr.datetime_start for tr in study.trials)
            last = max(tr.datetime_complete for tr in study.trials)
            steady[w] = n / (last - first).total_seconds()
        print(f"\nCPU-bound trials ({t_busy:.2f} s each alone), {n} trials:")
        for w in (1, 2):
            print(
                f"  {w} worker(s): {steady[w]:.2f} trials/s between first start and last end "
                f"({rates[w]:.2f}/s counting start-up)"
            )
        print(
            f"  speed-up with 2 workers: {steady[2] / steady[1]:.2f}x steady, "
            f"{rates[2] / rates[1]:.2f}x with "
            "start-up (goal >= 1.8x)"
        )


if __name__ == "__main__":
    main()
