"""One trial on an Optuna study: sample, run the target, record the outcome in one storage write."""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import optuna

from autorl.config import Sweep
from autorl.errors import TrialPruned
from autorl.space import suggest
from autorl.targets import TARGETS, TrialContext, run_target

ATTR = "autorl"  # the user attribute holding a trial's config, metrics, seeds and error


class TrialFailed(Exception):
    """The target raised or diverged; the trial is recorded as FAIL and the sweep goes on."""


def trial_seeds(sweep: Sweep, number: int) -> list[int]:
    """Seeds of trial ``number``: distinct across trials, reproducible from the sweep's seed."""
    k = sweep.config.seeds_per_trial
    start = sweep.config.seed * 1_000_003 + number * k
    return list(range(start, start + k))


@dataclass
class Objective:
    """The callable handed to ``study.optimize``; it owns no state beyond the loaded target."""

    sweep: Sweep
    target: Any = field(init=False)
    args: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        from autorl.methods import build_plan

        self.target = TARGETS.get(self.sweep.config.target)
        self.args = {**self.sweep.config.args, **build_plan(self.sweep).args}

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        sweep, cfg = self.sweep, self.sweep.config
        params = suggest(sweep.space, trial)
        seeds = trial_seeds(sweep, trial.number)
        record: dict[str, Any] = {"config": sweep.space.record(params), "seeds": seeds}
        single = len(sweep.directions) == 1

        def should_prune(value: float, step: int) -> bool:
            trial.report(value, step)
            # A trial that has spent its whole budget is finished, not stopped early.
            return step < ctx.budget and trial.should_prune()

        ctx = TrialContext(
            seed=seeds[0],
            budget=int(trial.user_attrs.get("budget", cfg.budget.max)),
            report_every=cfg.budget.interval,
            number=trial.number,
            checkpoint_dir=sweep.out / "checkpoints" / f"trial-{trial.number}",
            metric=sweep.metrics[0],
            should_prune=should_prune if single else None,
        )
        start = time.perf_counter()
        try:
            result = run_target(
                self.target,
                {**self.args, **params},
                ctx,
                select=sweep.value_spec.select,
                k=sweep.value_spec.k,
                maximize=sweep.directions[0] == "maximize",
                seeds=seeds,
                aggregate=cfg.aggregate,
            )
            values = [result.metrics[m] for m in sweep.metrics]
            bad = [m for m, v in zip(sweep.metrics, values, strict=True) if not math.isfinite(v)]
            if bad:
                raise TrialFailed(f"{', '.join(bad)} is not finite (diverged)")
        except TrialPruned as exc:
            step = ctx.curve[-1][0] if ctx.curve else 0
            record["metrics"] = {"budget": step * len(seeds), "wall_s": time.perf_counter() - start}
            trial.set_user_attr(ATTR, record)
            raise optuna.TrialPruned(str(exc)) from None
        except KeyboardInterrupt:
            record["interrupted"] = True
            trial.set_user_attr(ATTR, record)
            raise
        except Exception as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
            record["traceback"] = traceback.format_exc(limit=-8)
            record["metrics"] = {"wall_s": time.perf_counter() - start}
            trial.set_user_attr(ATTR, record)
            raise TrialFailed(record["error"]) from exc
        record["metrics"] = result.metrics
        if result.per_seed:
            record["per_seed"] = result.per_seed
        trial.set_user_attr(ATTR, record)
        return values[0] if single else values
