"""Population machinery alone: Ray Tune's PBT vs autorl's embedded runner on an instant target.

The target (``synthetic:curve``) trains in microseconds, so the wall time is what running a population
costs: scheduling, checkpoints and exploits. Same population, interval count and checkpoint-per-interval
for both; Ray with ``reuse_actors=True`` and ``reset_config`` (the fast path, FIELD-NOTES) on a local
instance of ``--cpus`` CPUs, started and stopped by this script.

    python benchmarks/pbt_overhead.py [--population 4] [--intervals 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from autorl.methods.pbt import PBTOptions, run_population
from autorl.space.base import SearchSpace
from autorl.targets.base import TrialContext
from autorl.targets.synthetic import CurveTarget

SPACE = {
    "x": {"type": "float", "low": -1.0, "high": 1.0},
    "lr": {"type": "float", "low": 1.0e-4, "high": 1.0, "log": True, "mutable": True},
}
INTERVAL = 100  # budget units per interval


def embedded(population: int, intervals: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        run_population(
            CurveTarget,
            SearchSpace.from_dict(SPACE),
            {"noise": 0.05},
            Path(d),
            budget=INTERVAL * intervals,
            interval=INTERVAL,
            metric="score",
            seed=0,
            opts=PBTOptions(population=population),
        )
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
    steps = a.population * a.intervals
    emb = [embedded(a.population, a.intervals) for _ in range(a.repeats)]
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=a.cpus, address="local", include_dashboard=False, log_to_driver=False)
    start = time.perf_counter() - t0
    try:
        rt = [ray_pbt(a.population, a.intervals) for _ in range(a.repeats)]
    finally:
        ray.shutdown()
    print(f"population {a.population}, {a.intervals} intervals ({steps} member-intervals), {a.repeats} runs:")
    for name, xs in (("autorl embedded", emb), ("Ray Tune PBT", rt)):
        m = statistics.median(xs)
        print(f"{name:>16}: {m:7.2f} s per run, {1000 * m / steps:7.1f} ms per member-interval")
    print(f"{'ray.init':>16}: {start:7.2f} s once per process (not counted above)")


if __name__ == "__main__":
    main()
