"""YAML in and out: safe loading that reads ``1e4`` as a number, and file-naming errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from autorl.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads exponent floats without a dot (``1e4``, ``3E-5``), as YAML 1.2 does."""


def _no_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def loads(text: str, source: str = "<string>") -> Any:
    """Parse YAML text; a syntax error becomes a one-line ConfigError naming ``source``."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "?"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"invalid YAML at {where}: {problem}", file=source) from None


def load_yaml(path: str | Path) -> Any:
    """Read and parse a YAML file; a missing file is a ConfigError naming it."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("file not found", file=str(path))
    return loads(p.read_text(), str(path))


def dump_yaml(data: Any, path: str | Path) -> None:
    """Write ``data`` as block-style YAML, keys in insertion order."""
    Path(path).write_text(yaml.safe_dump(_plain(data), sort_keys=False, default_flow_style=False))


def _plain(data: Any) -> Any:
    """Convert numpy scalars and tuples so safe_dump accepts them."""
    if isinstance(data, dict):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_plain(v) for v in data]
    if hasattr(data, "item") and callable(data.item):
        return data.item()
    return data
