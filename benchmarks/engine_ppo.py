"""Throughput of the batched PPO engine on CartPole-v1: training env steps per second, evaluation included.

Each figure trains a fresh population (32 envs x 32 steps per member per rollout, 4 minibatches,
learning rate 1e-3) in rounds of ``train(4000)`` (4 rollouts, 4,096 env steps per member) followed by
``evaluate()`` (10 deterministic episodes per member), and prints the members' training env steps
per second of wall time, evaluation included, with the share of the time spent evaluating. Evaluation
costs more as the agents improve (episodes last up to 500 steps), so the figures are those of the first
rounds of a run. Rows: the 8-member population at 4 epochs and at 20 (rl-zoo3's CartPole setting), on
one and two threads, and population sizes 1 to 256. Run: ``python benchmarks/engine_ppo.py`` (about
three minutes; ``--help`` for the sizes, epochs, threads and timing).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch

from autorl.engine.ppo import EngineConfig, Population


@dataclass(frozen=True)
class Figure:
    """One measurement: members' training env steps per second and the share spent in evaluate()."""

    steps_per_second: float
    eval_share: float
    rounds: int


def measure(members: int, epochs: int, *, threads: int, seconds: float, evaluate: bool = True) -> Figure:
    """Train ``members`` CartPole agents in rounds of 4 rollouts (+ evaluation) for at least ``seconds``."""
    torch.set_num_threads(threads)
    config = EngineConfig("CartPole-v1", n_envs=32, n_steps=32, n_epochs=epochs, n_minibatches=4)
    pop = Population(config, [{"learning_rate": 1e-3}] * members, seeds=range(members))
    pop.train(1)  # warm-up: the first rollout allocates
    pop.evaluate()
    train_time = eval_time = 0.0
    rounds = 0
    start_steps = int(pop.steps.sum())
    while train_time + eval_time < seconds or rounds < 2:
        t0 = time.perf_counter()
        pop.train(4000)
        t1 = time.perf_counter()
        if evaluate:
            pop.evaluate()
        t2 = time.perf_counter()
        train_time, eval_time, rounds = train_time + t1 - t0, eval_time + t2 - t1, rounds + 1
    steps = int(pop.steps.sum()) - start_steps
    total = train_time + eval_time
    return Figure(steps / total, eval_time / total, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 64, 256], help="population sizes")
    parser.add_argument("--epochs", type=int, nargs="+", default=[4, 20], help="epochs for the 8-member rows")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch intra-op threads")
    parser.add_argument("--seconds", type=float, default=8.0, help="minimum timed seconds per figure")
    args = parser.parse_args()

    print(
        f"{'members':>7} {'epochs':>6} {'threads':>7} {'eval':>5} {'steps/s':>10} {'eval %':>6} {'rounds':>6}"
    )

    def row(members: int, epochs: int, threads: int, evaluate: bool = True) -> None:
        fig = measure(members, epochs, threads=threads, seconds=args.seconds, evaluate=evaluate)
        print(
            f"{members:>7} {epochs:>6} {threads:>7} {'yes' if evaluate else 'no':>5} "
            f"{fig.steps_per_second:>10,.0f} {100 * fig.eval_share:>6.1f} {fig.rounds:>6}",
            flush=True,
        )

    for epochs in args.epochs:
        for threads in args.threads:
            row(8, epochs, threads)
    for threads in args.threads:
        row(8, 4, threads, evaluate=False)
    for members in args.sizes:
        if members != 8:
            for threads in args.threads:
                row(members, 4, threads)


if __name__ == "__main__":
    main()
