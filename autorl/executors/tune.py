"""Ray Tune, both ways (docs/tune.md).

- :func:`tune_target`: any autorl target, with its sweep's arguments and search space, as a Tune function
  trainable and ``param_space`` (the space's Ray conversion), for a user's own ``tune.Tuner`` with Tune's
  schedulers (ASHA, PBT, PB2) and searchers (OptunaSearch). A Trainable target reports every
  ``budget.report_every`` units with a checkpoint, so Tune's PBT can exploit it.
- :func:`run_tune`: ``executor: tune``, an autorl sweep of a static or multi-fidelity method through
  ``tune.Tuner``: Tune's OptunaSearch with the method's own sampler on the sweep's study, the method's
  pruner deciding through a Tune scheduler, and each trial written as the other executors write it, so
  the run directory (trials.csv, curves, best.yaml, plots) is the same. Resume is Tune's restore.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cloudpickle
import optuna
from optuna.trial import TrialState
from ray import tune
from ray.tune.result import AUTO_RESULT_KEYS
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from autorl.config import Sweep
from autorl.errors import ConfigError, FailureKind, describe, failure_of
from autorl.executors.process import keep_freed_memory
from autorl.executors.sweep import Clock, Progress, committed_units
from autorl.executors.trial import SweepRef
from autorl.results.record import TrialRecord, consumed, counted, write_trial
from autorl.results.status import SweepStatus
from autorl.results.storage import open_study
from autorl.results.tracking import Tracker
from autorl.space import to_distributions
from autorl.space.ray import config_of, to_ray
from autorl.targets import TARGETS, TargetKind, TrialContext, target_kind
from autorl.targets.driver import run_target, train_agents
from autorl.targets.runner import select_value

_RECORDS: dict[str, _Records] = {}  # executor: tune's records in this process, by run directory
NUMBER = "autorl_trial"  # a config key executor: tune adds: the Optuna trial's number (seeds, records)
VALUE = "autorl_value"  # a result key: the trial's value so far, as the sweep's ``value`` selects it
STATE_FILE = "autorl.json"  # in a checkpoint: the budget units trained
ERROR, FAILURE, TRACEBACK = "autorl_error", "autorl_failure", "autorl_traceback"  # a failed trial's result
FINAL = "autorl_final"  # a result key: a function's final metrics, no point of its curve


@dataclass(frozen=True)
class TuneTarget:
    """What a ``tune.Tuner`` needs of an autorl sweep: the trainable, the search space as Tune domains,
    the metric and its mode, and ``budget`` as the time attribute schedulers should count."""

    trainable: Callable[[dict[str, Any]], None]
    param_space: dict[str, Any]
    metric: str
    mode: str
    time_attr: str = "budget"


def tune_target(sweep: Sweep) -> TuneTarget:
    """``sweep``'s target, arguments, seeds and budget as a Tune trainable, its space as ``param_space``."""
    if sweep.spec.population:
        raise ConfigError(
            f"method {sweep.method!r} is autorl's own population loop; a Tune trainable is for Tune's "
            "schedulers (use Tune's PBT or PB2 on it)",
            "method",
        )
    return TuneTarget(
        trainable=_Trainable(SweepRef.of(sweep)),
        param_space=to_ray(sweep.space),
        metric=sweep.metrics[0],
        mode="max" if sweep.maximize else "min",
    )


class _Trainable:
    """The Tune function trainable of a sweep (a plain picklable object, so Ray ships it to workers)."""

    def __init__(self, ref: SweepRef) -> None:
        self.ref = ref
        self.__name__ = "autorl"  # Tune names trials after the trainable

    def __call__(self, config: dict[str, Any]) -> None:
        import torch

        torch.set_num_threads(1)  # one thread per trial process: threads fighting over cores are slower
        keep_freed_memory()
        sweep = self.ref.load()
        number = config.get(NUMBER)
        if number is None:  # a user's Tuner: trial ids end in the trial's index
            number = int(tune.get_context().get_trial_id().rsplit("_", 1)[-1] or 0)
        params = config_of(sweep.space, {k: v for k, v in config.items() if k != NUMBER})
        seeds = sweep.trial_seeds(int(number))
        target = TARGETS.get(sweep.config.target)
        full = {**sweep.trial_args(), **params}
        try:
            if target_kind(target) is TargetKind.TRAINABLE:
                # a user's Tuner may exploit at any report (Tune's PBT): a checkpoint each; executor:
                # tune needs them only to resume, so at most every checkpoint_every seconds
                every = sweep.config.checkpoint_every if NUMBER in config else None
                _train(sweep, target, full, seeds, int(number), every)
            else:
                _call(sweep, target, full, seeds, int(number))
        except _Stop:
            sys.exit(0)  # Tune ends a stopped trial's thread this way: it must reach Tune
        except (Exception, SystemExit) as exc:  # the target's own failure, sys.exit() included
            if NUMBER not in config:
                raise  # a user's Tuner: Tune's own error handling
            # executor: tune records the failure as the other executors do; the sweep goes on
            tune.report({sweep.metrics[0]: math.nan, ERROR: describe(exc), FAILURE: failure_of(exc).value,
                         TRACEBACK: traceback.format_exc(limit=-8)})  # fmt: skip


class _Stop(BaseException):
    """Tune stopped the trial (its ``sys.exit(0)`` from inside ``tune.report``): not the target's failure."""


def _report(result: dict[str, Any], **kwargs: Any) -> None:
    try:
        tune.report(result, **kwargs)
    except SystemExit:
        raise _Stop from None


def _train(
    sweep: Sweep, cls: Any, config: dict[str, Any], seeds: list[int], number: int, every: float | None
) -> None:
    """A Trainable target through the one trial runner (:func:`~autorl.targets.driver.train_agents`),
    its reports with a checkpoint (each one, or at most ``every`` seconds); a trial Tune restores (a
    resume, or Tune's PBT copying a better trial) loads it, goes on from its units and curve, and
    takes its own hyperparameters."""
    cfg, metric = sweep.config, sweep.metrics[0]
    ctx = TrialContext(seed=seeds[0], budget=cfg.budget.steps, number=number, metric=metric,
                       report_every=cfg.budget.interval)  # fmt: skip
    agents = [cls(config, replace(ctx, seed=s, curve=[])) for s in seeds]
    used = 0
    given = tune.get_checkpoint()
    if given is not None:
        with given.as_directory() as where:
            saved = json.loads((Path(where) / STATE_FILE).read_text())
            used, ctx.curve = int(saved["steps"]), [(int(s), float(v)) for s, v in saved["curve"]]
            for i, agent in enumerate(agents):
                agent.load(Path(where) / f"seed{i}")
        if sweep.info.reconfigurable:  # after the load, so the restore cannot undo this trial's values
            for agent in agents:
                agent.reconfigure(config)

    saved_at = time.monotonic()

    def report(value: float, step: int) -> bool:
        nonlocal saved_at
        history = [v for _, v in ctx.curve]
        chosen = select_value(history, sweep.value_spec.select, sweep.value_spec.k, sweep.maximize)
        result = {**ctx.metrics, "budget": step * len(seeds), VALUE: chosen}
        if every is not None and time.monotonic() - saved_at < every:
            _report(result)
            return False
        saved_at = time.monotonic()
        with tempfile.TemporaryDirectory() as where:
            for i, agent in enumerate(agents):
                agent.save(Path(where) / f"seed{i}")
            (Path(where) / STATE_FILE).write_text(json.dumps({"steps": step, "curve": ctx.curve}))
            _report(result, checkpoint=tune.Checkpoint.from_directory(where))
        return False  # Tune's scheduler stops a trial by ending it, not by an answer

    ctx.should_prune = report
    train_agents(
        agents, ctx, sweep.value_spec.select, sweep.value_spec.k, sweep.maximize, cfg.aggregate, used
    )


def _call(sweep: Sweep, target: Any, config: dict[str, Any], seeds: list[int], number: int) -> None:
    """A function target: its intermediate reports go to Tune as they come, then its final metrics."""
    cfg, metric = sweep.config, sweep.metrics[0]

    def report(value: float, step: int) -> bool:
        _report({**ctx.metrics, "budget": step * len(seeds), VALUE: value})
        return False  # Tune's scheduler stops a trial by ending it, not by an answer

    ctx = TrialContext(seed=seeds[0], budget=cfg.budget.steps, number=number, metric=metric,
                       report_every=cfg.budget.interval, should_prune=report)  # fmt: skip
    result = run_target(target, config, ctx, select=sweep.value_spec.select, k=sweep.value_spec.k,
                        maximize=sweep.maximize, seeds=seeds, aggregate=cfg.aggregate)  # fmt: skip
    _report({**result.metrics, VALUE: result.metrics[metric], FINAL: 1})


# ------------------------------------------------------------------------------------------ executor: tune
def run_tune(
    sweep: Sweep,
    resume: bool = False,
    progress: Progress | None = None,
    tracker: Tracker | None = None,
) -> optuna.Study:
    """Run (or resume, through Tune's restore) ``sweep`` with ``tune.Tuner``; returns its study."""
    from autorl.executors.ray import init_ray
    from autorl.methods import build_plan

    cfg = sweep.config
    study = open_study(sweep)
    plan = build_plan(sweep.method, sweep.context(), sweep.method_options)
    started = init_ray(sweep)
    target = tune_target(sweep)
    out = str(sweep.out.resolve())
    _RECORDS[out] = records = _Records(sweep, study, tracker or Tracker([]), progress)
    search = _Search(
        space=to_distributions(sweep.space),
        metric=target.metric,
        mode=target.mode,
        sampler=plan.sampler,
        study_name=study.study_name,
        storage=study._storage,
        out=out,
        pruner=plan.pruner,
    )
    root = (sweep.out / "tune").resolve()
    trainable = tune.with_resources(target.trainable, {"cpu": 1})
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # verbose=0 stays silent: autorl shows progress
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")  # Ctrl-C stops the sweep, as elsewhere
    # keeping one checkpoint a trial makes Tune snapshot its experiment at each: measured no slower here
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    try:
        if resume and tune.Tuner.can_restore(str(root / "sweep")):
            tuner = tune.Tuner.restore(str(root / "sweep"), trainable, restart_errored=False)
        else:
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=search,
                    scheduler=_Pruning(search),
                    num_samples=-1,  # until the searcher has asked the sweep's trials (its count)
                    max_concurrent_trials=cfg.workers,
                    reuse_actors=True,  # one process per worker, as the other executors: no import per trial
                    time_budget_s=None if cfg.budget.time is None else max(1.0, records.clock.left),
                ),
                run_config=tune.RunConfig(
                    name="sweep",
                    storage_path=str(root),
                    verbose=0,
                    # a trial's last checkpoint is all a resume or Tune's PBT reads; without a limit
                    # every report's stayed on disk
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                ),
            )
        tuner.fit()
        _interrupt_stale(sweep, study)
    finally:
        records.clock.save(force=True)
        _RECORDS.pop(out, None)
        if started:
            import ray

            ray.shutdown()
    return study


def _own(result: dict[str, Any], keep_budget: bool) -> dict[str, float]:
    """The target's numeric metrics in a Tune result, not what Tune adds to every result (its clocks,
    counters, the config) nor autorl's own keys."""
    skip = {VALUE, FINAL, ERROR, FAILURE, TRACEBACK, NUMBER, *AUTO_RESULT_KEYS}
    if not keep_budget:
        skip.add("budget")
    return {
        k: float(v)
        for k, v in result.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in skip and "/" not in k
    }


def _interrupt_stale(sweep: Sweep, study: optuna.Study) -> None:
    """Trials the study still holds as running once Tune has finished: a kill came before Tune's
    snapshot knew them, so its restore did not run them again. Recorded as interrupted, as the other
    executors record them, and not counted."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        config = sweep.space.record(config_of(sweep.space, t.params))
        record = TrialRecord(config=config, seeds=sweep.trial_seeds(t.number)).fail(
            FailureKind.INTERRUPTED, "Interrupted: the sweep was stopped before Tune saved this trial"
        )
        write_trial(study, record, TrialState.FAIL, trial=optuna.Trial(study, t._trial_id))


class _Records:
    """Each Tune trial's end written into the study as every executor writes a trial (its record), before
    the searcher tells Optuna; its reports to the trackers; the progress display."""

    def __init__(
        self, sweep: Sweep, study: optuna.Study, tracker: Tracker, progress: Progress | None
    ) -> None:
        self.sweep, self.study, self.tracker, self.progress = sweep, study, tracker, progress
        self.errors: dict[str, str] = {}  # Tune's error of a trial, by trial id (the scheduler hears first)
        self.started: dict[str, float] = {}
        self.spent: dict[str, float] = {}  # units each running trial has reported (all seeds)
        self.clock = Clock(study, sweep.config.budget.time)  # the sweep's wall time, across resumes
        self.status = SweepStatus("trials", total=sweep.config.trials, unit=sweep.info.unit)

    def result(self, trial_id: str, number: int, params: dict[str, Any], result: dict[str, Any]) -> None:
        self.started.setdefault(trial_id, time.perf_counter())
        self.spent[trial_id] = float(result.get("budget", 0))
        metrics = _own(result, keep_budget=False)
        steps = int(result.get("budget", 0)) // self.sweep.config.seeds_per_trial
        self.tracker.step(f"trial-{number}", steps, metrics, params)

    def end(
        self, trial_id: str, ot_trial: optuna.Trial, result: dict[str, Any] | None, error: bool
    ) -> tuple[TrialRecord, TrialState, float | None]:
        sweep = self.sweep
        params = config_of(sweep.space, ot_trial.params)
        record = TrialRecord(config=sweep.space.record(params), seeds=sweep.trial_seeds(ot_trial.number))
        metrics = _own(result or {}, keep_budget=True)
        began = self.started.pop(trial_id, time.perf_counter())
        wall = (result or {}).get("time_total_s")  # Tune's clock of the trial, from its start
        metrics["wall_s"] = float(wall) if isinstance(wall, (int, float)) else time.perf_counter() - began
        spent = self.spent.pop(trial_id, 0.0)  # what its last report said, where its end says nothing
        if "budget" not in metrics and spent:
            metrics["budget"] = spent
        record.metrics = metrics
        got = (result or {}).get(VALUE)
        value = float(got) if got is not None else None
        state = TrialState.FAIL
        if error:  # Tune's own failure (the trial's actor died): what Tune said of it
            record.fail(
                FailureKind.DIED, self.errors.pop(trial_id, "WorkerDied: the trial's Tune actor failed")
            )
        elif result and ERROR in result:
            record.fail(FailureKind(result[FAILURE]), str(result[ERROR]))
            record.traceback = str(result.get(TRACEBACK) or "") or None
        elif value is not None and not math.isfinite(value):
            record.fail(FailureKind.DIVERGED, f"TrialDiverged: {sweep.metrics[0]} is not finite (diverged)")
        elif value is None or int(metrics.get("budget", 0)) < sweep.config.budget.steps * len(record.seeds):
            state = TrialState.PRUNED  # Tune's scheduler stopped it before its budget
        else:
            state = TrialState.COMPLETE
            record.metrics[sweep.metrics[0]] = value
        if state == TrialState.FAIL:  # a failed trial has no value, as on the other executors
            record.metrics = {k: v for k, v in record.metrics.items() if k in ("budget", "wall_s")}
        record.at_s = round(self.clock.elapsed, 3)
        self.clock.save()
        name = state.name.lower()
        self.tracker.end(f"trial-{ot_trial.number}", name, record.metrics, params)
        self.status.count(name)
        if state == TrialState.COMPLETE:
            self.status.offer(value, sweep.maximize)
        self.status.done += 1
        self.status.line = f"trial {ot_trial.number} {name}"
        if self.progress:
            self.progress(self.status)
        return record, state, value if state == TrialState.COMPLETE else None


class _Search(OptunaSearch):  # type: ignore[misc]
    """Tune's OptunaSearch on the sweep's own study, reporting at budget units (not Tune's iterations),
    carrying the trial's number to the trainable and writing autorl's record before it tells Optuna."""

    _ot_study: Any
    _storage: Any

    def __init__(self, *args: Any, out: str, pruner: Any, **kwargs: Any) -> None:
        self.out = out  # the run directory: its records (this process's) are found by it
        self.pruner = pruner  # the method's; set on the study once Tune's searcher has made it
        super().__init__(*args, **kwargs)

    @property
    def records(self) -> _Records:
        return _RECORDS[self.out]

    def _setup_study(self, mode: Any) -> None:
        super()._setup_study(mode)
        self._ot_study.pruner = self.pruner

    # Tune pickles its searcher with the experiment; the study is on disk and is opened again
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_ot_trials"] = {tid: t.number for tid, t in self._ot_trials.items()}
        state["_ot_study"] = state["_storage"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.out in _RECORDS:
            self._reopen()

    def _reopen(self) -> None:
        study = self.records.study
        self._storage, self._ot_study = study._storage, study
        study.pruner, study.sampler = self.pruner, self._sampler
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        # Tune's snapshot may lag the study: a trial the study has finished is not run again
        done = {tid for tid, n in self._ot_trials.items() if trials[n].state.is_finished()}
        self._completed_trials |= done
        self._ot_trials = {
            tid: optuna.Trial(study, trials[n]._trial_id)
            for tid, n in self._ot_trials.items()
            if tid not in done
        }

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            cloudpickle.dump(self.__getstate__(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__setstate__(cloudpickle.load(f))

    def suggest(self, trial_id: str) -> Any:  # a config, None (wait) or Searcher.FINISHED
        # The sweep's trial count is the study's, as on every executor: Tune's own count of its trials
        # differs after a restore (reruns, trials its snapshot missed)
        sweep = self.records.sweep
        live = [tid for tid in self._ot_trials if tid not in self._completed_trials]
        trials = self._ot_study.get_trials(deepcopy=False)
        if counted(trials) + len(live) >= sweep.config.trials:
            return str(Searcher.FINISHED)
        total = sweep.config.budget.total  # the same rule as the trial loop's, on what Tune reported
        spent = [self.records.spent.get(tid, 0.0) for tid in live]
        if total is not None and committed_units(sweep, consumed(trials), spent) >= total:
            return None if live else str(Searcher.FINISHED)  # a pruned trial may free room
        config = super().suggest(trial_id)
        if config is None or not isinstance(config, dict):
            return config
        return {**config, NUMBER: self._ot_trials[trial_id].number}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Nothing: the scheduler hears every result first (:meth:`take`); Tune calls this only for a
        result the scheduler let through."""

    def take(self, trial_id: str, result: dict[str, Any]) -> bool:
        """A trial's result: to the records and trackers, its value to the Optuna trial at its budget
        units; then whether the method's pruner stops it (decided on this very report). False for a
        trial the study does not run (after a resume: finished, or lost to it)."""
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return False
        trial = self._ot_trials[trial_id]
        params = config_of(self.records.sweep.space, trial.params)
        self.records.result(trial_id, trial.number, params, result)
        if VALUE in result and "budget" in result and not result.get(FINAL):
            steps = int(result["budget"]) // self.records.sweep.config.seeds_per_trial
            with warnings.catch_warnings():  # a trial Tune restarted reports its first steps again
                warnings.simplefilter("ignore", UserWarning)
                trial.report(float(result[self.records.sweep.metrics[0]]), steps)
        return True

    def should_prune(self, trial_id: str) -> bool:
        trial = self._ot_trials.get(trial_id)
        return trial is not None and trial.should_prune()

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        trial = self._ot_trials[trial_id]
        record, state, value = self.records.end(trial_id, trial, result, error)
        write_trial(self._ot_study, record, state, None if value is None else [value], trial=trial)
        self._completed_trials.add(trial_id)


class _Pruning(FIFOScheduler):  # type: ignore[misc]
    """A Tune scheduler that stops a trial when the method's pruner (Optuna's, on the reported budget
    units) says so: ASHA, Hyperband and the median rule decide as in the other executors."""

    def __init__(self, search: _Search) -> None:
        super().__init__()
        self.search = search

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        error = trial.get_error() if hasattr(trial, "get_error") else None
        lines = [line for line in str(error or "").strip().splitlines() if line.strip()]
        self.search.records.errors[trial.trial_id] = lines[-1] if lines else "TuneError: the trial failed"

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        if not self.search.take(trial.trial_id, result):
            return str(TrialScheduler.STOP)  # after a resume: finished in the study, or lost to it
        if VALUE in result and self.search.should_prune(trial.trial_id):
            return str(TrialScheduler.STOP)
        return str(TrialScheduler.CONTINUE)


__all__ = ["TuneTarget", "run_tune", "tune_target"]
