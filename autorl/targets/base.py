"""What gets tuned: the target interface.

A target is any of three things, all run by :func:`autorl.targets.driver.run_target`:

1. a plain function ``f(config) -> float | dict[str, float]``;
2. a function ``f(config, ctx) -> float | dict`` that also receives a :class:`TrialContext`
   (its budget, seed, checkpoint directory, and :meth:`TrialContext.report` for intermediate values,
   which raises :class:`~autorl.errors.TrialPruned` when the method stops the trial);
3. a class following :class:`Trainable`: built once per trial, trained in increments of budget, saved and
   restored. Population methods (PBT) and pruning at budget rungs need this form.

``config`` is one dict: the target's fixed arguments (``args`` in a sweep config) merged with the sampled
hyperparameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from autorl.errors import ConfigError, TrialPruned
from autorl.registry import Definition, Registry
from autorl.space import SearchSpace, extreme


@dataclass
class TrialContext:
    """What a running trial knows about itself. Build one by hand to test a target without a sweep.

    Attributes:
        seed: seed the target must use for everything random.
        budget: the most budget units (env steps, epochs, ...) this trial may consume.
        report_every: budget units between two intermediate reports of a :class:`Trainable`.
        number: the trial's number in its sweep.
        checkpoint_dir: where the trial may write checkpoints (not created until the target does so);
            None when the trial runs outside a sweep.
        metric: name of the metric the sweep optimises (the first one for several objectives).
        should_prune: callback ``(value, step) -> bool`` supplied by the executor.
        curve: the values reported so far, ``(step, value)``.
        metrics: the last report's metrics (the value's alone where the target gave no others): what the
            executor passes on to experiment tracking.
    """

    seed: int = 0
    budget: int = 1000
    report_every: int | None = None
    number: int = 0
    checkpoint_dir: Path | None = None
    metric: str = "value"
    should_prune: Callable[[float, int], bool] | None = None
    curve: list[tuple[int, float]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    def report(self, value: float, step: int, metrics: Mapping[str, float] | None = None) -> None:
        """Record an intermediate ``value`` after ``step`` budget units, with any other ``metrics`` of that
        step (losses, entropy: tracked, not judged); raise TrialPruned to stop."""
        value = float(value)
        self.curve.append((int(step), value))
        self.metrics = {**{k: float(v) for k, v in (metrics or {}).items()}, self.metric: value}
        if self.should_prune is not None and math.isfinite(value) and self.should_prune(value, int(step)):
            raise TrialPruned(f"pruned at step {step} with {self.metric}={value:.6g}")

    @property
    def interval(self) -> int:
        """Budget units between reports: ``report_every`` or a tenth of the budget."""
        return max(1, int(self.report_every or math.ceil(self.budget / 10)))


@runtime_checkable
class Trainable(Protocol):
    """A target trained in increments, with checkpoints.

    ``train(n)`` advances training by ``n`` budget units and returns the current metrics (it should
    evaluate before returning). ``save``/``load`` write and read everything that makes the model what it
    is (weights, optimiser state, counters) under a directory. ``reconfigure`` is optional: population
    methods call it to change hyperparameters mid-run, and it must make them take effect.
    """

    def __init__(self, config: dict[str, Any], ctx: TrialContext) -> None: ...

    def train(self, budget: int) -> Mapping[str, float]: ...

    def save(self, path: Path) -> None: ...

    def load(self, path: Path) -> None: ...


@dataclass(frozen=True)
class TargetInfo:
    """What a target is and can do, declared when it is registered: the executors, the config checks and
    the methods read it here and never probe the target.

    Attributes:
        unit: what one budget unit is ("env_steps", "steps", "epochs").
        metric: the default metric, and direction its default direction.
        space: default search space, a path relative to the shipped ``autorl/search_spaces/``.
        check: optional ``"module:function"`` called as ``check(args, param_names)`` before a sweep runs;
            it raises ConfigError for arguments or parameters the target cannot take.
        granularity: optional ``"module:function"`` called as ``granularity(config)``: the budget units
            of the smallest piece the target trains for ``config`` (its arguments and hyperparameters),
            e.g. one PPO rollout of ``n_steps * n_envs`` env steps. ``train(n)`` may go up to one piece
            minus one unit past ``n``. It must not shrink as a hyperparameter grows. None: 1.
        granule: what one such piece is, for messages ("rollout (n_steps x n_envs)").
        batch: optional ``"module:Class"`` of a :class:`BatchTrainable` that trains many configurations
            as one computation (the engine): batches of trials and populations then train through it.
        reconfigurable: its Trainable has ``reconfigure(config)``, so population methods may change its
            mutable hyperparameters mid-run.
        immutable: keys a population method may never change mid-run (they size buffers or networks),
            or a ``"module:attr"`` naming that set (read on first use, like ``check``).
        shared: keys every member of one computation shares (the engine's shapes), or a reference.
        accepts: machinery a method may switch on through its arguments: ``"metagrad"`` (learned
            gamma, lambda and loss weights), ``"levels"`` (level samplers of environment design).
        forks: its batch can fork a member (envs and random stream included), so that forks with other
            hyperparameters update on the same batch: what a method's :class:`Branch` needs.
        evaluates: its Trainable's ``evaluate(seed)`` (and its batch's ``evaluate({member: seed})``)
            measures the agent as it stands, training nothing, on episodes started from ``seed``: what a
            population's final race needs (``race`` with PBT or PB2).
        training_metrics: metrics to maximise that its ``train`` reports after every piece of training
            without an evaluation (``train_return``: the training episodes that ended), which a
            population's decisions may read instead of evaluating every member after every interval
            (``decide_on``).
        handover: other targets that train the same algorithm, by the name ``autorl train --with``
            takes: ``{"sb3": "module:function"}``, the function mapping a configuration (args and
            params together) to ``{"target": ..., "args": ..., "params": ...}`` of that target, or
            raising ConfigError for a setting it has no equivalent for.
    """

    unit: str = "steps"
    metric: str = "value"
    direction: str = "maximize"
    space: str | None = None
    check: str | None = None
    granularity: str | None = None
    granule: str = "step"
    batch: str | None = None
    reconfigurable: bool = False
    immutable: frozenset[str] | str = frozenset()
    shared: frozenset[str] | str = frozenset()
    accepts: frozenset[str] = frozenset()
    forks: bool = False
    evaluates: bool = False
    training_metrics: frozenset[str] = frozenset()
    handover: Mapping[str, str] = field(default_factory=dict)

    def batch_class(self) -> type[BatchTrainable]:
        """The declared :class:`BatchTrainable` (a target that declares none has no batches)."""
        from autorl.registry import load_reference

        if self.batch is None:
            raise TypeError("this target trains one configuration at a time: it declares no batch")
        return load_reference(self.batch)  # type: ignore[no-any-return]

    def hand_over(self, to: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` as target ``to`` (a name in :attr:`handover`) trains it; ConfigError where it cannot."""
        from autorl.registry import load_reference

        if to not in self.handover:
            can = ", ".join(sorted(self.handover)) or "none"
            raise ConfigError(f"this target hands over to: {can}; not to {to!r}", "--with")
        return load_reference(self.handover[to])(config)  # type: ignore[no-any-return]

    def piece(self, config: Mapping[str, Any]) -> int:
        """The budget units of one piece (:attr:`granularity`) for ``config``, its arguments and
        hyperparameters together; 1 where the target declares none."""
        if self.granularity is None:
            return 1
        from autorl.registry import load_reference

        return max(1, int(load_reference(self.granularity)(config)))

    def immutable_keys(self) -> frozenset[str]:
        return _keys(self.immutable)

    def shared_keys(self) -> frozenset[str]:
        return _keys(self.shared)


def _keys(keys: frozenset[str] | str) -> frozenset[str]:
    from autorl.registry import load_reference

    return frozenset(load_reference(keys)) if isinstance(keys, str) else keys


class BatchTrainable(Protocol):
    """Many configurations trained as one computation (:attr:`TargetInfo.batch`): members numbered as
    given and kept for life; ``train`` trains some of them and evaluates those in ``evaluate`` (None: all
    it trained; a batch of trials passes the trials whose value is read at this report). A member
    left unevaluated returns its training metrics only, and what is evaluated later must not depend
    on which evaluations were left out."""

    def __init__(
        self, configs: Sequence[Mapping[str, Any]], seeds: Sequence[int], budget: int, out: Path | None = None
    ) -> None: ...

    def train(
        self, steps: int, members: Sequence[int] | None = None, evaluate: Collection[int] | None = None
    ) -> dict[int, dict[str, float]]: ...

    def add(self, config: Mapping[str, Any], seed: int) -> int: ...

    def remove(self, member: int) -> None: ...

    def copy(self, src: int, dst: int, config: Mapping[str, Any]) -> None: ...

    def fork(self, src: int, dst: int, config: Mapping[str, Any]) -> None: ...

    def set_hparams(self, member: int, config: Mapping[str, Any]) -> None: ...

    def evaluate(self, seeds: Mapping[int, int]) -> dict[int, dict[str, float]]:
        """Members (``{member: seed}``) as they stand, on episodes started from their seeds
        (:attr:`TargetInfo.evaluates`)."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


TARGETS: Registry[Any] = Registry("target", entry_point_group="autorl.targets")


def register_target(name: str, target: Any, description: str = "", **info: Any) -> None:
    """Register a target (an object or a lazy ``"module:attr"``) under ``name``; ``info`` are the fields
    of its :class:`TargetInfo` (unit, metric, direction, space, check, granularity, capabilities)."""
    TARGETS.register(name, target, description, info=_info(info))


def define_target(target: Any, description: str = "", **info: Any) -> Definition[Any]:
    """A whole target entry for a plug-in's entry point (``[project.entry-points."autorl.targets"]``),
    with the same fields as :func:`register_target`: its metadata and capabilities come with it."""
    return Definition(target, description, {"info": _info(info)})


def _info(fields: dict[str, Any]) -> TargetInfo:
    sets = {
        k: v if isinstance(v, str) else frozenset(v)
        for k, v in fields.items()
        if k in ("immutable", "shared", "accepts")
    }
    if "training_metrics" in fields:
        sets["training_metrics"] = _names(fields["training_metrics"])
    return TargetInfo(**{**fields, **sets})


def _names(value: Any) -> frozenset[str]:
    """Metric names: one name, or a collection of them (never a string's characters)."""
    names = frozenset([value]) if isinstance(value, str) else frozenset(value)
    if not all(isinstance(n, str) and n for n in names):
        raise TypeError(f"training_metrics must name metrics (strings), got {value!r}")
    return names


def target_info(name: str) -> TargetInfo:
    """What target ``name`` is and can do: its registered :class:`TargetInfo`; for a ``module:attr``
    reference, which declares nothing, what its object shows (:func:`reference_info`)."""
    if name in TARGETS:
        info = TARGETS.entry(name).extra.get("info")
        return info if isinstance(info, TargetInfo) else TargetInfo()
    if ":" not in name:
        return TargetInfo()
    return reference_info(TARGETS.get(name))


def declaring(capability: Callable[[TargetInfo], Any]) -> list[str]:
    """The registered targets whose declared info has ``capability`` (for messages: which could)."""
    infos = {e.name: e.extra.get("info") for e in TARGETS.entries()}
    return [name for name, info in infos.items() if isinstance(info, TargetInfo) and capability(info)]


def reference_info(obj: Any) -> TargetInfo:
    """The capabilities of a target given by reference: a class that defines ``reconfigure`` is
    reconfigurable, and its class attributes ``immutable`` and ``shared`` (sets of keys) say what a
    population may not change and what its members share, ``evaluates = True`` that its
    ``evaluate(seed)`` races (:attr:`TargetInfo.evaluates`), ``training_metrics`` what its ``train``
    reports without evaluating. Read here once, so nothing else probes."""
    if not isinstance(obj, type):
        return TargetInfo()
    attrs = {k: v for c in reversed(obj.__mro__) for k, v in vars(c).items()}
    return TargetInfo(
        reconfigurable=callable(attrs.get("reconfigure")),
        immutable=frozenset(attrs.get("immutable", ())),
        shared=frozenset(attrs.get("shared", ())),
        evaluates=bool(attrs.get("evaluates", False)),
        training_metrics=_names(attrs.get("training_metrics", ())),
    )


def granularity_range(info: TargetInfo, args: Mapping[str, Any], space: SearchSpace) -> tuple[int, int]:
    """The smallest and largest piece (:attr:`TargetInfo.granularity`) of any configuration in ``space``
    with ``args``: the granularity of the configurations made of every parameter's smallest and of
    every parameter's largest value."""
    low, high = (info.piece({**args, **extreme(space, largest=end)}) for end in (False, True))
    return low, high


def pieces(
    info: TargetInfo, args: Mapping[str, Any], space: SearchSpace, most: int = 4096
) -> set[int] | None:
    """Every piece (:attr:`TargetInfo.granularity`) a configuration in ``space`` can train in with
    ``args``: every combination of the categorical choices and ``pow2`` integers' powers (a parameter
    with a condition also absent, as a trial where it does not hold has it), with each number range at
    either end. None where a number range changes the piece (too many values to list) or there are more
    than ``most`` combinations."""
    if info.granularity is None:
        return {1}
    import itertools

    from autorl.space import ParamType, Transform

    low, high = extreme(space, largest=False), extreme(space, largest=True)
    absent = object()
    listed: dict[str, list[Any]] = {}
    ranges: list[str] = []
    for p in space.values():
        if p.type is ParamType.CATEGORICAL:
            values: list[Any] = list(p.choices)
        elif p.type is ParamType.INT and p.transform is Transform.POW2:
            lo, hi = p.search_bounds()
            values = [2**e for e in range(math.ceil(lo), math.floor(hi) + 1)]
        elif p.type is ParamType.FIXED:
            values = [p.value]
        else:
            ranges.append(p.name)
            values = [low[p.name]]
        listed[p.name] = values + ([absent] if p.condition else [])
    if math.prod(len(v) for v in listed.values()) > most:
        return None
    found = set()
    for combo in itertools.product(*listed.values()):
        config = {k: v for k, v in zip(listed, combo, strict=True) if v is not absent}
        piece = info.piece({**args, **config})
        for name in ranges:  # a number range must not change the piece
            if name in config and info.piece({**args, **config, name: high[name]}) != piece:
                return None
        found.add(piece)
    return found
