"""What a worker process takes over from the process that started it.

Workers never import the caller's ``__main__`` (a script calling ``autorl.api.sweep`` is not run again
in them, guard or no guard), so what that script registered at run time travels to them instead, as
Ray ships a driver's functions: the entries of autorl's registries (targets, methods, env families)
and gymnasium's env ids. ``cloudpickle`` sends what the script defined by value and everything
importable by reference.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import cloudpickle


def _registries() -> dict[str, Any]:
    from autorl.envs import FAMILIES
    from autorl.methods import METHODS
    from autorl.targets import TARGETS

    return {"target": TARGETS, "method": METHODS, "env family": FAMILIES}


def _reference(obj: Any) -> str | None:
    """``"module:qualname"`` for an object importable under that name (not from ``__main__``): a worker
    imports it only when it is used, as a lazy registration does, never when it starts."""
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(name, str) or module == "__main__" or "<" in name:
        return None
    found: Any = sys.modules.get(module)
    for part in name.split("."):
        found = getattr(found, part, None)
    return f"{module}:{name}" if found is obj else None


def registrations() -> bytes:
    """This process's registry entries and gymnasium env ids, for :func:`adopt` in a worker. What is
    importable travels as a reference; what the calling script defined, by value."""
    entries = {
        kind: [
            dataclasses.replace(e, target=ref)
            if not isinstance(e.target, str) and (ref := _reference(e.target))
            else e
            for e in reg.entries()
        ]
        for kind, reg in _registries().items()
    }
    envs: list[Any] = []
    if "gymnasium" in sys.modules:  # nothing to carry where no script used it
        from gymnasium.envs.registration import registry

        for spec in registry.values():
            ref = None if isinstance(spec.entry_point, str) else _reference(spec.entry_point)
            envs.append(dataclasses.replace(spec, entry_point=ref) if ref else spec)
    return cloudpickle.dumps((entries, envs))  # type: ignore[no-any-return]


def adopt(data: bytes) -> None:
    """Register in this process what :func:`registrations` carried and is not known here yet."""
    import pickle

    entries, envs = pickle.loads(data)
    for kind, registry in _registries().items():
        registry.adopt(entries.get(kind, []))
    if envs:
        from gymnasium.envs.registration import registry as gym_registry

        for spec in envs:
            gym_registry.setdefault(spec.id, spec)
