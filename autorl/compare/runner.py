"""Running the cells: one at a time or in a pool of processes that stop with the comparison, then
the report."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd

from autorl.compare.cells import _read_cell, run_cell
from autorl.compare.report import write_reports
from autorl.compare.suite import SUITE_FILE, Cell, Suite
from autorl.results import DirectoryLock
from autorl.results.rundir import check_directory
from autorl.yamlio import dump_yaml


@dataclass
class SuiteStatus:
    """A running comparison: cells finished (``cached`` of them read back), and an estimate of the rest
    from the wall time of the cells this run finished."""

    total: int
    done: int = 0
    cached: int = 0
    line: str = ""
    started: float = field(default_factory=time.monotonic)
    ran_s: list[float] = field(default_factory=list)
    jobs: int = 1

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def eta(self) -> float | None:
        """Seconds left, once a cell has run here (None before)."""
        if not self.ran_s:
            return None
        return (self.total - self.done) * (sum(self.ran_s) / len(self.ran_s)) / self.jobs


SuiteProgress = Callable[[SuiteStatus], None]


def run_suite(
    suite: Suite, jobs: int | None = None, progress: SuiteProgress | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """Run every cell (``jobs`` at a time), then write runs.csv, the report and its plots.

    The suite's directory is owned by this call (a second ``compare`` on it is refused) and must be
    empty or hold this comparison (``suite.yaml``). ``progress`` is told after every cell."""
    from autorl.api import sigterm_as_interrupt

    check_directory(suite.out, SUITE_FILE, "comparison")
    with DirectoryLock(suite.out, "comparison"), sigterm_as_interrupt():
        dump_yaml(suite.config.model_dump(mode="json"), suite.out / SUITE_FILE)
        return write_reports(suite, _run_all(suite, jobs or suite.config.jobs, progress))


def _run_all(suite: Suite, jobs: int, progress: SuiteProgress | None) -> list[dict[str, Any]]:
    """Every cell's payload, in suite order; finished cells are read back first."""
    n_test = suite.config.test_seeds
    status = SuiteStatus(total=len(suite.cells), jobs=jobs)
    payloads: dict[int, dict[str, Any]] = {}

    def tell(i: int, payload: dict[str, Any], cached: bool) -> None:
        payloads[i] = payload
        status.done += 1
        cell, row = suite.cells[i], payload["row"]
        if cached:
            status.cached += 1
        else:
            status.ran_s.append(float(row.get("wall_s") or 0.0))
        score = row.get("test_value")
        shown = f"test {row['task']} {score:.6g}" if isinstance(score, float) else "no incumbent"
        status.line = f"{cell.task} {cell.method} seed {cell.seed}: {shown}" + (" (cached)" if cached else "")
        if progress:
            progress(status)

    todo = []
    for i, c in enumerate(suite.cells):
        if (cached := _read_cell(c.sweep.out / "cell.json", c.test_seeds or None)) is not None:
            tell(i, cached, True)
        else:
            todo.append(i)
    if jobs == 1:
        for i in todo:
            tell(i, run_cell(suite.cells[i], n_test), False)
    elif todo:
        pool = ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_cell_process)
        try:
            futures = {pool.submit(_pooled_cell, suite.cells[i], n_test): i for i in todo}
            for fut in as_completed(futures):
                tell(futures[fut], fut.result(), False)
        except BaseException:
            # an error, Ctrl-C or SIGTERM: stop the cells now (each one's sweep records its running trials
            # as interrupted) rather than wait for them; a kill -9 of this process reaches them too
            for child in multiprocessing.active_children():
                child.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
    return [payloads[i] for i in range(len(suite.cells))]


def _cell_process() -> None:
    """A cell process gets SIGTERM (handled as an interrupt by its sweep) when the comparison dies."""
    import signal

    from autorl.executors.workers import die_with_parent

    die_with_parent(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the comparison's to handle


def _pooled_cell(cell: Cell, test_seeds: int) -> dict[str, Any]:
    """:func:`run_cell` in a pool's process. A SIGTERM from the comparison stops the cell's sweep (it
    records its running trials as interrupted); then the process leaves, where the pool would hand it
    the next queued cell."""
    try:
        return run_cell(cell, test_seeds)
    except KeyboardInterrupt:
        os._exit(130)
