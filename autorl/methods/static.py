"""Static HPO methods of the AutoRL survey, on Optuna's samplers and pruners.

Each worker gets its own random stream (seed ``seed + 1000 * worker``; a resumed sweep's workers
continue on fresh streams) so parallel workers and restarts do not propose the same points again.
Multi-fidelity methods prune at budget rungs: ``budget.min`` is the first rung, each next rung is
``reduction_factor`` times larger, up to ``budget.max``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import optuna
from optuna.pruners import HyperbandPruner, NopPruner, SuccessiveHalvingPruner
from optuna.samplers import (
    CmaEsSampler,
    GPSampler,
    GridSampler,
    NSGAIISampler,
    QMCSampler,
    RandomSampler,
    TPESampler,
)

from autorl.methods.base import MethodContext, MethodKind, Plan, register_method
from autorl.space.optuna import grid

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

STATIC, MULTI = MethodKind.STATIC, MethodKind.MULTI_FIDELITY


def _seed(ctx: MethodContext, worker: int) -> int:
    return ctx.seed + ctx.stream + 1000 * worker


def _parallel(ctx: MethodContext) -> bool:
    """Several trials are pending at once: model-based samplers then need a constant liar."""
    return ctx.workers > 1 or ctx.batch > 1


@register_method("random", "uniform random search", STATIC, multi_objective=True)
def random(ctx: MethodContext, worker: int = 0) -> Plan:
    return Plan(RandomSampler(seed=_seed(ctx, worker)), NopPruner())


@register_method(
    "grid",
    "grid search: every categorical choice, `points` values per numeric axis",
    STATIC,
    multi_objective=True,
)
def grid_search(ctx: MethodContext, worker: int = 0, *, points: int = 5) -> Plan:
    if points < 1:
        raise ValueError(f"points >= 1 must hold, got {points}")
    axes = grid(ctx.space, points)
    size = math.prod(len(v) for v in axes.values())
    if ctx.trials > size:
        raise ValueError(
            f"the grid has {size} points, so trials <= {size} must hold, but got trials={ctx.trials}"
        )
    return Plan(_Grid(axes, seed=_seed(ctx, worker)), NopPruner())


class _Grid(GridSampler):
    """GridSampler that leaves stopping to the executor's trial count.

    Optuna's stops the study from ``after_trial`` once the grid is used up, which only works
    inside ``study.optimize``; our executors ask and tell themselves.
    """

    def after_trial(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        state: optuna.trial.TrialState,
        values: Sequence[float] | None,
    ) -> None:
        return None


@register_method(
    "qmc", "quasi-random search on a scrambled Sobol (or Halton) sequence", STATIC, multi_objective=True
)
def qmc(ctx: MethodContext, worker: int = 0, *, qmc_type: str = "sobol", scramble: bool = True) -> Plan:
    # Workers share one sequence seed and Optuna hands out consecutive points across processes.
    return Plan(QMCSampler(qmc_type=qmc_type, scramble=scramble, seed=ctx.seed), NopPruner())


@register_method(
    "tpe",
    "tree-structured Parzen estimator (multivariate; multi-objective MOTPE when several)",
    STATIC,
    multi_objective=True,
)
def tpe(
    ctx: MethodContext,
    worker: int = 0,
    *,
    n_startup_trials: int = 10,
    multivariate: bool = True,
    constant_liar: bool | None = None,
) -> Plan:
    liar = _parallel(ctx) if constant_liar is None else constant_liar
    sampler = TPESampler(
        seed=_seed(ctx, worker),
        n_startup_trials=n_startup_trials,
        multivariate=multivariate,
        group=multivariate,
        constant_liar=liar,
    )
    return Plan(sampler, NopPruner())


@register_method(
    "gp", "Gaussian-process Bayesian optimisation (log EI; multi-objective too)", STATIC, multi_objective=True
)
def gp(
    ctx: MethodContext, worker: int = 0, *, n_startup_trials: int = 10, deterministic_objective: bool = False
) -> Plan:
    sampler = GPSampler(
        seed=_seed(ctx, worker),
        n_startup_trials=n_startup_trials,
        deterministic_objective=deterministic_objective,
    )
    return Plan(sampler, NopPruner())


@register_method("cmaes", "CMA-ES (numeric parameters; categorical ones are sampled independently)", STATIC)
def cmaes(
    ctx: MethodContext,
    worker: int = 0,
    *,
    sigma0: float | None = None,
    popsize: int | None = None,
    n_startup_trials: int = 1,
) -> Plan:
    sampler = CmaEsSampler(
        seed=_seed(ctx, worker),
        sigma0=sigma0,
        popsize=popsize,
        n_startup_trials=n_startup_trials,
        warn_independent_sampling=False,
    )
    return Plan(sampler, NopPruner())


@register_method("nsga2", "NSGA-II evolutionary multi-objective search", STATIC, multi_objective=True)
def nsga2(
    ctx: MethodContext,
    worker: int = 0,
    *,
    population_size: int = 20,
    mutation_prob: float | None = None,
    crossover_prob: float = 0.9,
) -> Plan:
    sampler = NSGAIISampler(
        seed=_seed(ctx, worker),
        population_size=population_size,
        mutation_prob=mutation_prob,
        crossover_prob=crossover_prob,
    )
    return Plan(sampler, NopPruner())


def _rungs(ctx: MethodContext, reduction_factor: int) -> int:
    if reduction_factor < 2:
        raise ValueError(f"reduction_factor >= 2 must hold, got {reduction_factor}")
    if ctx.budget_min is None:
        raise ValueError("a multi-fidelity method needs budget.min (its first rung)")
    return ctx.budget_min


@register_method("asha", "asynchronous successive halving: random configs stopped at budget rungs", MULTI)
def asha(ctx: MethodContext, worker: int = 0, *, reduction_factor: int = 3, sampler: str = "random") -> Plan:
    pruner = SuccessiveHalvingPruner(
        min_resource=_rungs(ctx, reduction_factor), reduction_factor=reduction_factor
    )
    return Plan(_named_sampler(ctx, worker, sampler), pruner)


@register_method("hyperband", "Hyperband: several successive-halving brackets over random configs", MULTI)
def hyperband(
    ctx: MethodContext, worker: int = 0, *, reduction_factor: int = 3, sampler: str = "random"
) -> Plan:
    return Plan(_named_sampler(ctx, worker, sampler), _hyperband_pruner(ctx, reduction_factor))


def _hyperband_pruner(ctx: MethodContext, reduction_factor: int) -> HyperbandPruner:
    return HyperbandPruner(
        min_resource=_rungs(ctx, reduction_factor),
        max_resource=ctx.budget_max,
        reduction_factor=reduction_factor,
    )


@register_method(
    "bohb", "BOHB-style model-based Hyperband: multivariate TPE proposes, Hyperband stops", MULTI
)
def bohb(
    ctx: MethodContext, worker: int = 0, *, reduction_factor: int = 3, n_startup_trials: int = 10
) -> Plan:
    sampler = TPESampler(
        seed=_seed(ctx, worker),
        n_startup_trials=n_startup_trials,
        multivariate=True,
        constant_liar=_parallel(ctx),
    )
    return Plan(sampler, _hyperband_pruner(ctx, reduction_factor))


def _named_sampler(ctx: MethodContext, worker: int, name: str) -> optuna.samplers.BaseSampler:
    if name == "random":
        return RandomSampler(seed=_seed(ctx, worker))
    if name == "tpe":
        return TPESampler(seed=_seed(ctx, worker), multivariate=True, constant_liar=_parallel(ctx))
    raise ValueError(f"sampler must be 'random' or 'tpe', got {name!r}")
