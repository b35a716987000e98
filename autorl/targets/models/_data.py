"""Shared helpers of the research-model targets: digits data, a resumable batch sampler, config parsing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, fields
from functools import lru_cache
from typing import Any, TypeVar

import numpy as np
import torch

from autorl.errors import ConfigError

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


def immutable_fields(cls: type, mutable: Iterable[str]) -> frozenset[str]:
    """The config fields of ``cls`` outside ``mutable``: a target's ``immutable`` set, which population
    sweeps check before they start."""
    return frozenset(f.name for f in fields(cls)) - frozenset(mutable)


def config_from_dict(cls: type[T], config: Mapping[str, Any], target: str) -> T:
    """Build the dataclass ``cls`` from ``config``, refusing keys it does not know.

    Values are cast to the type of the field's default (so ``6.0`` from a sampler becomes ``6`` for an
    int field). Raises ConfigError naming the key and the valid keys.
    """
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} for {target}; valid: {', '.join(sorted(known))}"
        )
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
