"""Methods: the AutoRL survey's classes, registered by name (``autorl list methods``)."""

from autorl.methods import envdesign as _envdesign  # noqa: F401
from autorl.methods import metagrad as _metagrad  # noqa: F401  (registers metagrad)
from autorl.methods import pbt as _pbt  # noqa: F401
from autorl.methods import static as _static  # noqa: F401  (registers the static HPO methods)
from autorl.methods.base import (
    METHODS,
    MethodInfo,
    MethodKind,
    Plan,
    build_plan,
    check_method,
    method_info,
    register_method,
)

__all__ = [
    "METHODS",
    "MethodInfo",
    "MethodKind",
    "Plan",
    "build_plan",
    "check_method",
    "method_info",
    "register_method",
]
