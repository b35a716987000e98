"""The ``fixed`` method: one given configuration, nothing searched (a reference baseline).

``method: {name: fixed, config: {...}}`` (or ``config: baselines/zoo/sb3_ppo_cartpole.yaml``, a YAML
mapping looked up like a ``space:`` file) runs that configuration; the sweep's space becomes one
``fixed`` parameter per key (:func:`autorl.config.baseline_space`), so the trials table and
``best.yaml`` hold it. Each trial is the same configuration on the trial's own seeds: ``trials: 5`` is
five training seeds.
"""

from __future__ import annotations

from typing import Any

from optuna.pruners import NopPruner
from optuna.samplers import RandomSampler

from autorl.methods.base import MethodContext, MethodKind, Plan, register_method


@register_method(
    "fixed",
    "reference baseline: one given configuration (option config: a mapping or a YAML file), not searched",
    MethodKind.BASELINE,
    multi_objective=True,
)
def fixed(ctx: MethodContext, worker: int = 0, *, config: dict[str, Any] | str | None = None) -> Plan:
    if config is None:
        raise ValueError(
            "config is required: the configuration to run, a mapping of hyperparameters or a YAML file of "
            "one (e.g. baselines/zoo/sb3_ppo_cartpole.yaml)"
        )
    if not isinstance(config, dict | str) or not config:
        raise ValueError(f"config must be a non-empty mapping or a YAML file's name, got {config!r}")
    # Every parameter is fixed, so the sampler is never asked for a value.
    return Plan(RandomSampler(seed=ctx.seed), NopPruner())
