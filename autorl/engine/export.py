"""A trained engine member as a stable-baselines3 PPO model, for the tools that read SB3 models.

:func:`to_sb3` builds an SB3 ``PPO`` whose ``MlpPolicy`` holds the member's actor, critic and log std;
its env is the member's task, wrapped in a frozen ``VecNormalize`` with the member's statistics when
it normalised observations (SB3 keeps those statistics in the env, not in the model). :func:`save_sb3`
writes the pair as SB3 and rl-zoo3 lay it out: ``model.zip`` and, when normalising, ``vecnormalize.pkl``.
The model predicts what :func:`autorl.engine.ppo.load_policy` does; training it further is SB3's PPO
with SB3's defaults (the member's hyperparameters are in ``member_state["hparams"]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch


def to_sb3(member_state: Mapping[str, Any], *, device: str = "cpu") -> Any:
    """An SB3 ``PPO`` with the policy of ``member_state`` (from :meth:`Population.member_state`).

    ``model.get_env()`` is a one-env ``DummyVecEnv`` of the member's task, wrapped in a ``VecNormalize``
    (``training=False``, observations only) when the member normalised observations: step that env, or
    normalise with its ``normalize_obs``, before ``model.predict``.
    """
    import torch.nn as nn
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    env: Any = DummyVecEnv([lambda: gym.make(member_state["env"])])
    if member_state["normalize_obs"]:
        env = VecNormalize(
            env,
            training=False,
            norm_obs=True,
            norm_reward=False,
            clip_obs=float(member_state["clip_obs"]),
            epsilon=float(member_state["obs_eps"]),
        )
        env.obs_rms.mean = member_state["obs_mean"].double().numpy().copy()
        env.obs_rms.var = member_state["obs_var"].double().numpy().copy()
    hidden = [int(w.shape[1]) for w, _ in member_state["actor"][:-1]]
    activation = {"tanh": nn.Tanh, "relu": nn.ReLU}[member_state["activation"]]
    model = PPO(
        "MlpPolicy",
        env,
        policy_kwargs={"net_arch": {"pi": hidden, "vf": hidden}, "activation_fn": activation},
        device=device,
        verbose=0,
    )
    policy = model.policy
    extractor = policy.mlp_extractor
    with torch.no_grad():
        for layers, net, head in (
            (member_state["actor"], extractor.policy_net, policy.action_net),
            (member_state["critic"], extractor.value_net, policy.value_net),
        ):
            linears = [m for m in (*net, head) if isinstance(m, nn.Linear)]
            for (weight, bias), linear in zip(layers, linears, strict=True):
                linear.weight.copy_(weight.T)  # the engine stores [in, out], nn.Linear [out, in]
                linear.bias.copy_(bias)
        if member_state["log_std"] is not None:
            policy.log_std.copy_(member_state["log_std"])
    return model


def save_sb3(member_state: Mapping[str, Any], directory: str | Path) -> Path:
    """Write ``member_state`` as ``directory/model.zip`` (``PPO.load``) and, when the member normalised
    observations, ``directory/vecnormalize.pkl`` (``VecNormalize.load``). Returns ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = to_sb3(member_state)
    model.save(directory / "model.zip")
    if member_state["normalize_obs"]:
        model.get_env().save(str(directory / "vecnormalize.pkl"))
    return directory
