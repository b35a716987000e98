"""Methods: how the next configuration is chosen and when a trial is stopped.

A static-HPO method is a builder ``build(sweep, worker=0, **options) -> Plan`` returning an Optuna
sampler and pruner; every executor runs it the same way. Options are the builder's keyword arguments,
so unknown options are refused with the valid ones listed.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna

from autorl.errors import ConfigError
from autorl.registry import Registry

if TYPE_CHECKING:
    from autorl.config import Sweep


class MethodKind(enum.Enum):
    """The AutoRL survey's classes of methods."""

    STATIC = "static"
    MULTI_FIDELITY = "multi_fidelity"
    POPULATION = "population"
    META_GRADIENT = "meta_gradient"
    ENV_DESIGN = "env_design"


@dataclass(frozen=True)
class Plan:
    """What an Optuna-driven executor needs: a sampler, a pruner, and fixed arguments.

    ``args`` are merged into every trial's config (under the sampled parameters): methods that live
    inside one training run (meta-gradients, environment design) switch their target's machinery on
    this way, so any target that understands the arguments can be run by them.
    """

    sampler: optuna.samplers.BaseSampler
    pruner: optuna.pruners.BasePruner
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodInfo:
    """How a method runs.

    ``runner``: a ``"module:function"`` called as ``run(sweep, resume, progress) -> optuna.Study`` for
    methods that are not a sampler and pruner (population-based training); it must record one trial
    per run or member in the sweep's study, as the executors do, so results look the same.
    """

    kind: MethodKind
    multi_objective: bool = False
    runner: str | None = None


Builder = Callable[..., Plan]
METHODS: Registry[Builder] = Registry("method", entry_point_group="autorl.methods")


def register_method(
    name: str, description: str, kind: MethodKind, *, multi_objective: bool = False, runner: str | None = None
) -> Callable[[Builder], Builder]:
    """Decorator registering a builder ``f(sweep, worker=0, **options) -> Plan``.

    A method with a ``runner`` still registers a builder: it validates the options (raising
    ValueError or TypeError) and may return any Plan; the runner does the work.
    """
    return METHODS.decorator(name, description, info=MethodInfo(kind, multi_objective, runner))


def method_info(name: str) -> MethodInfo:
    info = METHODS.entry(name).extra.get("info")
    return info if isinstance(info, MethodInfo) else MethodInfo(MethodKind.STATIC)


def _options_of(builder: Builder) -> dict[str, Any]:
    sig = inspect.signature(builder)
    return {n: p.default for n, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY}


def build_plan(sweep: Sweep, worker: int = 0) -> Plan:
    """Build the sampler and pruner of the sweep's method for one worker."""
    builder = METHODS.get(sweep.method)
    return builder(sweep, worker=worker, **sweep.method_options)


def check_method(sweep: Sweep) -> None:
    """Refuse an unknown method, unknown options, or a method the sweep cannot run."""
    try:
        builder = METHODS.get(sweep.method)
    except ConfigError as exc:
        raise exc.at("method", sweep.source) from None
    valid = _options_of(builder)
    unknown = sorted(set(sweep.method_options) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for method {sweep.method!r}; valid: "
            f"{', '.join(sorted(valid)) or 'none'}",
            "method",
            sweep.source,
        )
    info = method_info(sweep.method) if sweep.method in METHODS else MethodInfo(MethodKind.STATIC)
    if len(sweep.directions) > 1 and not info.multi_objective:
        multi = [
            e.name
            for e in METHODS.entries()
            if isinstance(e.extra.get("info"), MethodInfo) and e.extra["info"].multi_objective
        ]
        raise ConfigError(
            f"method {sweep.method!r} optimises one objective but {len(sweep.directions)} are given; "
            f"use one of {', '.join(multi)}",
            "method",
            sweep.source,
        )
    if info.kind is MethodKind.MULTI_FIDELITY and sweep.config.budget.min is None:
        raise ConfigError(
            f"method {sweep.method!r} is multi-fidelity and needs budget.min (its first rung)",
            "budget.min",
            sweep.source,
        )
    budget = sweep.config.budget
    with_init = [p.name for p in sweep.space.values() if p.init is not None]
    if with_init and info.kind is not MethodKind.POPULATION:
        raise ConfigError(
            f"'init' (the first population's range) is only used by population methods (pbt, pb2), "
            f"not by {sweep.method!r}; remove it or narrow low/high",
            f"space.{with_init[0]}.init",
            sweep.source,
        )
    if info.kind is MethodKind.POPULATION and sweep.config.target:
        from autorl.targets import TARGETS

        fixed = getattr(TARGETS.get(sweep.config.target), "immutable", frozenset())
        for p in sweep.space.values():
            if p.mutable and p.name in fixed:
                raise ConfigError(
                    f"{sweep.config.target} cannot change {p.name!r} during training (it sizes a buffer or "
                    "the networks): remove mutable",
                    f"space.{p.name}.mutable",
                    sweep.source,
                )
    spread = info.kind in (MethodKind.MULTI_FIDELITY, MethodKind.POPULATION)
    if budget.total is not None and not spread and budget.total < budget.max:
        raise ConfigError(
            f"method {sweep.method!r} trains every trial to budget.max={budget.max}, so it cannot "
            f"honour budget.total={budget.total}",
            "budget.total",
            sweep.source,
        )
    if info.kind is MethodKind.MULTI_FIDELITY and sweep.config.target:
        from autorl.targets import TARGETS, TargetKind, target_kind

        if target_kind(TARGETS.get(sweep.config.target)) is TargetKind.FUNCTION:
            raise ConfigError(
                f"method {sweep.method!r} stops trials at budget rungs, but a plain function target "
                "reports no intermediate values; take (config, ctx) and call ctx.report, or use a "
                "Trainable",
                "method",
                sweep.source,
            )
    try:
        build_plan(sweep)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"method {sweep.method!r} rejected its options: {exc}", "method", sweep.source
        ) from None
