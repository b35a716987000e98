"""Population machinery alone: autorl's population loop (on worker processes, and on Ray actors) against
Ray Tune's PBT, on an instant target.

The target (``synthetic:curve``) trains in microseconds, so the wall time is what running a population
costs: scheduling, checkpoints and exploits. Same population, interval count and checkpoint-per-interval
for all; Ray Tune with ``reuse_actors=True`` and ``reset_config`` (the fast path, FIELD-NOTES) on a local
instance of ``--cpus`` CPUs, started and stopped by this script. Each figure is a slope: the time of
``3 * intervals`` minus that of ``intervals``, per extra member-interval, so start-up costs (worker
processes, actors, ray.init) cancel out.

    python benchmarks/pbt_overhead.py [--population 4] [--intervals 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from autorl.api import sweep
from autorl.targets.base import TrialContext
from autorl.targets.synthetic import CurveTarget

SPACE = {
    "x": {"type": "float", "low": -1.0, "high": 1.0},
    "lr": {"type": "float", "low": 1.0e-4, "high": 1.0, "log": True, "mutable": True},
}
INTERVAL = 100  # budget units per interval


def autorl_population(population: int, intervals: int, executor: str, workers: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        cfg = {
            "target": "synthetic:curve",
            "args": {"noise": 0.05},
            "space": SPACE,
            "budget": {"max": INTERVAL * intervals, "report_every": INTERVAL},
            "method": {"name": "pbt", "population": population},
            "workers": workers,
            "executor": executor,
            "out": str(Path(d) / "run"),
        }
        t0 = time.perf_counter()
        sweep(cfg, plots=False)
        return time.perf_counter() - t0


def ray_pbt(population: int, intervals: int) -> float:
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining

    class Curve(tune.Trainable):  # type: ignore[misc]
        def setup(self, config: dict[str, Any]) -> None:
            self.target = CurveTarget({**config, "noise": 0.05}, TrialContext(seed=0))

        def step(self) -> dict[str, float]:
            return self.target.train(INTERVAL)

        def save_checkpoint(self, checkpoint_dir: str) -> None:
            self.target.save(Path(checkpoint_dir))

        def load_checkpoint(self, checkpoint_dir: str) -> None:
            self.target.load(Path(checkpoint_dir))

        def reset_config(self, new_config: dict[str, Any]) -> bool:
            self.target.reconfigure(new_config)
            return True

    pbt = PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=1,
        hyperparam_mutations={"lr": tune.loguniform(1e-4, 1.0)},
        quantile_fraction=0.25,
        resample_probability=0.25,
    )
    with tempfile.TemporaryDirectory() as d:
        tuner = tune.Tuner(
            Curve,
            param_space={"x": tune.uniform(-1.0, 1.0), "lr": tune.loguniform(1e-4, 1.0)},
            tune_config=tune.TuneConfig(
                metric="score", mode="max", scheduler=pbt, num_samples=population, reuse_actors=True
            ),
            run_config=tune.RunConfig(
                storage_path=str(Path(d).resolve()),
                stop={"training_iteration": intervals},
                checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=1, num_to_keep=2),
                verbose=0,
            ),
        )
        t0 = time.perf_counter()
        tuner.fit()
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--population", type=int, default=4)
    ap.add_argument("--intervals", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cpus", type=int, default=2)
    a = ap.parse_args()
    extra = a.population * 2 * a.intervals  # member-intervals between the two runs

    def slope(fn: Any) -> float:
        return statistics.median(fn(3 * a.intervals) - fn(a.intervals) for _ in range(a.repeats)) / extra

    rows = {
        "autorl, processes": slope(lambda n: autorl_population(a.population, n, "embedded", 2)),
        "autorl, Ray actors": slope(lambda n: autorl_population(a.population, n, "ray", 2)),
    }
    import ray

    ray.init(num_cpus=a.cpus, address="local", include_dashboard=False, log_to_driver=False)
    try:
        rows["Ray Tune PBT"] = slope(lambda n: ray_pbt(a.population, n))
    finally:
        ray.shutdown()
    print(f"population {a.population}, {a.repeats} runs of {a.intervals} and {3 * a.intervals} intervals:")
    for name, per in rows.items():
        print(f"{name:>19}: {1000 * per:7.1f} ms per member-interval")


if __name__ == "__main__":
    main()
