"""A gymnasium wrapper that applies a level (a context) of a family at every reset."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym

from autorl.envs.families import Context, Family, get_family

# A level source: returns (level id, context) for the next episode.
LevelSource = Callable[[], tuple[int, Context]]
# Told (level id, undiscounted return) when an episode ends: how a sampler learns from any agent.
EpisodeEnd = Callable[[int, float], None]


class ContextualEnv(gym.Wrapper):
    """Applies ``reset(options={"context": {...}})``, else the next level of ``source``, else the default.

    ``info["level_id"]`` (-1 for an explicit or default context) and ``info["context"]`` are set on
    reset and on every step, so a callback can map transitions to levels. ``on_episode_end`` is called
    with the level id and the episode's return when it terminates or is truncated.
    """

    def __init__(
        self,
        env: gym.Env | None = None,
        family: Family | str = "CartPole",
        source: LevelSource | None = None,
        on_episode_end: EpisodeEnd | None = None,
    ) -> None:
        fam = get_family(family) if isinstance(family, str) else family
        super().__init__(env if env is not None else gym.make(fam.env_id))
        self.family = fam
        self.source = source
        self.on_episode_end = on_episode_end
        self.level_id = -1
        self.episode_return = 0.0
        self.context: Context = fam.default()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        options = dict(options or {})
        if "context" in options:
            self.level_id, ctx = -1, options.pop("context")
        elif self.source is not None:
            self.level_id, ctx = self.source()
        else:
            self.level_id, ctx = -1, self.family.default()
        self.context = self.family.apply(self.env, ctx)
        self.episode_return = 0.0
        obs, info = self.env.reset(seed=seed, options=options or None)
        return obs, {**info, "level_id": self.level_id, "context": self.context}

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.episode_return += float(reward)
        if (terminated or truncated) and self.on_episode_end is not None:
            self.on_episode_end(self.level_id, self.episode_return)
        return obs, reward, terminated, truncated, {**info, "level_id": self.level_id}
