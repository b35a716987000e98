"""Environment design as methods: ``method: dr | plr | curriculum`` choose training levels in each run.

Each trial is one training run (its own seed) of an env-design target; the method switches the
target's level sampler on through the trial config, so ``trials: 3`` gives three seeds. To tune the
environment distribution itself (``dr_width``, ``plr_temperature``), sweep the target with a static
method (``method: tpe``) and ``level_sampler`` in ``args``: the outer loop, scored on held-out levels.
"""

from __future__ import annotations

from typing import Any

from optuna.pruners import NopPruner
from optuna.samplers import RandomSampler

from autorl.methods.base import MethodContext, MethodKind, Plan, register_method, require


def _plan(ctx: MethodContext, worker: int, name: str, options: dict[str, Any]) -> Plan:
    require(ctx, "levels", "an environment-design target", name)
    args = {"level_sampler": name, **{k: v for k, v in options.items() if v is not None}}
    return Plan(RandomSampler(seed=ctx.seed + ctx.stream + 1000 * worker), NopPruner(), args=args)


@register_method(
    "dr",
    "domain randomisation: uniform levels over the context ranges (one run per trial)",
    MethodKind.ENV_DESIGN,
)
def dr(ctx: MethodContext, worker: int = 0, *, width: float | None = None) -> Plan:
    if width is not None and not 0 <= width <= 1:
        raise ValueError(f"width must be in [0, 1], got {width}")
    return _plan(ctx, worker, "dr", {"dr_width": width})


@register_method(
    "plr", "Prioritized Level Replay (Jiang et al. 2021): replay high-regret levels", MethodKind.ENV_DESIGN
)
def plr(
    ctx: MethodContext,
    worker: int = 0,
    *,
    score: str | None = None,
    prioritization: str | None = None,
    temperature: float | None = None,
    staleness: float | None = None,
    replay_prob: float | None = None,
    buffer_size: int | None = None,
) -> Plan:
    from autorl.envs.levels import PLRConfig

    opts = {
        "score": score,
        "prioritization": prioritization,
        "temperature": temperature,
        "staleness_coef": staleness,
        "replay_prob": replay_prob,
        "buffer_size": buffer_size,
    }
    PLRConfig(**{k: v for k, v in opts.items() if v is not None})  # type: ignore[arg-type]  # validates
    return _plan(
        ctx,
        worker,
        "plr",
        {
            "plr_score": score,
            "plr_prioritization": prioritization,
            "plr_temperature": temperature,
            "plr_staleness": staleness,
            "plr_replay_prob": replay_prob,
            "plr_buffer_size": buffer_size,
        },
    )


@register_method(
    "curriculum",
    "curriculum: ALP-GMM teacher (Portelas et al. 2019) or ranges widening from the default",
    MethodKind.ENV_DESIGN,
)
def curriculum(
    ctx: MethodContext,
    worker: int = 0,
    *,
    teacher: str | None = None,
    random_prob: float | None = None,
    fit_every: int | None = None,
    max_components: int | None = None,
    threshold: float | None = None,
    start_width: float | None = None,
    step: float | None = None,
) -> Plan:
    from autorl.envs.levels import ALPGMMConfig
    from autorl.envs.samplers import TEACHERS

    if teacher is not None and teacher not in TEACHERS:
        raise ValueError(f"teacher must be one of {', '.join(TEACHERS.names())}, got {teacher!r}")
    alp = {"random_prob": random_prob, "fit_every": fit_every, "max_components": max_components}
    ALPGMMConfig(**{k: v for k, v in alp.items() if v is not None})  # type: ignore[arg-type]  # validates
    return _plan(
        ctx,
        worker,
        "curriculum",
        {
            "curriculum_teacher": teacher,
            "alp_random_prob": random_prob,
            "alp_fit_every": fit_every,
            "alp_max_components": max_components,
            "curriculum_threshold": threshold,
            "curriculum_start_width": start_width,
            "curriculum_step": step,
        },
    )
