from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

TOY = Path(__file__).parent / "toy_targets.py"


def toy(name: str) -> str:
    """A file-path reference to a toy target (works in spawned worker processes too)."""
    return f"{TOY}:{name}"


@pytest.fixture
def make_config(tmp_path: Path):
    """A small valid sweep config on a toy target, with keys overridable."""

    def make(**overrides: Any) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "target": toy("quad"),
            "space": {
                "x": {"type": "float", "low": -1.0, "high": 1.0},
                "y": {"type": "int", "low": 0, "high": 3},
            },
            "metric": "value",
            "direction": "minimize",
            "budget": {"max": 1},
            "method": "random",
            "trials": 6,
            "seed": 0,
            "out": str(tmp_path / "run"),
        }
        cfg.update(overrides)
        return cfg

    return make
