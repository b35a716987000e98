"""YAML in and out: safe loading that reads ``1e4`` as a number, and file-naming errors.

Loading is bounded: a document may hold at most :data:`MAX_BYTES` bytes and, with every alias
expanded, :data:`MAX_NODES` nodes, so a few lines of nested aliases (a "billion laughs") are refused
before anything expands them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from autorl.errors import ConfigError

SPACES_DIR = Path(__file__).resolve().parent / "search_spaces"  # the shipped spaces and examples
MAX_BYTES = 1_000_000  # a sweep config or search space is a few KB
MAX_NODES = 100_000  # scalars, sequences and mappings after expanding aliases


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


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes ``node`` stands for once aliases are expanded (an alias counts its anchor's size again)."""
    key = id(node)
    if key not in memo:
        memo[key] = 0  # a recursive alias is a cycle: counted once, it cannot grow the total
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        memo[key] = 1 + sum(_expanded_size(c, memo) for c in children)
    return memo[key]


def loads(text: str, source: str = "<string>") -> Any:
    """Parse YAML text; a syntax error or an oversized document is a one-line ConfigError naming
    ``source``."""
    if len(text.encode()) > MAX_BYTES:
        raise ConfigError(f"a YAML document may hold at most {MAX_BYTES} bytes", file=source)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {})
        if size > MAX_NODES:
            raise ConfigError(
                f"the YAML expands to {size} nodes (aliases repeat their anchors); at most {MAX_NODES} "
                "are accepted",
                file=source,
            )
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_problem(exc), file=source) from None
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and what: an unclosed ``{`` or ``[`` is named at the line that opens it (the parser only
    notices it lines later, where the next key starts)."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    context, opened = getattr(exc, "context", None) or "", getattr(exc, "context_mark", None)
    problem = problem or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}" if mark is not None else "?"
    if opened is not None and mark is not None and opened.line < mark.line:
        what = context.removeprefix("while parsing ")
        if what.startswith("a flow "):  # { ... } or [ ... ]
            bracket = "{" if "mapping" in what else "["
            return (
                f"invalid YAML at line {opened.line + 1}: the {bracket!r} opened there is never closed "
                f"({problem} at line {mark.line + 1})"
            )
        return f"invalid YAML at {where}: {problem} ({context} started at line {opened.line + 1})"
    return f"invalid YAML at {where}: {problem}"


def load_yaml(path: str | Path) -> Any:
    """Read and parse a YAML file; a missing file is a ConfigError naming it."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("file not found", file=str(path))
    if p.stat().st_size > MAX_BYTES:
        raise ConfigError(f"a YAML file may hold at most {MAX_BYTES} bytes", file=str(path))
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


def config_path(path: str | Path) -> Path:
    """A sweep file as given, else one of the shipped examples (``examples/ppo_cartpole.yaml``)."""
    p = Path(path).expanduser()
    if not p.is_file() and not p.is_absolute() and (SPACES_DIR / p).is_file():
        return SPACES_DIR / p
    return p
