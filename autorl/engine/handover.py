"""An ``engine:ppo`` configuration as stable-baselines3 trains it: the ``sb3:ppo`` target's configuration
that is the same PPO (:func:`to_sb3`), so that a configuration found on the engine is handed over to
SB3 with every setting SB3 needs, VecNormalize's gamma included.

The engine is SB3's PPO (docs/engine.md); what does not map is refused in one line naming the key: a
policy objective other than PPO's clipped surrogate, normalising observations without rewards or the
reverse (the ``sb3:ppo`` target's ``normalize`` does both, as rl-zoo3 does), an Adam epsilon other than
SB3's 1e-5, and float64. Speed-only arguments (``device``, ``threads``, ``compile``) do not carry over.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autorl.engine.config import DEFAULT_HPARAMS, HYPERPARAMS, EngineConfig
from autorl.engine.parts import continuous
from autorl.errors import ConfigError

SB3_ADAM_EPS = 1e-5  # SB3's ActorCriticPolicy: Adam with eps 1e-5, as the engine's default


def to_sb3(config: Mapping[str, Any]) -> dict[str, Any]:
    """``{"target": "sb3:ppo", "args": ..., "params": ...}`` for an engine configuration (its args and
    params in one mapping, as a trial gets them); ConfigError naming the key SB3 has no equivalent for."""
    values: dict[str, Any] = {**_defaults(), **config}
    get = values.__getitem__
    if get("objective") != "clip":
        raise ConfigError(f"SB3's PPO has only the clipped objective, not {get('objective')!r}", "objective")
    if str(values.get("dtype", "float32")) not in ("float32", "torch.float32"):
        raise ConfigError("SB3 trains in float32", "dtype")
    if get("adam_eps") != SB3_ADAM_EPS:
        raise ConfigError(
            f"SB3's PPO uses Adam with eps {SB3_ADAM_EPS:g}, not {get('adam_eps')!r}", "adam_eps"
        )
    if bool(get("normalize_obs")) != bool(get("normalize_reward")):
        raise ConfigError(
            "sb3:ppo's normalize wraps observations and rewards together (VecNormalize, as rl-zoo3 does); "
            f"normalize_obs={get('normalize_obs')} with normalize_reward={get('normalize_reward')} has no "
            "equivalent",
            "normalize_obs",
        )
    n_envs, n_steps, n_minibatches = int(get("n_envs")), int(get("n_steps")), int(get("n_minibatches"))
    hidden = get("hidden")
    args = {
        "env": get("env"),
        "n_envs": n_envs,
        "eval_episodes": int(get("eval_episodes")),
        "normalize": bool(get("normalize_obs")),  # its VecNormalize discounts with the config's gamma
    }
    params: dict[str, Any] = {name: float(get(name)) for name in HYPERPARAMS if name != "adam_eps"}
    params |= {
        "n_steps": n_steps,
        "batch_size": n_envs * n_steps // n_minibatches,
        "n_epochs": int(get("n_epochs")),
        "net_arch": [int(hidden)] * 2 if isinstance(hidden, int) else [int(w) for w in hidden],
        "activation_fn": get("activation"),
        "ortho_init": bool(get("ortho_init")),
    }
    try:
        is_continuous = continuous(get("env"))
    except ConfigError as exc:  # an unknown env, named with its key
        raise ConfigError(exc.rule, "env") from None
    if is_continuous:  # continuous actions: the Gaussian's log std
        params["log_std_init"] = float(get("log_std_init"))
    for name, schedule in (("learning_rate", "lr_schedule"), ("clip_range", "clip_schedule")):
        if get(schedule) == "linear":  # rl-zoo3's lin_<x>: from x to 0 over the run, as the engine does
            params[name] = f"lin_{params[name]!r}"
    handed: dict[str, Any] = {"target": "sb3:ppo", "args": args, "params": params}
    if args["normalize"]:  # for an SB3 user without autorl: the wrapper the sb3:ppo target builds
        handed["vecnormalize"] = {"norm_obs": True, "norm_reward": True, "gamma": params["gamma"]}
    return handed


def _defaults() -> dict[str, Any]:
    """The engine's defaults for every key :func:`to_sb3` reads."""
    fields = EngineConfig.__dataclass_fields__
    keys = ("objective", "n_envs", "n_steps", "n_epochs", "n_minibatches", "hidden", "activation",
            "normalize_obs", "normalize_reward", "lr_schedule", "clip_schedule", "log_std_init",
            "ortho_init", "eval_episodes")  # fmt: skip
    return {"env": "CartPole-v1", **{k: fields[k].default for k in keys}, **DEFAULT_HPARAMS}
