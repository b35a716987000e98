"""Shared parts of the research-model targets: digits data, a resumable batch sampler, strict config
parsing, and :class:`ModelTarget`, the scaffolding (config, seeding, train, checkpoints, reconfigure) each
target builds on."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch

from autorl.errors import ConfigError
from autorl.registry import closest
from autorl.targets.base import TrialContext

T = TypeVar("T")


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    # Pixel values are integers 0..16; divide so images lie in [0, 1].
    images = (data.images / 16.0).astype(np.float32)
    return images, data.target.astype(np.int64)


def load_digits_split(
    seed: int, val_fraction: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 1797 sklearn digits, shuffled by ``seed`` and split into train and validation parts.

    Returns:
        ``(x_train, y_train, x_val, y_val)``: images as float32 tensors of shape ``(N, 8, 8)`` in
        ``[0, 1]``, labels as int64 tensors of shape ``(N,)``. The same seed always gives the same split.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), but got {val_fraction!r}")
    images, labels = _digits()
    order = np.random.default_rng(seed).permutation(len(images))
    n_val = max(1, round(len(images) * val_fraction))
    val, train = order[:n_val], order[n_val:]
    return (
        torch.from_numpy(images[train].copy()),
        torch.from_numpy(labels[train].copy()),
        torch.from_numpy(images[val].copy()),
        torch.from_numpy(labels[val].copy()),
    )


class BatchSampler:
    """Indices of mini-batches drawn without replacement, epoch after epoch, from its own generator.

    Its whole state (generator, current permutation, position) travels in :meth:`state_dict`, so a
    restored sampler continues with exactly the batches an uninterrupted one would have drawn.
    """

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        if not 1 <= batch_size <= n:
            raise ValueError(f"1 <= batch_size <= {n} (the data size) must hold, but got {batch_size}")
        self.n = n
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self._order = torch.randperm(n, generator=self.generator)
        self._pos = 0

    def next(self) -> torch.Tensor:
        """The next batch of indices; a new permutation starts when the rest cannot fill a batch."""
        if self._pos + self.batch_size > self.n:
            self._order = torch.randperm(self.n, generator=self.generator)
            self._pos = 0
        batch = self._order[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "order": self._order.clone(), "pos": self._pos}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self._order = state["order"].clone()
        self._pos = int(state["pos"])


def refuse_fixed_changes(cfg: Any, config: Mapping[str, Any], mutable: Iterable[str]) -> None:
    """A ConfigError if ``config`` gives a new value to a field of ``cfg`` outside ``mutable`` (what
    ``reconfigure`` may change mid-run); keys that are not fields are left to the caller."""
    current, mutable = asdict(cfg), tuple(mutable)
    fixed = sorted(k for k, v in config.items() if k in current and k not in mutable and v != current[k])
    if fixed:
        raise ConfigError(f"only {', '.join(mutable)} can change mid-run, but got new values for {fixed}")


def refuse_unknown_keys(
    target: str, config: Mapping[str, Any], valid: Iterable[str], params: Iterable[str] = ()
) -> None:
    """A ConfigError for the first key of ``config``, then of the search space's ``params``, that is not in
    ``valid``: it names the key, the closest valid one ("did you mean") and every valid key.

    A key of ``config`` is the error's key; a search-space parameter is named in the rule, since it does
    not live under the same key as the target's arguments.
    """
    names = sorted(valid)
    listing = f"valid keys: {', '.join(names)}"

    def hint(name: str) -> str:
        close = closest(name, names)
        return f" (did you mean {close!r}?)" if close else ""

    for key, value in config.items():
        if key not in names:
            raise ConfigError(f"unknown key of {target}{hint(key)}, got {value!r}; {listing}", key)
    for name in params:
        if name not in names:
            raise ConfigError(f"is not a key of {target}{hint(name)}; {listing}", name)


def immutable_fields(cls: type, mutable: Iterable[str]) -> frozenset[str]:
    """The config fields of ``cls`` outside ``mutable``: a target's ``immutable`` set, which population
    sweeps check before they start."""
    return frozenset(f.name for f in fields(cls)) - frozenset(mutable)


def config_from_dict(cls: type[T], config: Mapping[str, Any], target: str) -> T:
    """Build the dataclass ``cls`` from ``config``, refusing keys it does not know.

    Values are cast to the type of the field's default (so ``6.0`` from a sampler becomes ``6`` for an
    int field). Raises ConfigError naming the key, the rule and the value; an unknown key also gets the
    closest valid one and the list of them.
    """
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    refuse_unknown_keys(target, config, known)
    values: dict[str, Any] = {}
    for name, value in config.items():
        default = known[name].default
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"must be true or false, but got {value!r}", name)
        elif isinstance(default, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"must be a number, but got {value!r}", name) from None
            if isinstance(default, int):
                if number != int(number):
                    raise ConfigError(f"must be an integer, but got {value!r}", name)
                value = int(number)
            else:
                value = number
        elif isinstance(default, int | float):
            raise ConfigError(f"must be a number, but got {value!r}", name)
        values[name] = value
    return cls(**values)


def check_choice(name: str, value: object, choices: tuple[object, ...]) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"must be one of {', '.join(map(str, choices))}, but got {value!r}", name)


def check_range(name: str, value: float, low: float, high: float | None = None) -> None:
    """Raise ConfigError unless ``low <= value`` (and ``value <= high`` when given)."""
    if value < low or (high is not None and value > high):
        rule = f"{low} <= {name}" + (f" <= {high}" if high is not None else "")
        raise ConfigError(f"{rule} must hold, but got {value!r}", name)


def check_fraction(name: str, value: float) -> None:
    """Raise ConfigError unless ``0 < value < 1`` (a share of the data held out, say)."""
    if not 0.0 < value < 1.0:
        raise ConfigError(f"0 < {name} < 1 must hold, but got {value!r}", name)


class ModelTarget(ABC):
    """The scaffolding of a research-model target; a subclass keeps only what is its own.

    The subclass sets the class attributes below, makes its data in :meth:`load_data`, its networks,
    optimisers, samplers and generators in :meth:`build`, and gives :meth:`step` and :meth:`evaluate`. This
    class parses the config strictly, builds under a forked RNG seeded with the trial's seed (so a trial
    neither depends on nor disturbs the caller's random state), and provides ``train``, ``save``, ``load``,
    ``reconfigure`` and the ``check`` that ``autorl validate`` runs.

    Attributes:
        name: the registry name, used in errors (``"models:dat"``).
        config_class: the frozen config dataclass; every field is a config key, checked in its
            ``__post_init__``. A config without ``num_threads`` runs torch on one thread.
        mutable: the fields ``reconfigure`` may change mid-run; ``immutable`` (derived) is the rest.
        checkpoint: the file ``save`` writes in its directory.
        checkpointed: the attributes saved besides config, seed and step count: anything with a
            ``state_dict`` (networks, optimisers, :class:`BatchSampler`), torch generators, plain values.
        train_modules: the networks put in training mode before the steps (``evaluate`` may leave eval).
        steps_key: the metric that reports the steps taken so far.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[Any]]
    mutable: ClassVar[tuple[str, ...]]
    immutable: ClassVar[frozenset[str]]
    checkpoint: ClassVar[str]
    checkpointed: ClassVar[tuple[str, ...]]
    train_modules: ClassVar[tuple[str, ...]] = ()
    steps_key: ClassVar[str] = "budget"

    cfg: Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.immutable = immutable_fields(cls.config_class, cls.mutable)

    def __init__(self, config: Mapping[str, Any], ctx: TrialContext) -> None:
        self.cfg = config_from_dict(self.config_class, config, self.name)
        torch.set_num_threads(getattr(self.cfg, "num_threads", 1))
        self.seed, self.steps = ctx.seed, 0
        self.load_data(ctx.seed)
        with torch.random.fork_rng():
            torch.manual_seed(ctx.seed)
            self.build(ctx)

    @classmethod
    def check(cls, args: Mapping[str, Any], params: Sequence[str]) -> None:
        """Refuse, before a sweep runs, an unknown key in ``args`` or among the search space's ``params``
        (naming the closest valid key), and a wrong type or impossible value in ``args`` (with the defaults
        for the other keys). Builds the config only: nothing is trained and no data is loaded."""
        refuse_unknown_keys(cls.name, args, (f.name for f in fields(cls.config_class)), params)
        config_from_dict(cls.config_class, args, cls.name)

    @abstractmethod
    def load_data(self, seed: int) -> None:
        """Make the data; ``seed`` is the trial's (a split may follow it). Called again by ``load`` when the
        checkpoint comes from another seed."""

    @abstractmethod
    def build(self, ctx: TrialContext) -> None:
        """Make the networks (the global RNG is seeded with ``ctx.seed``), optimisers, samplers and
        generators."""

    @abstractmethod
    def step(self) -> float:
        """Take one optimiser step on the next batch; return its loss (``steps`` counts the earlier ones)."""

    @abstractmethod
    def evaluate(self) -> dict[str, float]:
        """The metrics of the current model."""

    def report(self, train_loss: float) -> dict[str, float]:
        """What ``train`` returns besides the step count, given the mean loss of its steps (NaN for none)."""
        return {**self.evaluate(), "train_loss": train_loss}

    def train(self, budget: int) -> dict[str, float]:
        """Take ``budget`` optimiser steps (0 only evaluates), then evaluate; ``steps_key`` reports the steps
        taken so far."""
        for name in self.train_modules:
            getattr(self, name).train()
        total = 0.0
        for _ in range(budget):
            total += self.step()
            self.steps += 1
        metrics = self.report(total / budget if budget else math.nan)
        metrics[self.steps_key] = float(self.steps)
        return metrics

    def apply_config(self) -> None:
        """Make the mutable values of ``cfg`` take effect: by default every optimiser's learning rate (the
        loss weights and the like are read from ``cfg`` at each step)."""
        for part in self.checkpointed:
            optimizer = getattr(self, part)
            if isinstance(optimizer, torch.optim.Optimizer):
                for group in optimizer.param_groups:
                    group["lr"] = self.cfg.learning_rate

    def reconfigure(self, config: Mapping[str, Any]) -> None:
        """Change the ``mutable`` keys mid-run; the others must keep their values."""
        refuse_fixed_changes(self.cfg, config, self.mutable)
        self.cfg = config_from_dict(self.config_class, {**asdict(self.cfg), **config}, self.name)
        self.apply_config()

    def save(self, path: Path) -> None:
        """Write the config, seed, step count and every ``checkpointed`` part to ``path / checkpoint``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state: dict[str, Any] = {"config": asdict(self.cfg), "seed": self.seed, "steps": self.steps}
        for name in self.checkpointed:
            part = getattr(self, name)
            if isinstance(part, torch.Generator):
                state[name] = part.get_state()
            else:
                state[name] = part.state_dict() if hasattr(part, "state_dict") else part
        torch.save(state, path / self.checkpoint)

    def load(self, path: Path) -> None:
        """Restore what :meth:`save` wrote; the immutable keys of its config must match this target's."""
        state = torch.load(Path(path) / self.checkpoint, weights_only=True)
        # Mutable keys may differ (PBT copies weights between members), the architecture may not.
        self.reconfigure(state["config"])
        if int(state["seed"]) != self.seed:
            # A data split may follow the seed, so a checkpoint from another seed brings its split along.
            self.seed = int(state["seed"])
            self.load_data(self.seed)
        for name in self.checkpointed:
            part = getattr(self, name)
            if isinstance(part, torch.Generator):
                part.set_state(state[name])
            elif hasattr(part, "load_state_dict"):
                part.load_state_dict(state[name])
            else:
                setattr(self, name, state[name])
        self.steps = int(state["steps"])
