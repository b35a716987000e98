"""autorl's packages import only the layers below them (docs/architecture.md): no cycle, no upward import.

Every import counts, including those inside functions; only ``if TYPE_CHECKING:`` blocks are exempt.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "autorl"
LAYERS = [
    {"errors", "registry", "yamlio", "plotting", "urls"},
    {"space"},
    {"targets"},
    {"agents", "engine"},
    {"envs"},  # environment design trains the actor-critic and the engine's agents
    {"methods"},
    {"config"},
    {"results"},
    {"executors"},
    {"evaluate", "analysis"},
    {"api", "compare"},
    {"cli"},
]
LEVEL = {part: i for i, parts in enumerate(LAYERS) for part in parts}


def _part(module: str) -> str | None:
    bits = module.split(".")
    return bits[1] if bits[0] == "autorl" and len(bits) > 1 else None


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    here = list(path.relative_to(ROOT.parent).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
            found.append((node.lineno, base))
    return found


def test_every_part_of_autorl_has_a_layer() -> None:
    modules = [p.stem for p in ROOT.glob("*.py") if p.stem != "__init__"]
    packages = [p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()]  # not search_spaces/ (data)
    parts = set(modules) | set(packages)
    assert parts <= set(LEVEL), f"give these a layer: {sorted(parts - set(LEVEL))}"


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_reaches_up_a_layer(path: Path) -> None:
    me = _part(".".join(path.relative_to(ROOT.parent).with_suffix("").parts))
    if me is None or me == "__init__":
        return
    upward = [
        f"line {line}: {module}"
        for line, module in _imports(path)
        if (other := _part(module)) and other != me and LEVEL.get(other, -1) > LEVEL[me]
    ]
    assert not upward, f"{path.relative_to(ROOT.parent)} ({me}, layer {LEVEL[me]}) imports upward: {upward}"
