"""Search spaces: parameters, conditions, transforms; conversion to Optuna and Ray Tune."""

from autorl.space.base import Param, ParamType, SearchSpace, Transform
from autorl.space.optuna import from_distributions, grid, suggest, to_distributions

__all__ = [
    "Param",
    "ParamType",
    "SearchSpace",
    "Transform",
    "from_distributions",
    "grid",
    "suggest",
    "to_distributions",
]
