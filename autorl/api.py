"""The Python entry points: ``autorl.sweep(...)`` and friends, what the CLI calls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial

from autorl.config import Sweep, load_sweep, parse_sweep
from autorl.results import export, write_run_files


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
        done = self.trials[self.trials["state"] == "COMPLETE"]
        if done.empty:
            return None
        return float(done[col].max() if self.sweep.directions[0] == "maximize" else done[col].min())


def as_sweep(
    config: str | Path | dict[str, Any] | Sweep, overrides: list[str] | None = None, out: str | None = None
) -> Sweep:
    """A validated Sweep from a file path, a config mapping or a Sweep."""
    if isinstance(config, Sweep):
        return config
    if isinstance(config, dict):
        from autorl.config import apply_overrides

        return parse_sweep(apply_overrides(config, overrides or [], "<config>"), "<config>", out)
    return load_sweep(config, overrides, out)


def _runner(sw: Sweep) -> Callable[..., optuna.Study]:
    """The method's own runner (population methods), else the configured executor."""
    from autorl.methods import method_info
    from autorl.registry import load_reference

    info = method_info(sw.method)
    if info.runner:
        return load_reference(info.runner)  # type: ignore[no-any-return]
    if sw.config.executor == "ray":
        from autorl.executors.ray import run_ray

        return run_ray
    from autorl.executors import run_embedded

    return run_embedded


def sweep(
    config: str | Path | dict[str, Any] | Sweep,
    *,
    overrides: list[str] | None = None,
    out: str | None = None,
    resume: bool = False,
    progress: Callable[[list[FrozenTrial]], None] | None = None,
    plots: bool = True,
) -> SweepResult:
    """Run a sweep described by a YAML file or a mapping, and export its results.

    Interrupting it (Ctrl-C) still writes the results so far; ``resume=True`` continues a sweep whose
    output directory already holds trials.
    """
    sw = as_sweep(config, overrides, out)
    write_run_files(sw)
    runner = _runner(sw)
    try:
        study = runner(sw, resume=resume, progress=progress)
    except KeyboardInterrupt:
        from autorl.executors import open_study

        export(open_study(sw), sw, plots=plots)
        raise
    return SweepResult(sw, study, export(study, sw, plots=plots))
