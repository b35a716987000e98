"""Search spaces: parameters, conditions, transforms; sampling and perturbing; Optuna and Ray conversion."""

from autorl.space.base import Param, ParamType, SearchSpace, Transform
from autorl.space.optuna import (
    from_distributions,
    grid,
    suggest,
    to_distribution,
    to_distributions,
    to_params,
)
from autorl.space.sampling import (
    check_config,
    extreme,
    from_unit,
    perturb,
    sample,
    sample_param,
    to_search,
    to_unit,
)

__all__ = [
    "Param",
    "ParamType",
    "SearchSpace",
    "Transform",
    "check_config",
    "extreme",
    "from_distributions",
    "from_unit",
    "grid",
    "perturb",
    "sample",
    "sample_param",
    "suggest",
    "to_distribution",
    "to_distributions",
    "to_params",
    "to_search",
    "to_unit",
]
