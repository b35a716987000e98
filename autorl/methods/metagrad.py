"""Meta-gradient RL as a method: ``method: metagrad`` learns eta inside each run.

Each trial is one training run (its own seed) of a target that implements meta-gradients, today
``agents:actor_critic``: the method switches the chosen meta-parameters on through the trial config,
so ``trials: 3`` gives three seeds. The starting point comes from the space; give ``type: fixed``
values to start every run from the same eta (ranges are sampled per run). To tune the meta learning
rate or the initial eta with a static method instead (the survey's hybrid), sweep the target with
``method: tpe`` and ``meta_*: true`` in ``args``.

References: Xu, van Hasselt & Silver 2018 (gamma, lambda); Zahavy et al. 2020, STAC (loss weights).
"""

from __future__ import annotations

from optuna.pruners import NopPruner
from optuna.samplers import RandomSampler

from autorl.methods.base import MethodContext, MethodKind, Plan, register_method, require

LEARNABLE = ("gamma", "gae_lambda", "ent_coef", "vf_coef", "pg_coef")


@register_method(
    "metagrad",
    "meta-gradient RL: gamma, lambda and loss weights learned online in each run (one run per trial)",
    MethodKind.META_GRADIENT,
)
def metagrad(
    ctx: MethodContext,
    worker: int = 0,
    *,
    learn: list[str] | tuple[str, ...] = ("gamma", "gae_lambda"),
    meta_lr: float | None = None,
    condition_on_eta: bool | None = None,
) -> Plan:
    require(ctx, "metagrad", "a target with meta-gradients")
    unknown = sorted(set(learn) - set(LEARNABLE))
    if unknown or not learn:
        raise ValueError(f"learn must list some of {', '.join(LEARNABLE)}, got {list(learn)}")
    args: dict[str, object] = {f"meta_{name}": True for name in learn}
    if meta_lr is not None:
        args["meta_lr"] = float(meta_lr)
    if condition_on_eta is not None:
        args["condition_on_eta"] = bool(condition_on_eta)
    return Plan(RandomSampler(seed=ctx.seed + ctx.stream + 1000 * worker), NopPruner(), args=args)
