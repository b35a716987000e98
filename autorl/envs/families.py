"""Contextual environment families: physical parameters of a gymnasium task as a validated context.

A *family* names a gymnasium id and its context parameters, each with a default and a declared range;
a *level* is one context (a dict ``{param: value}``). Register your own with :func:`register_family`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from autorl.errors import ConfigError
from autorl.registry import Registry

Context = dict[str, float]


@dataclass(frozen=True)
class ContextParam:
    """One context dimension: the env attribute it sets, its default and declared ``[low, high]``."""

    name: str
    attr: str
    default: float
    low: float
    high: float

    def __post_init__(self) -> None:
        if not self.low <= self.default <= self.high:
            raise ConfigError(
                f"low <= default <= high must hold, got ({self.low}, {self.default}, {self.high})", self.name
            )


def _no_derived(env: Any) -> None:
    """Families whose dynamics read their attributes directly need no recomputation."""


@dataclass(frozen=True)
class Family:
    """A gymnasium id plus its context parameters.

    ``derive`` recomputes attributes the env caches from the context (CartPole's ``total_mass``).
    """

    name: str
    env_id: str
    params: tuple[ContextParam, ...]
    derive: Callable[[Any], None] = field(default=_no_derived)

    @property
    def keys(self) -> list[str]:
        return [p.name for p in self.params]

    def param(self, key: str) -> ContextParam:
        for p in self.params:
            if p.name == key:
                return p
        raise ConfigError(
            f"unknown context key {key!r} for family {self.name!r}; valid: {', '.join(self.keys)}", key
        )

    def default(self) -> Context:
        return {p.name: p.default for p in self.params}

    def bounds(self) -> dict[str, tuple[float, float]]:
        return {p.name: (p.low, p.high) for p in self.params}

    def validate(self, context: Mapping[str, float]) -> Context:
        """The full context (defaults filled in); an unknown key or out-of-range value is a ConfigError."""
        full = self.default()
        for key, value in context.items():
            p = self.param(key)
            v = float(value)
            if not p.low <= v <= p.high:
                raise ConfigError(f"{key} must be within [{p.low}, {p.high}], got {value}", key)
            full[key] = v
        return full

    def check_ranges(self, ranges: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
        """Declared ranges overridden by ``ranges`` (``{key: [low, high]}`` inside the declared ones)."""
        out = self.bounds()
        for key, pair in ranges.items():
            p = self.param(key)
            if not (isinstance(pair, list | tuple) and len(pair) == 2):
                raise ConfigError(f"a range must be [low, high], got {pair!r}", key)
            lo, hi = float(pair[0]), float(pair[1])
            if not p.low <= lo <= hi <= p.high:
                raise ConfigError(
                    f"range must satisfy {p.low} <= low <= high <= {p.high}, got [{lo}, {hi}]", key
                )
            out[key] = (lo, hi)
        return out

    def apply(self, env: Any, context: Mapping[str, float]) -> Context:
        """Set a validated context on the unwrapped env; returns the full context applied."""
        full = self.validate(context)
        base = env.unwrapped
        for p in self.params:
            setattr(base, p.attr, full[p.name])
        self.derive(base)
        return full


FAMILIES: Registry[Family] = Registry("env family")


def register_family(family: Family, description: str = "") -> Family:
    """Register ``family`` under its name (a duplicate name is refused)."""
    FAMILIES.register(family.name, family, description or f"contextual {family.env_id}")
    return family


def get_family(name: str) -> Family:
    return FAMILIES.get(name)


def _cartpole_derive(env: Any) -> None:
    env.total_mass = env.masspole + env.masscart
    env.polemass_length = env.masspole * env.length


# Ranges: wide enough that the default policy fails at the edges; CARL (Benjamins et al. 2023) uses
# similar physical factors for these tasks.
register_family(
    Family(
        "CartPole",
        "CartPole-v1",
        (
            ContextParam("pole_length", "length", 0.5, 0.05, 2.5),  # half-length, as gymnasium stores it
            ContextParam("cart_mass", "masscart", 1.0, 0.1, 5.0),
            ContextParam("pole_mass", "masspole", 0.1, 0.01, 1.0),
            ContextParam("force_mag", "force_mag", 10.0, 1.0, 30.0),
            ContextParam("gravity", "gravity", 9.8, 1.0, 20.0),
        ),
        _cartpole_derive,
    )
)
register_family(
    Family(
        "Pendulum",
        "Pendulum-v1",
        (
            ContextParam("mass", "m", 1.0, 0.2, 3.0),
            ContextParam("length", "l", 1.0, 0.2, 3.0),
            ContextParam("gravity", "g", 10.0, 1.0, 20.0),
            # the action space stays [-2, 2]; dynamics clip to max_torque
            ContextParam("max_torque", "max_torque", 2.0, 0.5, 2.0),
        ),
    )
)
register_family(
    Family(
        "MountainCar",
        "MountainCar-v0",
        (
            ContextParam("force", "force", 0.001, 0.0005, 0.003),
            ContextParam("gravity", "gravity", 0.0025, 0.001, 0.005),
        ),
    )
)
register_family(
    Family(
        "MountainCarContinuous",
        "MountainCarContinuous-v0",
        # gymnasium hard-codes gravity (0.0025) in this env's step, so only the power is a context
        (ContextParam("power", "power", 0.0015, 0.0005, 0.005),),
    )
)
register_family(
    Family(
        "Acrobot",
        "Acrobot-v1",
        (
            ContextParam("link_length_1", "LINK_LENGTH_1", 1.0, 0.3, 2.0),
            ContextParam("link_length_2", "LINK_LENGTH_2", 1.0, 0.3, 2.0),
            ContextParam("link_mass_1", "LINK_MASS_1", 1.0, 0.3, 3.0),
            ContextParam("link_mass_2", "LINK_MASS_2", 1.0, 0.3, 3.0),
        ),
    )
)
FAMILIES.mark_built_in()
