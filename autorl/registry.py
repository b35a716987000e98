"""One registry pattern for targets, methods, env families, level samplers and the engine's parts.

Entries are registered by name, either as an object or as a lazy ``"package.module:attr"`` reference
that is imported on first use. Duplicate names are refused; an unknown name is answered with the valid
names and the closest match. Third-party packages add entries through an entry-point group; an entry
point that names a :class:`Definition` registers a full entry (a target's metadata, a method's spec),
as a call to ``register`` would.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Generic, TypeVar

from autorl.errors import ConfigError

T = TypeVar("T")
_PLUGIN = "autorl_plugin"  # an entry point's entry, not yet imported


def closest(name: str, valid: Sequence[str], cutoff: float = 0.6) -> str | None:
    """The valid name ``name`` most likely meant: one that differs only in case, else the closest by
    ``difflib`` (None below ``cutoff``)."""
    folded = [v for v in valid if v.casefold() == name.casefold()]
    if folded:
        return folded[0]
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=cutoff)
    return close[0] if close else None


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> str:
    """The error message for an unknown ``name`` of a ``kind``: the closest valid name, if one is close
    enough, and all of them, sorted."""
    names = sorted(valid)
    close = closest(name, names, cutoff=0.5)
    hint = f" Did you mean {close!r}?" if close else ""
    return f"unknown {kind} {name!r}.{hint} Valid: {', '.join(names)}"


def find_local_module(module: str, dirs: Sequence[Path]) -> Path | None:
    """Where a user's module lives when it is not importable as installed: the first of ``dirs``
    (the config's directory, then the working directory) holding it.

    A top-level module ``name.py`` is returned as its file, which :func:`load_reference` then loads
    by path. For a package (``pkg.mod``), its directory is appended to ``sys.path`` (at the end, so it
    never shadows an installed package) and None is returned: the reference stays ``pkg.mod:attr``.
    """
    top = module.split(".")[0]
    if not top.isidentifier() or importlib.util.find_spec(top) is not None:
        return None
    for d in dirs:
        if "." not in module and (d / f"{top}.py").is_file():
            return (d / f"{top}.py").resolve()
        if (d / top / "__init__.py").is_file():
            if str(d.resolve()) not in sys.path:
                sys.path.append(str(d.resolve()))
            return None
    return None


def load_reference(ref: str) -> Any:
    """Import ``"package.module:attr"`` or ``"path/to/file.py:attr"`` and return the attribute.

    A file's directory is appended to ``sys.path`` (after everything installed) so that it can import
    its neighbours; nothing else adds to the path.
    """
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"a reference must look like 'package.module:name' or 'file.py:name', got {ref!r}")
    if module_name.endswith(".py"):
        path = Path(module_name).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"file {module_name!r} does not exist (reference {ref!r})")
        mod_key = f"autorl_user_{abs(hash(str(path)))}"
        module = sys.modules.get(mod_key)
        if module is None:
            if str(path.parent) not in sys.path:
                sys.path.append(str(path.parent))
            spec = importlib.util.spec_from_file_location(mod_key, path)
            assert spec is not None and spec.loader is not None  # a .py file always has a loader
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_key] = module
            spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise ConfigError(f"cannot import module {module_name!r} (reference {ref!r}): {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(
                f"module {module_name!r} has no attribute {attr!r} (reference {ref!r})"
            ) from None
    return obj


def is_reference(name: str) -> bool:
    """True when ``name`` is a ``module:attr`` reference rather than a registered name."""
    module, sep, attr = name.partition(":")
    return bool(sep and attr) and ("." in module or module.endswith(".py") or "/" in module)


@dataclass(frozen=True)
class Definition(Generic[T]):
    """A whole registry entry but its name, as a plug-in's entry point names it: the object (or a lazy
    reference), a one-line description and its metadata (``info`` of a target, ``spec`` of a method)."""

    target: T | str
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered item: its name, a one-line description and the object or a lazy reference."""

    name: str
    description: str
    target: T | str
    extra: dict[str, Any] = field(default_factory=dict)

    def load(self) -> T:
        """The registered object, importing it on first use when it was given as a reference."""
        if isinstance(self.target, str):
            return load_reference(self.target)  # type: ignore[no-any-return]
        return self.target


class Registry(Generic[T]):
    """Named entries of one kind (``"target"``, ``"method"``, ...), refusing duplicates."""

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._entries: dict[str, Entry[T]] = {}
        self._plugins_loaded = False
        self._conflicts: dict[str, str] = {}
        self._built_in: frozenset[str] = frozenset()

    def register(self, name: str, target: T | str, description: str = "", **extra: Any) -> Entry[T]:
        """Add ``name``; raises ``ValueError`` if the name is taken."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered; choose another name")
        entry = Entry(name, description, target, dict(extra))
        self._entries[name] = entry
        return entry

    def decorator(self, name: str, description: str = "", **extra: Any) -> Callable[[T], T]:
        """Register the decorated object under ``name``."""

        def wrap(obj: T) -> T:
            self.register(name, obj, description, **extra)
            return obj

        return wrap

    def _load_plugins(self) -> None:
        if self._plugins_loaded or not self.entry_point_group:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self.entry_point_group):
            if ep.name in self._entries:
                self._conflicts[ep.name] = ep.value
            else:
                self._entries[ep.name] = Entry(ep.name, f"plug-in from {ep.value}", ep.value, {_PLUGIN: True})

    def mark_built_in(self) -> None:
        """Mark what is registered so far as what importing autorl registers: :meth:`additions` leaves
        it out (called once the built-in entries of a registry are in)."""
        self._built_in = frozenset(self._entries)

    def additions(self) -> list[Entry[T]]:
        """The entries registered at run time (not built in, not a plug-in's): what a worker process
        lacks."""
        return [e for n, e in self._entries.items() if n not in self._built_in and not e.extra.get(_PLUGIN)]

    def adopt(self, entries: Iterable[Entry[T]]) -> None:
        """Add those of ``entries`` whose names are unknown here (a worker process takes over what the
        process that started it registered at run time)."""
        for entry in entries:
            if entry.name not in self:
                self._entries[entry.name] = entry

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._entries)

    def entries(self) -> Iterator[Entry[T]]:
        self._load_plugins()
        for name in sorted(self._entries):
            yield self._entries[name]

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries

    def entry(self, name: str) -> Entry[T]:
        """The entry called ``name``; an unknown name raises ConfigError listing the valid ones."""
        self._load_plugins()
        if name in self._conflicts:
            raise ConfigError(
                f"{self.kind} {name!r} is registered twice: by autorl and by the plug-in "
                f"{self._conflicts[name]!r}; uninstall or rename one"
            )
        if name in self._entries:
            entry = self._entries[name]
            if entry.extra.get(_PLUGIN):  # imported now: its entry point may name a whole Definition
                found = entry.load()
                entry = (
                    Entry(name, found.description or entry.description, found.target, dict(found.extra))
                    if isinstance(found, Definition)
                    else Entry(name, entry.description, found)
                )
                self._entries[name] = entry
            return entry
        raise ConfigError(unknown_name(self.kind, name, self.names()))

    def get(self, name: str) -> T:
        """The object registered as ``name``, or loaded from a ``module:attr`` reference."""
        if name not in self and ":" in name:
            try:
                return load_reference(name)
            except ConfigError:
                if is_reference(name):
                    raise
        return self.entry(name).load()
