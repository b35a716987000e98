"""Compare methods: ``autorl compare SUITE.yaml`` runs methods x tasks x seeds under one budget.

Every (task, method, seed) cell is a sweep charged the task's budget: ``budget.total`` env steps (no
trial starts once the method's trials consumed it, and a trial that ends past it does not count, so a
single long run and thirty short trials are charged the same; a batch or a population is charged all
its members' steps), ``budget.time`` of wall clock, or both. A ``fixed`` method (a reference baseline)
trains its one configuration once, at ``budget.max``. Each cell's incumbent is then retrained on fresh
test seeds, never used in tuning (the best of many noisy trials is optimistically biased; Eimer et al.
2023): the difference is the cell's optimism gap. Scores go through :mod:`autorl.analysis` (IQM with
stratified bootstrap CIs, probability of improvement, performance profiles, anytime curves against
env steps and wall time).

Finished cells are cached (``cell.json``) and skipped; an unfinished one resumes.
"""

from autorl.compare.cells import run_cell
from autorl.compare.plan import CellPlan, plan_suite
from autorl.compare.report import publish
from autorl.compare.runner import SuiteProgress, SuiteStatus, run_suite
from autorl.compare.suite import SUITE_FILE, Cell, Suite, SuiteConfig, TaskSpec, load_suite

__all__ = [
    "SUITE_FILE",
    "Cell",
    "CellPlan",
    "Suite",
    "SuiteConfig",
    "SuiteProgress",
    "SuiteStatus",
    "TaskSpec",
    "load_suite",
    "plan_suite",
    "publish",
    "run_cell",
    "run_suite",
]
