"""``envdesign:engine``: environment design on the batched engine.

Every env copy of every member plays its own level: when a copy's episode ends, the member's level
sampler (default, dr, plr or curriculum, as for ``envdesign:sb3``) gives it the next level, which the
engine applies as that copy's physical parameters at the reset, with no env rebuilt. Samplers learn from
episode returns (DR, the curricula) and, for PLR, from each level's positive (or L1) value loss over
the rollout, as in Jiang et al. 2021. Held-out levels are evaluated batched: all members of a group at
once, one test level after another, each member on its own evaluation envs.

Arguments and metrics are those of ``envdesign:sb3`` (``family``, ``train_ranges``, ``level_sampler``,
``plr_*``, ``alp_*``, ``curriculum_*``, ``n_test_levels``, ``test_seed``; ``heldout_return``,
``heldout_in_range``, ``heldout_out_of_range``, ``train_return``, ``gen_gap``) plus the engine's
(``engine:ppo``). PLR's ``max_mc`` score needs the returns of a level's every start, which the engine
does not keep: use ``positive_value_loss`` (the default) or ``l1_value_loss``.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from autorl.engine.target import EngineBatch, EngineTarget, Group
from autorl.envs.families import get_family
from autorl.envs.levels import LevelSampler, PrioritizedLevelReplay
from autorl.envs.target import make_sampler, sample_test_levels, segment_scores
from autorl.errors import ConfigError


@dataclass
class MemberLevels:
    """One member's environment design: its sampler, the levels its copies play and the held-out ones."""

    sampler: LevelSampler
    level_of: np.ndarray  # [n_envs] the level each copy plays now (-1: the default)
    started: np.ndarray  # [n_envs] the level each copy played when the rollout began
    queued: list[list[int]] = field(default_factory=list)  # per copy: levels begun during the rollout
    test: list[dict[str, float]] = field(default_factory=list)
    in_range: list[bool] = field(default_factory=list)


class EnvDesignBatch(EngineBatch):
    """An :class:`~autorl.engine.target.EngineBatch` whose members train on levels from a sampler."""

    def prepare(self, config: Any) -> dict[str, Any]:
        """The family's env unless the config names it (checked equal at validation)."""
        return {
            **config,
            "env": get_family(config.get("family", "CartPole")).env_id,
            "level_sampler": config.get("level_sampler", "default"),
        }

    def hooks(self, g: int) -> dict[str, Any]:
        def level_fn(copies: torch.Tensor) -> dict[str, torch.Tensor] | None:
            return self._next(self.groups[g], copies) if g < len(self.groups) else None

        def on_episode_end(copies: torch.Tensor, returns: torch.Tensor) -> None:
            if g < len(self.groups):
                group = self.groups[g]
                n = group.pop.config.n_envs
                for c, r in zip(copies.tolist(), returns.tolist(), strict=True):
                    levels = group.extra[c // n]
                    if levels is not None:
                        levels.sampler.episode_end(int(levels.level_of[c % n]), float(r))

        def on_rollout(copies: torch.Tensor, advantages: torch.Tensor, dones: torch.Tensor) -> None:
            if g < len(self.groups):
                self._score(self.groups[g], copies, advantages, dones)

        return {"level_fn": level_fn, "on_episode_end": on_episode_end, "on_rollout": on_rollout}

    def started(self, group: Group, slot: int, member: int, saved: Any = None) -> None:
        config = self.configs[member]
        family = get_family(config.get("family", "CartPole"))
        if family.env_id != group.pop.spec.name:
            raise ConfigError(
                f"family {family.name!r} is {family.env_id}, but env is {group.pop.spec.name}", "family"
            )
        ranges = family.check_ranges(config.get("train_ranges") or {})
        n = group.pop.config.n_envs
        n_test = int(config.get("n_test_levels", 20))
        test = sample_test_levels(
            family, ranges, n_test, max(n_test // 2, 1), int(config.get("test_seed", 1234))
        )
        inside = [all(ranges[k][0] <= v <= ranges[k][1] for k, v in c.items()) for c in test]
        levels = MemberLevels(
            make_sampler(family, ranges, config, self.seeds[member]),
            np.full(n, -1, dtype=np.int64),
            np.full(n, -1, dtype=np.int64),
            [[] for _ in range(n)],
            [family.validate(c) for c in test],
            inside,
        )
        group.extra[slot] = levels
        if saved is not None:
            levels.sampler.load_state_dict(saved["sampler"])
            levels.level_of = np.asarray(saved["level_of"], dtype=np.int64)
        else:
            copies = torch.arange(slot * n, (slot + 1) * n)
            params = self._next(group, copies)
            if params:
                group.pop.set_level(params, copies=copies)
        levels.started = levels.level_of.copy()
        levels.queued = [[] for _ in range(n)]

    def copied(self, group: Group, src: int, dst: int, source_group: Group | None = None) -> None:
        source, target = (source_group or group).extra[src], group.extra[dst]
        if source is not None and target is not None:  # the sampler's knowledge travels with the agent
            target.sampler.load_state_dict(copy.deepcopy(source.sampler.state_dict()))

    def received(self, group: Group, slot: int, saved: Any) -> None:
        target = group.extra[slot]
        if saved is not None and target is not None:  # the sampler's knowledge travels with the agent
            target.sampler.load_state_dict(saved["sampler"])

    def extra_state(self, extra: Any) -> Any:
        if extra is None:
            return None
        return {"sampler": extra.sampler.state_dict(), "level_of": extra.level_of.tolist()}

    def evaluated(
        self, group: Group, slots: list[int], seeds: list[int] | None = None
    ) -> dict[int, dict[str, float]]:
        """Held-out returns: one batched evaluation per test level, every member of the group at once
        (from ``seeds``, one per slot, where given)."""
        seed_of = dict(zip(slots, seeds, strict=True)) if seeds is not None else {}
        live = [s for s in slots if group.extra[s] is not None]
        if not live:
            return {}
        count = max(len(group.extra[s].test) for s in live)
        scores: dict[int, list[float]] = {s: [] for s in live}
        for i in range(count):  # level i of every member that has one, at once
            now = [s for s in live if i < len(group.extra[s].test)]
            for s in now:
                group.pop.set_level(group.extra[s].test[i], member=s, evaluation=True)
            given = [seed_of[s] for s in now] if seed_of else None
            returns = group.pop.evaluate(episodes=1, members=now, seeds=given).tolist()
            for s in now:
                scores[s].append(float(returns[s]))
        out = {}
        for s in live:
            levels = group.extra[s]
            group.pop.set_level(levels.sampler.family.default(), member=s, evaluation=True)
            held = scores[s]
            inside = [x for x, i in zip(held, levels.in_range, strict=True) if i]
            outside = [x for x, i in zip(held, levels.in_range, strict=True) if not i]
            metrics = {
                "heldout_return": float(np.mean(held)),
                "heldout_in_range": float(np.mean(inside)) if inside else float("nan"),
            }
            if outside:
                metrics["heldout_out_of_range"] = float(np.mean(outside))
            out[s] = metrics
        return out

    def passed(self, group: Group, slots: list[int]) -> None:
        """As :meth:`evaluated` would: one evaluation per test level of each slot's, after the default's."""
        super().passed(group, slots)
        for s in slots:
            if group.extra[s] is not None:
                group.pop.pass_evaluation([s], times=len(group.extra[s].test))

    def train(
        self, steps: int, members: Sequence[int] | None = None, evaluate: Collection[int] | None = None
    ) -> dict[int, dict[str, float]]:
        out = super().train(steps, members, evaluate)
        for metrics in out.values():
            if "heldout_return" in metrics:
                metrics["gen_gap"] = metrics["train_return"] - metrics["heldout_return"]
        return out

    def _next(self, group: Group, copies: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """The next level of each copy in ``copies`` from its member's sampler, as parameter tensors."""
        n = group.pop.config.n_envs
        rows = []
        for c in copies.tolist():
            levels = group.extra[c // n]
            if levels is None:
                return None
            level_id, ctx = levels.sampler.sample()
            levels.level_of[c % n] = level_id
            levels.queued[c % n].append(level_id)
            rows.append(levels.sampler.family.validate(ctx))
        if not rows:
            return None
        return {k: torch.tensor([r[k] for r in rows], dtype=torch.float64) for k in rows[0]}

    def _score(
        self, group: Group, copies: torch.Tensor, advantages: torch.Tensor, dones: torch.Tensor
    ) -> None:
        """PLR's score of each (copy, episode) segment of the rollout; then the rollout's bookkeeping
        starts again from the levels the copies now play."""
        n = group.pop.config.n_envs
        adv, done = advantages.double().cpu().numpy(), dones.cpu().numpy()
        slots = sorted(dict.fromkeys(c // n for c in copies.tolist()))
        for row, slot in enumerate(slots):
            levels = group.extra[slot]
            if levels is None:
                continue
            if isinstance(levels.sampler, PrioritizedLevelReplay):
                ids = np.empty(done[row].shape, dtype=np.int64)  # [n_steps, n_envs]: the level played
                for e in range(n):
                    begun, current = list(levels.queued[e]), int(levels.started[e])
                    for t in range(ids.shape[0]):
                        ids[t, e] = current
                        if done[row][t, e] and begun:
                            current = begun.pop(0)
                for level, score in segment_scores(
                    adv[row], adv[row], np.zeros_like(adv[row]), ids, done[row], levels.sampler.cfg.score, {}
                ):
                    if level >= 0:
                        levels.sampler.update(level, score)
            levels.started = levels.level_of.copy()
            levels.queued = [[] for _ in range(n)]


class EnvDesignEngineTarget(EngineTarget):
    """One configuration of ``envdesign:engine`` (the executors batch them through :attr:`batch`)."""

    batch: ClassVar[type[EngineBatch]] = EnvDesignBatch

    def levels(self) -> MemberLevels:
        """The member's level sampler and held-out levels."""
        g, slot = self.engine.where[0]
        levels = self.engine.groups[g].extra[slot]
        assert levels is not None
        return levels
