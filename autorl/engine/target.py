"""``engine:ppo``: the batched PPO engine as a target every method drives.

A configuration's keys fall into three kinds:

- **tensor hyperparameters** (:data:`~autorl.engine.config.HYPERPARAMS`: ``learning_rate``,
  ``clip_range``, ``ent_coef``, ``vf_coef``, ``gamma``, ``gae_lambda``, ``max_grad_norm``,
  ``adam_eps``): ``[P]`` tensors, different per member and changeable at any time (PBT's explore
  writes them, no rebuild);
- **shape keys** (``n_envs``, ``n_steps``, ``n_epochs``, ``n_minibatches``, ``objective``, ``hidden``,
  ``activation``, normalisation, schedules): shared within a *group*; configurations that differ in
  them train as separate populations;
- **arguments** (``env``, ``device``, ``threads``, ``eval_episodes``, and for environment design
  ``level_sampler``, ``family``, ... as for ``envdesign:sb3``).

:class:`EngineBatch` trains any number of configurations (members) at once, grouped by shape; it is
what the executors use for a batch of trials (``batch: P``) and for a PBT/PB2 population (copies are
index copies). :class:`EngineTarget` is one configuration, a plain Trainable, for everything else.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from autorl.engine.config import ARG_KEYS, SHAPE_KEYS, EngineConfig, engine_config, hparams_of
from autorl.engine.ppo import Population
from autorl.errors import ConfigError
from autorl.targets.base import TrialContext


def group_key(config: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a configuration's group is: its shape keys (and env, device)."""
    return tuple(repr(config.get(k)) for k in (*SHAPE_KEYS, *ARG_KEYS))


@dataclass
class Group:
    """One population: configurations of one shape. ``members[slot]`` is the batch member in a slot
    (None: a free slot, reusable for a configuration of this shape); ``extra[slot]`` is what a
    subclass keeps per slot (environment design: the member's level sampler)."""

    key: tuple[Any, ...]
    pop: Population
    members: list[int | None]
    extra: list[Any]


class EngineBatch:
    """Configurations trained together: one :class:`~autorl.engine.ppo.Population` per group of
    configurations with equal shape keys. Members are numbered as given (0..n-1) and keep their number
    for life; a member added later gets the next number.

    Args:
        configs: One configuration per member (arguments and hyperparameters).
        seeds: One seed per member.
        budget: Each member's budget (env steps): where linear schedules end.
        out: Where environment design writes its per-level tables (None: nowhere).
    """

    def __init__(
        self, configs: Sequence[Mapping[str, Any]], seeds: Sequence[int], budget: int, out: Path | None = None
    ) -> None:
        self.budget, self.out = budget, out
        self.seconds = {"train": 0.0, "evaluate": 0.0}  # where train() spent its time, summed
        self.groups: list[Group] = []
        self.where: dict[int, tuple[int, int]] = {}  # member -> (group index, slot)
        self.configs: dict[int, dict[str, Any]] = {}
        self.seeds: dict[int, int] = {}
        pending: dict[tuple[Any, ...], list[int]] = {}
        for i, c in enumerate(configs):
            c = self.prepare(c)
            self.configs[i], self.seeds[i] = c, int(seeds[i])
            pending.setdefault(group_key(c), []).append(i)
        torch.set_num_threads(int(configs[0].get("threads", 1)) if configs else 1)
        for key, members in pending.items():
            self._new_group(key, members)

    # -- building -------------------------------------------------------------------------------------
    def _new_group(self, key: tuple[Any, ...], members: list[int]) -> None:
        first = self.configs[members[0]]
        cfg = engine_config(first, self.budget)
        g = len(self.groups)
        hparams = [hparams_of(self.configs[m]) for m in members]
        pop = Population(cfg, hparams, [self.seeds[m] for m in members], **self.hooks(g))
        group = Group(key, pop, list(members), [None] * len(members))
        self.groups.append(group)
        for slot, m in enumerate(members):
            self.where[m] = (g, slot)
            self.started(group, slot, m)

    def add(self, config: Mapping[str, Any], seed: int) -> int:
        """A new member (a refilled slot): it reuses a free slot of its shape, else starts a group."""
        m = max(self.configs, default=-1) + 1
        config = self.prepare(config)
        self.configs[m], self.seeds[m] = config, int(seed)
        key = group_key(config)
        for g, group in enumerate(self.groups):
            if group.key == key and None in group.members:
                slot = group.members.index(None)
                group.members[slot] = m
                self.where[m] = (g, slot)
                group.pop.reset_member(slot, hparams_of(config), seed)
                self.started(group, slot, m)
                return m
        self._new_group(key, [m])
        return m

    def remove(self, member: int) -> None:
        """Free a member's slot (a pruned or finished trial); it trains no more."""
        g, slot = self.where.pop(member)
        self.groups[g].members[slot] = None

    @property
    def members(self) -> list[int]:
        return sorted(self.where)

    # -- training -------------------------------------------------------------------------------------
    def train(
        self, steps: int, members: Sequence[int] | None = None, evaluate: Collection[int] | None = None
    ) -> dict[int, dict[str, float]]:
        """Train ``members`` (default: all) ``steps`` env steps each, then evaluate those of them in
        ``evaluate`` (default: all that trained), batched; returns each member's metrics:
        ``train_return``, losses, ``budget`` and, where evaluated, ``eval_return`` (and what
        :meth:`evaluated` adds). A member that failed gets ``eval_return`` nan, evaluated or not."""
        chosen = self.members if members is None else list(members)
        judge = set(chosen) if evaluate is None else set(evaluate)
        out: dict[int, dict[str, float]] = {}
        for g, group in enumerate(self.groups):
            slots = [self.where[m][1] for m in chosen if self.where.get(m, (None,))[0] == g]
            if not slots:
                continue
            start = time.perf_counter()
            stats = group.pop.train(steps, slots)
            self.seconds["train"] += time.perf_counter() - start
            # only those that trained; a failed member too (its metrics become nan at no cost); the
            # others' evaluation streams move as if evaluated, so what is evaluated later is unchanged
            asked: list[int] = []
            passed: list[int] = []
            for s, row in zip(slots, stats, strict=True):
                (asked if group.members[s] in judge or row["failed"] else passed).append(s)
            judged = self._judge(group, asked) if asked else {}
            if passed:
                self.passed(group, passed)
            for slot, row in zip(slots, stats, strict=True):
                member = group.members[slot]
                assert member is not None
                metrics = {k: float(v) for k, v in row.items()}
                metrics["train_return"] = metrics.pop("episode_return")
                metrics.update(judged.get(slot, {}))
                if metrics.pop("failed"):
                    metrics["eval_return"] = float("nan")
                out[member] = metrics
        return out

    def evaluate(self, seeds: Mapping[int, int]) -> dict[int, dict[str, float]]:
        """Evaluate members (``{member: seed}``) as they stand, training nothing, on episodes started from
        their seeds (members given one seed start alike); each member's ``eval_return`` and what
        :meth:`evaluated` adds. No random stream moves."""
        out: dict[int, dict[str, float]] = {}
        for g, group in enumerate(self.groups):
            chosen = [m for m in seeds if self.where.get(m, (None,))[0] == g]
            if not chosen:
                continue
            slots = [self.where[m][1] for m in chosen]
            judged = self._judge(group, slots, [seeds[m] for m in chosen])
            out.update({member: judged[slot] for member, slot in zip(chosen, slots, strict=True)})
        return out

    def _judge(
        self, group: Group, slots: list[int], seeds: list[int] | None = None
    ) -> dict[int, dict[str, float]]:
        """``slots``' evaluation (from ``seeds`` where given, else their own streams), batched: each
        slot's ``eval_return`` and what :meth:`evaluated` adds."""
        start = time.perf_counter()
        returns = group.pop.evaluate(members=slots, seeds=seeds).tolist()
        extra = self.evaluated(group, slots, seeds)
        self.seconds["evaluate"] += time.perf_counter() - start
        return {slot: {"eval_return": float(returns[slot]), **extra.get(slot, {})} for slot in slots}

    def set_hparams(self, member: int, config: Mapping[str, Any]) -> None:
        g, slot = self.where[member]
        changed = [k for k in SHAPE_KEYS if k in config and config[k] != self.configs[member].get(k)]
        if changed:
            raise ConfigError(
                f"engine:ppo cannot change {changed[0]!r} mid-run: it is a shape of the computation",
                changed[0],
            )
        self.groups[g].pop.set_hparams(slot, hparams_of(config))
        self.configs[member].update(config)

    def copy(self, src: int, dst: int, config: Mapping[str, Any]) -> None:
        """``dst`` takes ``src``'s agent (weights, Adam, statistics; its level sampler's state too),
        then ``config``'s hyperparameters: an index copy, no file."""
        self._take(src, dst, config, fork=False)

    def fork(self, src: int, dst: int, config: Mapping[str, Any]) -> None:
        """``dst`` becomes all that ``src`` is, its envs and random stream too (so both collect the same
        next rollout), then takes ``config``'s hyperparameters: what it does with the same batch."""
        self._take(src, dst, config, fork=True)

    def agent(self, member: int) -> dict[str, Any]:
        """Member ``member``'s agent as plain data that can travel to another process (a shard of the
        same population): :meth:`put_agent` there makes one of its members this agent."""
        g, slot = self.where[member]
        group = self.groups[g]
        return {
            "shape": list(group.key),
            # numpy, not tensors: a tensor in a pipe travels as shared memory, which needs the
            # receiving process to be torch's child; arrays pickle plainly (and Ray stores them well)
            "agent": {name: t.cpu().numpy() for name, t in group.pop.agent(slot).items()},
            "extra": self.extra_state(group.extra[slot]),
        }

    def put_agent(self, dst: int, agent: Mapping[str, Any], config: Mapping[str, Any]) -> None:
        """``dst`` takes ``agent`` (from :meth:`agent` of another batch), then ``config``'s
        hyperparameters: :meth:`copy` across processes."""
        g, slot = self.where[dst]
        group = self.groups[g]
        if list(group.key) != list(agent["shape"]):
            raise ValueError(f"member {dst} has another shape than the agent: a copy needs one shape")
        group.pop.put_agent(slot, {name: torch.as_tensor(a) for name, a in agent["agent"].items()})
        self.received(group, slot, agent["extra"])
        self.configs[dst] = {**self.configs[dst], **config}
        self.set_hparams(dst, config)

    def _take(self, src: int, dst: int, config: Mapping[str, Any], fork: bool) -> None:
        (gs, ss), (gd, sd) = self.where[src], self.where[dst]
        source, group = self.groups[gs], self.groups[gd]
        if source.key != group.key:
            raise ValueError(f"members {src} and {dst} have different shapes: a copy needs one shape")
        (group.pop.fork if fork else group.pop.copy)(ss, sd, source.pop)
        self.copied(group, ss, sd, source)
        self.configs[dst] = {**self.configs[src], **config}
        self.set_hparams(dst, config)

    # -- saving ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything, as tensors and plain data (``torch.load(weights_only=True)`` reads it)."""
        return {
            "budget": self.budget,
            "configs": {str(m): c for m, c in self.configs.items()},
            "seeds": {str(m): s for m, s in self.seeds.items()},
            "groups": [
                {
                    "members": list(g.members),
                    "pop": g.pop.state_dict(),
                    "extra": [self.extra_state(x) for x in g.extra],
                }
                for g in self.groups
            ],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.budget = int(state["budget"])
        self.configs = {int(m): dict(c) for m, c in state["configs"].items()}
        self.seeds = {int(m): int(s) for m, s in state["seeds"].items()}
        self.groups, self.where = [], {}
        for g, saved in enumerate(state["groups"]):
            members = saved["members"]
            live = [m for m in members if m is not None]
            first = self.configs[live[0]] if live else {}
            cfg = EngineConfig.from_dict(saved["pop"]["config"])
            n = len(members)
            pop = Population(cfg, [{}] * n, list(range(n)), **self.hooks(g))
            pop.load_state_dict(saved["pop"])
            group = Group(group_key(first), pop, list(members), [None] * n)
            self.groups.append(group)
            for slot, m in enumerate(members):
                if m is not None:
                    self.where[m] = (g, slot)
                    self.started(group, slot, m, saved["extra"][slot])

    def member_state(self, member: int) -> dict[str, Any]:
        """One member's policy (:func:`autorl.engine.ppo.load_policy` runs it on a gymnasium env)."""
        g, slot = self.where[member]
        return self.groups[g].pop.member_state(slot)

    # -- what a subclass (environment design) adds --------------------------------------------------
    def prepare(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """A member's configuration as this batch uses it."""
        return dict(config)

    def hooks(self, g: int) -> dict[str, Any]:
        """Keyword arguments for group ``g``'s Population (its level hooks)."""
        return {}

    def started(self, group: Group, slot: int, member: int, saved: Any = None) -> None:
        """A member starts in ``slot`` (new, refilled, or restored from ``saved``)."""

    def copied(self, group: Group, src: int, dst: int, source: Group | None = None) -> None:
        """Slot ``dst`` of ``group`` took slot ``src``'s agent (of ``source``, default ``group``)."""

    def received(self, group: Group, slot: int, saved: Any) -> None:
        """Slot ``slot`` took an agent from another process, with what :meth:`extra_state` saved of it."""

    def passed(self, group: Group, slots: list[int]) -> None:
        """``slots`` trained but are not evaluated: move their evaluation streams as :meth:`_judge` would."""
        group.pop.pass_evaluation(slots)

    def evaluated(
        self, group: Group, slots: list[int], seeds: list[int] | None = None
    ) -> dict[int, dict[str, float]]:
        """Metrics to add for the just-trained or evaluated ``slots`` (environment design: held-out
        returns), on episodes started from ``seeds`` (one per slot) where given."""
        return {}

    def extra_state(self, extra: Any) -> Any:
        """A slot's ``extra`` as plain data for :meth:`state_dict`."""
        return None


class EngineTarget:
    """One configuration on the engine, as a Trainable (``seeds_per_trial`` gives several instances).

    The executors run batches of trials and PBT populations through :attr:`batch` instead.
    """

    batch: ClassVar[type[EngineBatch]] = EngineBatch

    def __init__(self, config: dict[str, Any], ctx: TrialContext) -> None:
        self.engine = self.batch([config], [ctx.seed], ctx.budget, ctx.checkpoint_dir)

    def train(self, budget: int) -> dict[str, float]:
        return self.engine.train(budget)[0]

    def evaluate(self, seed: int) -> dict[str, float]:
        """The agent as it stands on episodes started from ``seed``, training nothing."""
        return self.engine.evaluate({0: seed})[0]

    def reconfigure(self, config: dict[str, Any]) -> None:
        self.engine.set_hparams(0, config)

    def save(self, path: Path) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        torch.save(self.engine.state_dict(), Path(path) / "engine.pt")

    def load(self, path: Path) -> None:
        self.engine.load_state_dict(
            torch.load(Path(path) / "engine.pt", weights_only=True, map_location="cpu")
        )

    def member_state(self) -> dict[str, Any]:
        """The trained policy (:func:`autorl.engine.ppo.load_policy` runs it on a gymnasium env)."""
        return self.engine.member_state(0)
