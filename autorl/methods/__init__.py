"""Methods: the AutoRL survey's classes, registered by name (``autorl list methods``)."""

from autorl.methods import envdesign as _envdesign  # noqa: F401  (registers dr, plr, curriculum)
from autorl.methods import fixed as _fixed  # noqa: F401  (registers fixed)
from autorl.methods import metagrad as _metagrad  # noqa: F401  (registers metagrad)
from autorl.methods import pbt as _pbt  # noqa: F401  (registers pbt, pb2)
from autorl.methods import stall as _stall  # noqa: F401  (registers halve_on_stall)
from autorl.methods import static as _static  # noqa: F401  (registers the static HPO methods)
from autorl.methods.base import (
    METHODS,
    Branch,
    Change,
    Copy,
    Decision,
    Member,
    MethodContext,
    MethodKind,
    MethodSpec,
    Observation,
    Plan,
    PopulationMethod,
    PopulationPlan,
    Reconfigure,
    build_plan,
    build_population,
    check_method,
    define_method,
    method_options,
    method_spec,
    register_method,
)

__all__ = [
    "METHODS",
    "Branch",
    "Change",
    "Copy",
    "Decision",
    "Member",
    "MethodContext",
    "MethodKind",
    "MethodSpec",
    "Observation",
    "Plan",
    "PopulationMethod",
    "PopulationPlan",
    "Reconfigure",
    "build_plan",
    "build_population",
    "check_method",
    "define_method",
    "method_options",
    "method_spec",
    "register_method",
]

METHODS.mark_built_in()
