"""Single-file RL agents that sweeps can tune, with optional meta-gradient self-tuning."""

from autorl.agents.actor_critic import (
    ETA_NAMES,
    ActorCriticConfig,
    ActorCriticNet,
    ActorCriticTarget,
    Rollout,
    actor_critic_loss,
    gae,
    inner_update,
    meta_loss,
    plot_history,
)

__all__ = [
    "ETA_NAMES",
    "ActorCriticConfig",
    "ActorCriticNet",
    "ActorCriticTarget",
    "Rollout",
    "actor_critic_loss",
    "gae",
    "inner_update",
    "meta_loss",
    "plot_history",
]
