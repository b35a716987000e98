"""Methods decide: which configuration next, when to stop a trial, who in a population copies whom.

A method is registered with a builder ``build(ctx, worker=0, **options)`` over a narrow
:class:`MethodContext` (never the whole sweep) and a :class:`MethodSpec` saying what it needs from an
executor. A sampler-based method returns a :class:`Plan` (an Optuna sampler and pruner); a population
method returns a :class:`PopulationPlan`, whose decisions are pure functions. Options are the
builder's keyword-only arguments, so unknown options are refused with the valid ones listed. Methods
do no I/O: executors run what they decide, results record it.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np
import optuna

from autorl.errors import ConfigError
from autorl.registry import Definition, Registry
from autorl.space import SearchSpace


class MethodKind(enum.Enum):
    """The AutoRL survey's classes of methods, and ``BASELINE``.

    ``BASELINE`` is not a class of the survey: a given configuration, run as it is and searched not at
    all, the reference a comparison judges tuners against.
    """

    STATIC = "static"
    MULTI_FIDELITY = "multi_fidelity"
    POPULATION = "population"
    META_GRADIENT = "meta_gradient"
    ENV_DESIGN = "env_design"
    BASELINE = "baseline"


@dataclass(frozen=True)
class MethodContext:
    """What a method may know of the sweep it serves.

    Attributes:
        space: the search space.
        directions: ``"maximize"``/``"minimize"`` per objective.
        seed: the sweep's seed; ``stream`` a further offset for processes that share one study.
        workers: trials (or population members) run at once.
        trials: the trial count (static and multi-fidelity methods).
        budget_max, budget_min, budget_total, report_every: the budget in the target's unit.
        target: the target's registered name or reference.
        batch: trials asked for at once and trained together (the batched engine).
    """

    space: SearchSpace
    directions: tuple[str, ...] = ("maximize",)
    seed: int = 0
    stream: int = 0
    workers: int = 1
    trials: int = 1
    budget_max: int = 1
    budget_min: int | None = None
    budget_total: int | None = None
    report_every: int | None = None
    target: str = ""
    batch: int = 1

    @property
    def maximize(self) -> bool:
        return self.directions[0] == "maximize"


@dataclass(frozen=True)
class MethodSpec:
    """What a method needs from an executor, declared once so nothing else tests a method's name.

    ``population``: run by the population loop (a :class:`PopulationPlan`), not trial by trial.
    ``rungs``: stops trials at budget rungs (needs ``budget.min`` and a target that reports).
    ``spreads_budget``: may honour a ``budget.total`` smaller than ``budget.max`` (stops early, or
    splits it over a population).
    ``baseline``: runs one given configuration (the option ``config``), which becomes the sweep's space.
    """

    kind: MethodKind
    multi_objective: bool = False
    forks: bool = False  # it may decide Branch: its target must fork members (TargetInfo.forks)

    @property
    def population(self) -> bool:
        return self.kind is MethodKind.POPULATION

    @property
    def rungs(self) -> bool:
        return self.kind is MethodKind.MULTI_FIDELITY

    @property
    def baseline(self) -> bool:
        return self.kind is MethodKind.BASELINE

    @property
    def spreads_budget(self) -> bool:
        return self.kind in (MethodKind.MULTI_FIDELITY, MethodKind.POPULATION)


@dataclass(frozen=True)
class Plan:
    """A sampler-based method: an Optuna sampler, a pruner, and fixed arguments.

    ``args`` are merged into every trial's config (under the sampled parameters): methods that live
    inside one training run (meta-gradients, environment design) switch their target's machinery on
    this way, so any target that understands the arguments can be run by them.
    """

    sampler: optuna.samplers.BaseSampler
    pruner: optuna.pruners.BasePruner
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def prunes(self) -> bool:
        """It reads trials' intermediate values: any pruner but Optuna's ``NopPruner``."""
        return not isinstance(self.pruner, optuna.pruners.NopPruner)


@dataclass(frozen=True)
class Member:
    """What a population method sees of one member after an interval: its configuration, steps and
    score, and ``metrics``, everything its target reported after the interval (training return, losses,
    the learning rate in effect: aggregated over its seeds)."""

    index: int
    config: dict[str, Any]
    steps: int
    score: float | None  # what decisions read (the plan's decides_on, else the sweep's metric): None
    # until it reported; a failed member's score is None too
    failed: bool = False
    metrics: Mapping[str, float] = field(default_factory=dict)
    branches: tuple[Mapping[str, float], ...] = ()  # what its forks reported (after a Branch)


@dataclass(frozen=True)
class Copy:
    """Copy member ``donor``'s state (weights, optimiser, statistics) into ``member``, then give it
    ``config``. The executor decides how: a checkpoint file, or an index copy inside a batched engine."""

    member: int
    donor: int
    config: dict[str, Any]


@dataclass(frozen=True)
class Reconfigure:
    """Give member ``member`` the hyperparameters ``config`` and let it train on: no copy, no reload."""

    member: int
    config: dict[str, Any]


@dataclass(frozen=True)
class Branch:
    """Fork member ``member`` once per config of ``configs`` (its envs and random stream too), train each
    fork ``units`` (default: one piece of the target, one rollout: the member's own next batch) with that
    config, and show the method what each reported (``Member.branches``, in the order of ``configs``)
    before it decides again; the forks are then dropped. HOOF-style online control compares candidate
    hyperparameters on the same batch this way. Needs a method that declares ``forks`` and a target
    whose batch can fork (``TargetInfo.forks``)."""

    member: int
    configs: tuple[dict[str, Any], ...]
    units: int | None = None


Change = Copy | Reconfigure  # a decision that changes a member (a Branch only looks ahead)
Decision = Copy | Reconfigure | Branch


class Observation(NamedTuple):
    """One member's interval as population methods learn from it."""

    steps: int  # the member's steps after the interval
    config: dict[str, Any]  # the hyperparameters it trained with
    change: float  # its score's change over the interval, signed so that larger is better


class PopulationMethod(Protocol):
    """The decisions of a population method: functions of what they are given and of the method's own
    state, which the population loop saves with the population (:meth:`state_dict`) and gives back on
    resume (:meth:`load_state_dict`)."""

    def initial(self, size: int, rng: np.random.Generator) -> list[dict[str, Any]]:
        """The first population's configurations."""
        ...

    def decide(
        self, members: Sequence[Member], history: Sequence[Observation], rng: np.random.Generator
    ) -> list[Decision]:
        """After every member reached an interval: which members copy which (:class:`Copy`) and which
        change their hyperparameters where they are (:class:`Reconfigure`)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """The method's own state as JSON data (``{}`` for a method without any)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`state_dict` returned (on resume)."""
        ...


@dataclass(frozen=True)
class PopulationPlan:
    """A population method: its size, interval (budget units between decisions) and decisions.

    ``decides_on`` declares what the decisions read: None, the sweep's metric, which every member is
    then evaluated for after every interval; or a training metric the target reports every interval
    (``train_return``), so that, where nothing else reads the evaluations, a batched member is
    evaluated only after the interval that may be its last, for the value the sweep records."""

    size: int
    interval: int
    method: PopulationMethod
    decides_on: str | None = None


def population_interval(ctx: MethodContext, interval: int | None, population: int) -> int:
    """A population method's ``interval`` option: budget units between its decisions (default
    ``budget.report_every``), at most a member's share of the budget."""
    if interval is not None and (not isinstance(interval, int) or interval < 1):
        raise ValueError(f"interval must be a positive int (budget units), got {interval!r}")
    per_member = ctx.budget_total // population if ctx.budget_total is not None else ctx.budget_max
    if per_member < 1:
        raise ValueError(f"budget.total={ctx.budget_total} leaves no budget for {population} members")
    return min(interval or ctx.report_every or max(1, ctx.budget_max // 10), per_member)


def population_size(population: int) -> int:
    """A population method's ``population`` option, checked."""
    if not isinstance(population, int) or population < 2:
        raise ValueError(f"population must be an int >= 2, got {population!r}")
    return population


Builder = Callable[..., "Plan | PopulationPlan"]
METHODS: Registry[Builder] = Registry("method", entry_point_group="autorl.methods")


def register_method(
    name: str, description: str, kind: MethodKind, *, multi_objective: bool = False, forks: bool = False
) -> Callable[[Builder], Builder]:
    """Decorator registering a builder ``f(ctx: MethodContext, worker=0, **options)``.

    It returns a :class:`Plan` (sampler-based kinds) or a :class:`PopulationPlan` (``POPULATION``), and
    raises ValueError or TypeError for options it cannot take. ``forks``: it decides :class:`Branch`.
    """
    return METHODS.decorator(name, description, spec=MethodSpec(kind, multi_objective, forks))


def require(ctx: MethodContext, machinery: str, what: str, method: str | None = None) -> None:
    """Refuse a target that does not declare ``machinery`` in its ``accepts`` (ValueError naming the
    targets that do)."""
    from autorl.targets import declaring, target_info

    if machinery in target_info(ctx.target).accepts:
        return
    able = declaring(lambda info: machinery in info.accepts)
    raise ValueError(f"{method or machinery} needs {what} ({', '.join(able)}), got {ctx.target!r}")


def define_method(
    builder: Builder | str,
    description: str,
    kind: MethodKind,
    *,
    multi_objective: bool = False,
    forks: bool = False,
) -> Definition[Builder]:
    """A whole method entry for a plug-in's entry point (``[project.entry-points."autorl.methods"]``):
    its builder and spec, so a plug-in can be a population or multi-fidelity method."""
    return Definition(builder, description, {"spec": MethodSpec(kind, multi_objective, forks)})


def method_spec(name: str) -> MethodSpec:
    """The spec of a registered method (a plug-in whose entry point names a bare builder, not a
    :func:`define_method`, is a static method)."""
    spec = METHODS.entry(name).extra.get("spec") if name in METHODS else None
    return spec if isinstance(spec, MethodSpec) else MethodSpec(MethodKind.STATIC)


def method_options(name: str) -> dict[str, Any]:
    """The options of method ``name`` and their defaults."""
    sig = inspect.signature(METHODS.get(name))
    return {n: p.default for n, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY}


def build_plan(name: str, ctx: MethodContext, options: dict[str, Any], worker: int = 0) -> Plan:
    """The sampler and pruner of a sampler-based method for one worker."""
    plan = METHODS.get(name)(ctx, worker=worker, **options)
    if not isinstance(plan, Plan):
        raise TypeError(f"method {name!r} is a population method; it has no sampler")
    return plan


def build_population(name: str, ctx: MethodContext, options: dict[str, Any]) -> PopulationPlan:
    """The decisions of a population method."""
    plan = METHODS.get(name)(ctx, worker=0, **options)
    if not isinstance(plan, PopulationPlan):
        raise TypeError(f"method {name!r} is not a population method")
    return plan


def check_method(name: str, ctx: MethodContext, options: dict[str, Any]) -> MethodSpec:
    """Refuse an unknown method, unknown options, or a method this sweep cannot run.

    Raises ConfigError naming the key (``method``, ``budget.min``, ``space.lr.mutable``, ...).
    """
    try:
        METHODS.get(name)
    except ConfigError as exc:
        raise exc.at("method") from None
    valid = method_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for method {name!r}; valid: "
            f"{', '.join(sorted(valid)) or 'none'}",
            "method",
        )
    spec = method_spec(name)
    if len(ctx.directions) > 1 and not spec.multi_objective:
        multi = [e.name for e in METHODS.entries() if method_spec(e.name).multi_objective]
        raise ConfigError(
            f"method {name!r} optimises one objective but {len(ctx.directions)} are given; "
            f"use one of {', '.join(multi)}",
            "method",
        )
    if spec.rungs and ctx.budget_min is None:
        raise ConfigError(
            f"method {name!r} is multi-fidelity and needs budget.min (its first rung)", "budget.min"
        )
    with_init = [p.name for p in ctx.space.values() if p.init is not None]
    if with_init and not spec.population:
        raise ConfigError(
            f"'init' (the first population's range) is only used by population methods (pbt, pb2), "
            f"not by {name!r}; remove it or narrow low/high",
            f"space.{with_init[0]}.init",
        )
    mutable = [p.name for p in ctx.space.values() if p.mutable]
    if spec.population and ctx.target:
        _check_mutable(ctx, mutable)
    if spec.forks and ctx.target:
        from autorl.targets import declaring, target_info

        if not target_info(ctx.target).forks:
            able = ", ".join(declaring(lambda info: info.forks))
            raise ConfigError(
                f"method {name!r} compares forks of a member on the same batch, which {ctx.target} cannot "
                f"make; use a target whose members fork ({able})",
                "method",
            )
    if ctx.budget_total is not None and not spec.spreads_budget and ctx.budget_total < ctx.budget_max:
        raise ConfigError(
            f"method {name!r} trains every trial to budget.max={ctx.budget_max}, so it cannot honour "
            f"budget.total={ctx.budget_total}",
            "budget.total",
        )
    if spec.rungs and ctx.target:
        from autorl.targets import TARGETS, TargetKind, target_kind

        if target_kind(TARGETS.get(ctx.target)) is TargetKind.FUNCTION:
            raise ConfigError(
                f"method {name!r} stops trials at budget rungs, but a plain function target reports no "
                "intermediate values; take (config, ctx) and call ctx.report, or use a Trainable",
                "method",
            )
    try:
        METHODS.get(name)(ctx, worker=0, **options)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"method {name!r} rejected its options: {exc}", "method") from None
    return spec


def _check_mutable(ctx: MethodContext, mutable: list[str]) -> None:
    """A population sweep may only mark mutable what its target can change mid-run."""
    from autorl.targets import target_info

    info = target_info(ctx.target)
    fixed = info.immutable_keys()
    for name in mutable:
        if name in fixed:
            raise ConfigError(
                f"{ctx.target} cannot change {name!r} during training (it sizes a buffer or the networks): "
                "remove mutable",
                f"space.{name}.mutable",
            )
    if mutable and not info.reconfigurable:
        raise ConfigError(
            f"{ctx.target} has no reconfigure(), so it cannot take a changed {mutable[0]!r} mid-run: "
            "remove mutable, or give the target a reconfigure(config) method",
            f"space.{mutable[0]}.mutable",
        )
