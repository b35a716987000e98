"""The Python entry points: ``autorl.api.sweep(...)`` and friends, what the CLI calls."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import pandas as pd

from autorl.config import Sweep, SweepConfig, apply_overrides, load_sweep, parse_sweep
from autorl.results import export, open_study, owned_run
from autorl.results.status import SweepStatus
from autorl.results.tracking import open_tracker, tracked_outputs

if TYPE_CHECKING:
    from autorl.executors.tune import TuneTarget


@dataclass
class SweepResult:
    """What a finished sweep hands back: its study, the trials table and where everything is."""

    sweep: Sweep
    study: optuna.Study
    trials: pd.DataFrame

    @property
    def out(self) -> Path:
        return self.sweep.out

    @property
    def best_value(self) -> float | None:
        col = "value" if "value" in self.trials else f"value_{self.sweep.metrics[0]}"
        done = self.trials[self.trials["state"] == "COMPLETE"] if len(self.trials) else self.trials
        if done.empty:
            return None
        return float(done[col].max() if self.sweep.maximize else done[col].min())


def as_sweep(
    config: str | Path | dict[str, Any] | Sweep,
    overrides: list[str] | None = None,
    out: str | None = None,
    validated: Callable[[SweepConfig], None] | None = None,
) -> Sweep:
    """A validated Sweep from a file path, a config mapping or a Sweep (``validated``: see
    :func:`autorl.config.parse_sweep`)."""
    if isinstance(config, Sweep):
        return config
    if isinstance(config, dict):
        return parse_sweep(apply_overrides(config, overrides or [], "<config>"), "<config>", out, validated)
    return load_sweep(config, overrides, out, validated)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While a sweep runs, SIGTERM (a scheduler's or ``kill``'s stop) is handled like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _progress_so_far(sw: Sweep) -> int:
    """Trials in the sweep's storage, plus one for a population's state: what a new run would mix with."""
    return len(open_study(sw).get_trials(deepcopy=False)) + int((sw.out / "population.json").is_file())


def tune_target(
    config: str | Path | dict[str, Any] | Sweep, *, overrides: list[str] | None = None
) -> TuneTarget:
    """A sweep's target, fixed arguments, seeds and budget as a Ray Tune trainable, with its search space
    as Tune's ``param_space`` (docs/tune.md): hand it to your own ``tune.Tuner``."""
    from autorl.executors.tune import tune_target as build

    return build(as_sweep(config, overrides))


def sweep(
    config: str | Path | dict[str, Any] | Sweep,
    *,
    overrides: list[str] | None = None,
    out: str | None = None,
    resume: bool = False,
    progress: Callable[[SweepStatus], None] | None = None,
    plots: bool = True,
) -> SweepResult:
    """Run a sweep described by a YAML file or a mapping, and export its results.

    ``progress`` is called with a :class:`~autorl.results.status.SweepStatus` after each trial (or
    population interval) and report. The output directory is owned by this call: a second process on
    it is refused. Interrupting it
    (Ctrl-C, SIGTERM) still writes the results so far; ``resume=True`` continues a sweep whose output
    directory already holds trials (a new sweep into such a directory is refused).
    """
    from autorl.executors import run
    from autorl.executors.process import discard_spares, warm_start

    try:  # the first worker starts, and imports the target, while the config is resolved
        sw = as_sweep(config, overrides, out, validated=warm_start)
    except BaseException:
        discard_spares()
        raise
    with owned_run(sw, resume, lambda: _progress_so_far(sw)), sigterm_as_interrupt():
        tracker = open_tracker(sw)
        try:
            try:
                study = run(sw, resume=resume, progress=progress, plots=plots, tracker=tracker)
            except KeyboardInterrupt:
                export(open_study(sw), sw, plots=plots)
                raise
            result = SweepResult(sw, study, export(study, sw, plots=plots))
        finally:  # the runs end with the sweep's outputs, as they stand
            tracker.close(*tracked_outputs(sw.out))
        return result
