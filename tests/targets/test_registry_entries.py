"""Every registered target loads, has a valid form, and its default search space parses."""

import pytest

from autorl.config import resolve_space_path
from autorl.space import SearchSpace
from autorl.targets import TARGETS, target_info, target_kind


@pytest.mark.parametrize("name", TARGETS.names())
def test_registered_target_loads_with_its_default_space(name):
    obj = TARGETS.get(name)
    target_kind(obj)  # raises for a malformed target
    info = target_info(name)
    assert info.space is not None, f"{name} has no default search space"
    space = SearchSpace.from_yaml(resolve_space_path(info.space))
    assert len(space) > 0
    assert info.direction in ("maximize", "minimize")
