"""Registry entries of the built-in targets (imported lazily by reference)."""

from autorl.targets.base import TARGETS, register_target

_SB3_DOC = "stable-baselines3 {algo} on any gymnasium env (args: env, n_envs, eval_episodes, policy)"
for _algo in ("ppo", "a2c", "dqn", "sac", "td3"):
    register_target(
        f"sb3:{_algo}",
        f"autorl.targets.sb3:{_algo.upper()}Target",
        _SB3_DOC.format(algo=_algo.upper()),
        unit="env_steps",
        metric="eval_return",
        direction="maximize",
        space=f"sb3/{_algo}.yaml",
        check=f"autorl.targets.sb3:check_{_algo}",
        granularity=f"autorl.targets.sb3:granularity_{_algo}",
        granule="rollout (n_steps x n_envs)" if _algo in ("ppo", "a2c") else "step of every env (n_envs)",
        reconfigurable=True,
        immutable="autorl.targets.sb3:IMMUTABLE",
        evaluates=True,
    )

# Research models (issue 6): small real PyTorch implementations that train on CPU on offline data.
_MODELS = {
    "autoencoder": (
        "AutoencoderTarget",
        "val_mse",
        "minimize",
        "autoencoder (MLP or conv; denoising and sparse variants) on digits",
    ),
    "hashgrid": (
        "HashGridTarget",
        "psnr",
        "maximize",
        "Instant-NGP multiresolution hash-grid encoding fitting a sample image",
    ),
    "data2vec": (
        "Data2VecTarget",
        "probe_acc",
        "maximize",
        "data2vec-style masked self-distillation with an EMA teacher on digits",
    ),
    "dat": (
        "DATTarget",
        "val_acc",
        "maximize",
        "deformable-attention vision transformer (DAT) classifying digits",
    ),
    "relicv2": (
        "RelicV2Target",
        "probe_acc",
        "maximize",
        "RELICv2 contrastive learning with an invariance KL term on digits",
    ),
    "stylex": (
        "StylExTarget",
        "flip_rate",
        "maximize",
        "StylEx: classifier-conditioned StyleGAN-like generator and AttFind",
    ),
}
for _name, (_cls, _metric, _direction, _doc) in _MODELS.items():
    register_target(
        f"models:{_name}",
        f"autorl.targets.models.{_name}:{_cls}",
        _doc,
        unit="steps",
        metric=_metric,
        direction=_direction,
        space=f"models/{_name}.yaml",
        check=f"autorl.targets.models.{_name}:check_args",
        reconfigurable=True,
        immutable=f"autorl.targets.models.{_name}:{_cls}.immutable",
    )

# An RL agent trained in env steps: what the actor-critic targets and the engine's share.
_RL = {"unit": "env_steps", "direction": "maximize", "reconfigurable": True}
_AC = {
    **_RL,
    "granularity": "autorl.agents.actor_critic:granularity",
    "granule": "batch (num_envs x num_steps)",
}
_ENGINE = {
    **_RL,
    "space": "engine/ppo.yaml",
    "granularity": "autorl.engine.config:granularity",
    "granule": "rollout (n_steps x n_envs)",
    "immutable": "autorl.engine.config:FIXED_KEYS",
    "shared": "autorl.engine.config:FIXED_KEYS",
    "evaluates": True,
    "training_metrics": {"train_return"},  # the training episodes that ended in an interval
}

register_target(
    "agents:actor_critic",
    "autorl.agents.actor_critic:ActorCriticTarget",
    "single-file PyTorch actor-critic (GAE, PPO clipping optional); meta-gradients on gamma, lambda, losses",
    **_AC,
    metric="eval_return",
    space="agents/actor_critic.yaml",
    check="autorl.agents.actor_critic:check_args",
    accepts={"metagrad"},
    training_metrics={"train_return"},  # envdesign's train_return is an evaluation: it declares none
)

register_target(
    "synthetic:curve",
    "autorl.targets.synthetic:CurveTarget",
    "a noisy synthetic learning curve (instant; for tests, smoke suites and benchmarks)",
    unit="steps",
    metric="score",
    direction="maximize",
    space="synthetic/curve.yaml",
    reconfigurable=True,
    evaluates=True,
)
register_target(
    "synthetic:branin",
    "autorl.targets.synthetic:branin",
    "the Branin function with optional seeded noise (instant)",
    unit="evaluations",
    metric="value",
    direction="minimize",
    space="synthetic/branin.yaml",
)

# Environment design (autorl.envs, a layer above this one: registered by reference, never imported here).
register_target(
    "envdesign:sb3",
    "autorl.envs.target:EnvDesignTarget",
    "an SB3 agent on a contextual env family; levels from default, dr, plr (PPO/A2C) or curriculum",
    **_RL,
    metric="heldout_return",
    space="envdesign/ppo.yaml",
    check="autorl.envs.target:check_envdesign",
    granularity="autorl.envs.target:granularity",
    granule="rollout (n_steps x n_envs) for PPO and A2C, one step of every env (n_envs) else",
    immutable="autorl.targets.sb3:IMMUTABLE",
    accepts={"levels"},
)
register_target(
    "envdesign:actor_critic",
    "autorl.envs.ac:EnvDesignACTarget",
    "the meta-gradient actor-critic on a contextual env family; levels from default, dr or curriculum",
    **_AC,
    metric="heldout_return",
    space="agents/actor_critic.yaml",
    check="autorl.envs.ac:check_envdesign_ac",
    accepts={"levels"},
)

# The batched population engine (autorl.engine, registered by reference).
register_target(
    "engine:ppo",
    "autorl.engine.target:EngineTarget",
    "the batched PPO engine: many PPO agents as one torch computation (classic control; batch, PBT)",
    **_ENGINE,
    metric="eval_return",
    check="autorl.engine.config:check_args",
    batch="autorl.engine.target:EngineTarget.batch",
    forks=True,
    handover={"sb3": "autorl.engine.handover:to_sb3"},
)
register_target(
    "envdesign:engine",
    "autorl.envs.engine:EnvDesignEngineTarget",
    "environment design on the batched engine: per-copy levels from default, dr, plr or curriculum",
    **_ENGINE,
    metric="heldout_return",
    check="autorl.envs.checks:check_envdesign_engine",
    batch="autorl.envs.engine:EnvDesignEngineTarget.batch",
    accepts={"levels"},
)
TARGETS.mark_built_in()
