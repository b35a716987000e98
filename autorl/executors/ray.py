"""The Ray Tune executor: the same sweep on Ray, locally or on a cluster (``ray_address``).

Sampling stays with the method's Optuna sampler (through Ray's OptunaSearch, define-by-run, so
conditions hold); multi-fidelity methods map to Ray's schedulers (ASHA, HyperBand). Every finished
Ray trial is written into the sweep's Optuna storage as it ends, so ``trials.csv``, ``best.yaml``,
``autorl show`` and optuna-dashboard work exactly as for the embedded executor.

Ray costs about 1 s per trial here (process start); for many short trials the embedded executor is
faster, and ``reuse_actors`` is on to keep the cost down.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
import traceback
from typing import Any

import optuna
from optuna.trial import TrialState

from autorl.config import Sweep, parse_sweep
from autorl.errors import ConfigError, TrialPruned
from autorl.executors.objective import ATTR, trial_seeds
from autorl.executors.storage import check_resumable, open_study
from autorl.methods import build_plan
from autorl.space import suggest
from autorl.space.optuna import to_distribution
from autorl.targets import TARGETS, TrialContext, run_target

FINAL = "autorl_final"  # key set on a trial's last report
ERROR = "autorl_error"


@functools.lru_cache(maxsize=4)
def _sweep_from(data_json: str, source: str, out: str) -> Sweep:
    return parse_sweep(json.loads(data_json), source, out)


def _trainable(config: dict[str, Any], data_json: str, source: str, out: str) -> None:
    """Runs on a Ray worker: one trial, reporting each interval and a final record."""
    from ray import tune

    sweep = _sweep_from(data_json, source, out)
    cfg = sweep.config
    params = {k: config[k] for k in sweep.space if k in config}
    number = int(config.get("__number", 0))
    seeds = trial_seeds(sweep, number)

    def report(value: float, step: int) -> bool:
        # The last interval is left to the final report, so a scheduler that stops trials at max_t
        # cannot cut off the record of a finished trial.
        if step < cfg.budget.max:
            tune.report({sweep.metrics[0]: value, "budget": step})
        return False  # Ray's scheduler stops the trial itself

    ctx = TrialContext(
        seed=seeds[0],
        budget=cfg.budget.max,
        report_every=cfg.budget.interval,
        number=number,
        metric=sweep.metrics[0],
        should_prune=report,
    )
    start = time.perf_counter()
    record: dict[str, Any] = {"config": sweep.space.record(params), "seeds": seeds}
    try:
        result = run_target(
            TARGETS.get(cfg.target),
            {**cfg.args, **params},
            ctx,
            select=sweep.value_spec.select,
            k=sweep.value_spec.k,
            maximize=sweep.directions[0] == "maximize",
            seeds=seeds,
            aggregate=cfg.aggregate,
        )
        values = [result.metrics[m] for m in sweep.metrics]
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{sweep.metrics} not finite (diverged): {values}")
    except TrialPruned:
        return
    except Exception as exc:
        record.update(
            error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(limit=-8),
            metrics={"wall_s": time.perf_counter() - start},
        )
        tune.report({FINAL: True, ERROR: json.dumps(record)})
        return
    record["metrics"] = result.metrics
    if result.per_seed:
        record["per_seed"] = result.per_seed
    tune.report(
        {**{m: float(v) for m, v in result.metrics.items()}, FINAL: True, "record": json.dumps(record)}
    )


def _recorder(sweep: Sweep, study: optuna.Study, progress: Any) -> Any:
    from ray.tune import Callback

    class Recorder(Callback):
        """Writes each Ray trial into the Optuna study the moment it ends."""

        def __init__(self) -> None:
            self.curves: dict[str, dict[int, float]] = {}

        def on_trial_result(
            self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
        ) -> None:
            if not result.get(FINAL) and sweep.metrics[0] in result:
                self.curves.setdefault(trial.trial_id, {})[int(result["budget"])] = float(
                    result[sweep.metrics[0]]
                )

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._add(trial, trial.last_result or {})

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._add(
                trial, {FINAL: True, ERROR: json.dumps({"error": f"Ray trial error: {trial.error_file}"})}
            )

        def _add(self, trial: Any, last: dict[str, Any]) -> None:
            curve = self.curves.pop(trial.trial_id, {})
            params = {
                p.search_name: _search_value(p, trial.config[p.name])
                for p in sweep.space.values()
                if p.name in trial.config and p.type.value != "fixed"
            }
            dists = {
                p.search_name: d
                for p in sweep.space.values()
                if p.search_name in params and (d := to_distribution(p)) is not None
            }
            if last.get(FINAL) and ERROR not in last:
                record, state = json.loads(last["record"]), TrialState.COMPLETE
                values = [record["metrics"][m] for m in sweep.metrics]
            elif last.get(FINAL):
                record, state, values = json.loads(last[ERROR]), TrialState.FAIL, None
            else:  # stopped by the scheduler
                step = max(curve) if curve else 0
                record = {
                    "config": sweep.space.record(
                        {k: trial.config[k] for k in sweep.space if k in trial.config}
                    ),
                    "metrics": {"budget": step},
                }
                state, values = TrialState.PRUNED, None
            record["ray_trial_id"] = trial.trial_id
            study.add_trial(
                optuna.trial.create_trial(
                    params=params,
                    distributions=dists,
                    values=values,
                    state=state,
                    user_attrs={ATTR: record},
                    intermediate_values=curve,
                )
            )
            if progress:
                progress(study.get_trials(deepcopy=False))

    return Recorder()


class _DefineByRun:
    """Ray's OptunaSearch space: samples with our conditions; returns what Optuna's params lack.

    Transformed and fixed parameters come back on their own scale, and each trial gets a number that
    fixes its seeds. A class (not a closure) so that Ray can checkpoint the searcher.
    """

    def __init__(self, space: Any, first_number: int) -> None:
        self.space = space
        self.next_number = first_number

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        values = suggest(self.space, trial)
        extra = {
            k: v
            for k, v in values.items()
            if self.space[k].transform is not None or self.space[k].type.value == "fixed"
        }
        self.next_number += 1
        return {**extra, "__number": self.next_number - 1}


def _search_value(p: Any, value: Any) -> Any:
    return p.transform.to_search(value) if p.transform is not None else value


def _scheduler(sweep: Sweep) -> Any:
    from ray.tune.schedulers import ASHAScheduler, HyperBandScheduler

    b, opts = sweep.config.budget, sweep.method_options
    eta = opts.get("reduction_factor", 3)
    if sweep.method == "asha":
        return ASHAScheduler(time_attr="budget", max_t=b.max, grace_period=b.min or 1, reduction_factor=eta)
    if sweep.method in ("hyperband", "bohb"):
        return HyperBandScheduler(time_attr="budget", max_t=b.max, reduction_factor=eta)
    return None


def _init_ray(sweep: Sweep) -> bool:
    """Connect to ``ray_address`` or start a local Ray; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if sweep.config.ray_address:
        ray.init(address=sweep.config.ray_address, log_to_driver=False)
    else:
        # "local": a fresh instance, never a cluster some earlier process left registered in /tmp/ray.
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    return True


def run_ray(sweep: Sweep, resume: bool = False, progress: Any = None) -> optuna.Study:
    """Run the sweep with Ray Tune; trials land in the sweep's Optuna storage. Returns the study."""
    if len(sweep.directions) > 1:
        raise ConfigError(
            "the ray executor runs single-objective sweeps; use the embedded executor",
            "executor",
            sweep.source,
        )
    import ray
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    study = open_study(sweep)
    check_resumable(study, sweep, resume)
    plan = build_plan(sweep)
    searcher = OptunaSearch(
        space=_DefineByRun(sweep.space, len(study.trials)),
        metric=sweep.metrics[0],
        mode=sweep.directions[0][:3],
        sampler=plan.sampler,
    )
    data_json = json.dumps(sweep.resolved())
    trainable = tune.with_parameters(_trainable, data_json=data_json, source=sweep.source, out=str(sweep.out))
    trainable = tune.with_resources(trainable, {"cpu": 1})
    path = (sweep.out / "ray").resolve()
    started = _init_ray(sweep)
    try:
        run_config = tune.RunConfig(
            name="tune", storage_path=str(path), verbose=0, callbacks=[_recorder(sweep, study, progress)]
        )
        if resume and tune.Tuner.can_restore(str(path / "tune")):
            tuner = tune.Tuner.restore(str(path / "tune"), trainable, resume_errored=True)
        else:
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=searcher,
                    scheduler=_scheduler(sweep),
                    metric=sweep.metrics[0],
                    mode=sweep.directions[0][:3],
                    num_samples=sweep.config.trials,
                    max_concurrent_trials=sweep.config.workers,
                    reuse_actors=True,
                ),
                run_config=run_config,
            )
        tuner.fit()
    finally:
        if started:
            ray.shutdown()
    return study
