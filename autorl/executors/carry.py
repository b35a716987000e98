"""What a worker process takes over from the process that started it.

Workers never import the caller's ``__main__`` (a script calling ``autorl.api.sweep`` is not run again
in them, guard or no guard), so what that script registered at run time travels to them instead, as
Ray ships a driver's functions: the entries of autorl's registries (:data:`REGISTRIES`: targets,
methods, env families, level samplers, the engine's envs and objectives) and gymnasium's env ids.
``cloudpickle`` sends what the script defined by value and everything importable by reference.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import cloudpickle

# Every registry a script may add to, by where it lives; one is carried only where the calling process
# imported its module (a worker then imports only what a script registered into).
REGISTRIES = (
    "autorl.targets.base:TARGETS",
    "autorl.methods.base:METHODS",
    "autorl.envs.families:FAMILIES",
    "autorl.envs.samplers:LEVEL_SAMPLERS",
    "autorl.envs.samplers:TEACHERS",
    "autorl.engine.parts:BATCHED_ENVS",
    "autorl.engine.parts:OBJECTIVES",
)


def _registries(imported_only: bool) -> dict[str, Any]:
    from autorl.registry import load_reference

    return {
        ref: load_reference(ref)
        for ref in REGISTRIES
        if not imported_only or ref.partition(":")[0] in sys.modules
    }


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
    """What this process registered at run time (registry entries past the built-in ones, gymnasium env
    ids past gymnasium's own), for :func:`adopt` in a worker. What is importable travels as a reference;
    what the calling script defined, by value."""
    entries = {
        ref: [_as_reference(e) for e in added]
        for ref, registry in _registries(imported_only=True).items()
        if (added := registry.additions())
    }
    envs: list[Any] = []
    if "gymnasium" in sys.modules:  # nothing to carry where no script used it
        from gymnasium.envs.registration import registry as gym_registry

        for spec in gym_registry.values():
            point = spec.entry_point
            if (point if isinstance(point, str) else getattr(point, "__module__", "")).startswith(
                "gymnasium"
            ):
                continue  # gymnasium's own: every process has it
            target = None if isinstance(spec.entry_point, str) else _reference(spec.entry_point)
            envs.append(dataclasses.replace(spec, entry_point=target) if target else spec)
    return cloudpickle.dumps((entries, envs))  # type: ignore[no-any-return]


def _as_reference(entry: Any) -> Any:
    """``entry`` with its object replaced by its ``"module:qualname"``, where it has one."""
    target = None if isinstance(entry.target, str) else _reference(entry.target)
    return dataclasses.replace(entry, target=target) if target else entry


def adopt(data: bytes) -> None:
    """Register in this process what :func:`registrations` carried and is not known here yet."""
    import pickle

    from autorl.registry import load_reference

    entries, envs = pickle.loads(data)
    for ref, carried in entries.items():
        load_reference(ref).adopt(carried)
    if envs:
        from gymnasium.envs.registration import registry as gym_registry

        for spec in envs:
            gym_registry.setdefault(spec.id, spec)
