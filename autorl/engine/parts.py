"""The engine's parts by name, importable without torch: the batched envs (:data:`BATCHED_ENVS`), the
policy objectives (:data:`OBJECTIVES`) and the hidden layers' activations (:data:`ACTIVATIONS`).

The process that runs a sweep checks a config against these names and never imports torch; a part is
loaded where a population is built (a worker). The built-in parts are lazy references; a user's env
(:func:`autorl.engine.envs.register_env`) or objective (``OBJECTIVES.register``) is added at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autorl.registry import Registry

if TYPE_CHECKING:
    from autorl.engine.envs import BatchedEnv
    from autorl.engine.objectives import PolicyObjective

BATCHED_ENVS: Registry[type[BatchedEnv]] = Registry("batched env", entry_point_group="autorl.engine_envs")
"""The batched envs by gymnasium id; a plug-in adds one with an ``autorl.engine_envs`` entry point."""
for _name, _cls, _continuous, _summary in (
    ("CartPole-v1", "CartPole", False, "the euler integrator and a reward of 1 per step"),
    ("Acrobot-v1", "Acrobot", False, 'one RK4 step of 0.2 s of the "book" dynamics, without torque noise'),
    ("MountainCar-v0", "MountainCar", False, "velocity clipped to 0.07, position to [-1.2, 0.6]"),
    ("MountainCarContinuous-v0", "MountainCarContinuous", True, "force = the action clipped, times power"),
    ("Pendulum-v1", "Pendulum", True, "torque clipped to max_torque, speed to 8"),
):
    BATCHED_ENVS.register(_name, f"autorl.engine.envs:{_cls}", f"{_name}: {_summary}", continuous=_continuous)
BATCHED_ENVS.mark_built_in()


def continuous(env: str) -> bool:
    """Whether ``env``'s actions are continuous: declared where the env was registered, else read from
    its spec (a plug-in's: that imports it)."""
    entry = BATCHED_ENVS.entry(env)
    declared = entry.extra.get("continuous")
    return bool(declared) if declared is not None else entry.load().spec.n_actions is None


OBJECTIVES: Registry[PolicyObjective] = Registry("ppo objective")
"""PPO's policy objectives by name (``EngineConfig.objective``): see :mod:`autorl.engine.objectives`."""
_CLIP = "autorl.engine.objectives:clipped_surrogate"
OBJECTIVES.register("clip", _CLIP, "PPO's clipped surrogate objective, as SB3 computes it")
OBJECTIVES.mark_built_in()

ACTIVATIONS = ("tanh", "relu")
"""The hidden layers' activations, by ``EngineConfig.activation`` (:mod:`autorl.engine.nets` has them)."""

DTYPES = ("float32", "float64")
"""The precisions of networks, envs and statistics, by ``EngineConfig.dtype``."""
