"""Batched PPO: a population of PPO agents trained as one torch computation.

P members, each with its own E envs (together one :class:`~autorl.engine.envs.BatchedEnv` of P * E
copies), networks kept as stacked parameters (one flat ``[P, n_params]`` tensor, viewed as ``[P, in,
out]`` layers for ``torch.baddbmm``), hyperparameters as ``[P]`` tensors that may change between any
two calls, and a counter-based random stream per member (:mod:`autorl.engine.rng`) for actions, env
resets and minibatch order. So member i of a population trains as the same config alone with the same
seed (up to the rounding of batched matmuls), and a member that diverges is marked failed without
touching the others.

The algorithm is Stable-Baselines3's PPO with its defaults: MlpPolicy's separate 64-64 tanh actor and
critic with orthogonal init, Adam with eps 1e-5, the clipped surrogate (or another objective of
:data:`~autorl.engine.objectives.OBJECTIVES`), an unclipped value loss, advantages normalised per
minibatch, truncated episodes bootstrapped from their final observation, the learning rate and clip
range schedules read after each rollout, and VecNormalize's observation and reward normalisation
(clip 10). Continuous actions are a diagonal Gaussian with a state-independent log std (no gSDE),
clipped to the action space for the env step only.

This module is the algorithm (rollout, GAE, update, evaluation, saving); its parts are modules of their
own: :mod:`~autorl.engine.config` (the shared config and the hyperparameters' rules),
:mod:`~autorl.engine.nets` (the batched networks), :mod:`~autorl.engine.members` (the members' tensors
and the rollout buffer), :mod:`~autorl.engine.normalize`, :mod:`~autorl.engine.adam` and
:mod:`~autorl.engine.objectives`.

Example::

    pop = Population(EngineConfig("CartPole-v1"), [{"learning_rate": 1e-3}] * 4, seeds=range(4))
    for _ in range(25):
        stats = pop.train(4_000)           # one dict per member
        returns = pop.evaluate()           # [4]
    torch.save(pop.member_state(int(returns.argmax())), "agent.pt")

A saved member drives a single gymnasium env with numpy alone::

    policy = load_policy(torch.load("agent.pt", weights_only=True))
    env = gymnasium.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    done = False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        done = terminated or truncated
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from autorl.engine import rng
from autorl.engine.adam import adam_step
from autorl.engine.config import DEFAULT_HPARAMS, HYPERPARAMS, EngineConfig, check_hparams
from autorl.engine.envs import BatchedEnv, make
from autorl.engine.members import _COPIED, _Members, _Rollout
from autorl.engine.nets import _entropy_categorical, _Layout, _mlp
from autorl.engine.normalize import CLIP, EPS, normalize, scale, update_moments
from autorl.engine.objectives import OBJECTIVES
from autorl.errors import ConfigError
from autorl.registry import unknown_name

_EVAL = 1  # each member's random stream for evaluation starts; training draws from stream 0
_SEEDED = 2  # evaluation starts drawn from a given seed (a race's): the same for every member given it
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_STATE_FORMAT = 1

LevelFn = Callable[[Tensor], "Mapping[str, Tensor] | None"]
"""``level_fn(copies)``: physical parameters ``{name: [m] tensor}`` for episodes starting in ``copies``."""
EpisodeHook = Callable[[Tensor, Tensor], None]
"""``on_episode_end(copies, returns)``: the copies ``[m]`` whose episode just ended, and its returns."""
RolloutHook = Callable[[Tensor, Tensor, Tensor], None]
"""``on_rollout(copies, advantages, dones)``: after each rollout's GAE, the copy ids ``[k * n_envs]`` of the
trained members and their advantages and episode ends ``[k, n_steps, n_envs]`` (PLR scores levels by them)."""

_STATS = (
    "policy_loss",
    "value_loss",
    "entropy_loss",
    "loss",
    "approx_kl",
    "clip_fraction",
)


class Population:
    """P PPO agents of one :class:`EngineConfig`, trained together; each has its own hyperparameters,
    seed, envs and random stream.

    Args:
        config: The shared shapes.
        hparams: One mapping per member of hyperparameters (:data:`HYPERPARAMS`) overriding
            :data:`DEFAULT_HPARAMS`.
        seeds: One seed per member: its initial weights, its envs' and its actions' random stream.
        level_fn: Optional ``level_fn(copies) -> {name: [m] tensor} | None``, called with the ids
            ``[m]`` (int64; member = ``copy // n_envs``) of the training env copies that start an
            episode: all copies at construction, a member's copies in :meth:`reset_member`, and, after
            every training step where episodes ended, those copies (their next episode started in that
            step; the classic-control tasks draw initial states independently of the parameters). The
            returned parameters apply to those copies; None keeps theirs.
        on_episode_end: Optional ``on_episode_end(copies, returns)``: after every training step where
            episodes ended, the ids ``[m]`` of those copies and their undiscounted returns ``[m]``
            (raw rewards), called before ``level_fn``, so a level sampler can score the level it gave.
        on_rollout: Optional ``on_rollout(copies, advantages, dones)`` after every rollout's advantages
            (:data:`RolloutHook`): what Prioritized Level Replay scores a level by.

    The hooks cost a device sync per step and are not saved by :meth:`state_dict`. Copy ids are
    positions in this population, ``member * n_envs + env``.
    """

    def __init__(
        self,
        config: EngineConfig,
        hparams: Sequence[Mapping[str, float]],
        seeds: Sequence[int],
        *,
        level_fn: LevelFn | None = None,
        on_episode_end: EpisodeHook | None = None,
        on_rollout: RolloutHook | None = None,
    ) -> None:
        hparams, seeds = list(hparams), [int(s) for s in seeds]
        if len(hparams) != len(seeds) or not seeds:
            raise ValueError(
                f"hparams and seeds must have one entry per member (at least one), got {len(hparams)} "
                f"and {len(seeds)}"
            )
        self.config = config
        self.spec = config.spec
        self.level_fn = level_fn
        self.on_episode_end = on_episode_end
        self.on_rollout = on_rollout
        self._layout = _Layout.of(config)
        self._activation = config.activation
        self._objective = OBJECTIVES.get(config.objective)
        self._minibatch = torch.compile(self._minibatch_grad) if config.compile else self._minibatch_grad
        self._m = _Members.cat([self._fresh(h, s) for h, s in zip(hparams, seeds, strict=True)])
        self._start_levels(torch.arange(len(seeds) * config.n_envs, device=config.device))

    # -- the population's shape and bookkeeping ---------------------------------------------------------

    @property
    def size(self) -> int:
        """P, the number of members."""
        return int(self._m.seed.shape[0])

    @property
    def steps(self) -> Tensor:
        """``[P]`` int64: env steps each member has trained (a copy)."""
        return self._m.steps.clone()

    @property
    def failed(self) -> Tensor:
        """``[P]`` bool: members whose loss, gradients or parameters went non-finite (a copy).

        A failed member keeps its last finite parameters and is left out of training (and has nan as
        its evaluation) until :meth:`copy` or :meth:`reset_member` gives its slot a working agent.
        """
        return self._m.failed.clone()

    def hparams(self, member: int) -> dict[str, float]:
        """Member ``member``'s hyperparameters."""
        member = self._member(member)
        return {name: float(t[member]) for name, t in self._m.hp.items()}

    def set_hparams(self, member: int, values: Mapping[str, float]) -> None:
        """Change some of a member's hyperparameters; they apply from its next rollout or update.

        Raises:
            ConfigError: (a ValueError) for an unknown name, listing the valid ones, or a value out of
                range; nothing is changed then.
        """
        member = self._member(member)
        for name, value in check_hparams(values).items():
            self._m.hp[name][member] = value

    def copy(self, src: int, dst: int, source: Population | None = None) -> None:
        """Make member ``dst`` a copy of member ``src``'s agent (of ``source``, a population of the same
        config; default this one): network parameters, Adam state (moments and step), normalisation
        statistics, step counter and failed flag.

        ``dst`` keeps its own hyperparameters, envs (states, levels, running returns) and random stream,
        but a ``dst`` that had failed starts fresh episodes: its envs may hold what its failure left
        (non-finite states and returns), which would fail the copy at once.
        """
        self.put_agent(dst, self._same_config(source).agent(src))

    def agent(self, member: int) -> dict[str, Tensor]:
        """Member ``member``'s agent, what :meth:`copy` takes, as plain tensors (their own copies) that
        can travel to another process: :meth:`put_agent` makes a member of another population of the
        same config that agent."""
        taken = self._m.select(torch.tensor([self._member(member)], device=self.config.device)).flat()
        return {name: t.clone() for name, t in taken.items() if name.partition("/")[0] in _COPIED}

    def put_agent(self, dst: int, agent: Mapping[str, Tensor]) -> None:
        """Make member ``dst`` the ``agent`` (from :meth:`agent`), as :meth:`copy` does."""
        member = self._member(dst)
        failed = bool(self._m.failed[member])
        mine = self._m.flat()
        for name, t in agent.items():
            mine[name][member : member + 1] = t.to(mine[name].device)
        if failed:
            self._restart_envs(member)

    def fork(self, src: int, dst: int, source: Population | None = None) -> None:
        """Make member ``dst`` a fork of member ``src`` (of ``source``, default this population):
        everything ``src`` is, its hyperparameters, envs and random stream included, so both collect the
        same next rollout; set ``dst``'s hyperparameters after to see what they make of the same batch."""
        source = self._same_config(source)
        src, dst = source._member(src), self._member(dst)
        if source is not self or src != dst:
            taken = source._m.select(torch.tensor([src], device=self.config.device))
            self._m.assign(slice(dst, dst + 1), taken)

    def _same_config(self, source: Population | None) -> Population:
        """``source`` (default: this population), whose members can be copied into this one's."""
        source = source or self
        if source.config != self.config:
            raise ValueError("members of populations of different configs cannot be copied into each other")
        return source

    def reset_member(self, member: int, hparams: Mapping[str, float], seed: int) -> None:
        """Put a fresh member into slot ``member``: initial weights from ``seed``, zeroed Adam and
        statistics, fresh envs at default levels (then ``level_fn``'s), a new random stream."""
        member = self._member(member)
        self._m.assign(slice(member, member + 1), self._fresh(hparams, int(seed)))
        n = self.config.n_envs
        self._start_levels(torch.arange(member * n, (member + 1) * n, device=self.config.device))

    def set_level(
        self,
        params: Mapping[str, Tensor | float],
        member: int | None = None,
        copies: Tensor | Sequence[int] | None = None,
        *,
        evaluation: bool = False,
    ) -> None:
        """Set physical env parameters (levels) of training env copies, or of evaluation envs.

        Training envs: every copy, or member ``member``'s ``n_envs`` copies; ``copies`` then narrows the
        selection to ids within it (within the member when given, else population copy ids
        ``member * n_envs + env``). Values are floats or tensors broadcastable to the selection. With
        ``evaluation=True`` the parameters of the evaluation envs are set instead, one value per member
        (every member, or ``member``); ``copies`` must then be None.

        Raises:
            ConfigError: (a ValueError) for an unknown parameter, naming the valid ones.
        """
        for name in params:
            if name not in self.spec.params:
                raise ConfigError(unknown_name(f"{self.spec.name} parameter", name, self.spec.params))
        n_envs, device = self.config.n_envs, self.config.device
        if evaluation:
            if copies is not None:
                raise ValueError(
                    "evaluation levels are one per member: copies must be None with evaluation=True"
                )
            rows = torch.arange(self.size, device=device) if member is None else self._member(member)
        else:
            first, end = (0, self.size) if member is None else (self._member(member), member + 1)
            rows = torch.arange(first * n_envs, end * n_envs, device=device)
            if copies is not None:
                rows = rows[torch.as_tensor(copies, device=device)]
        for name, value in params.items():
            target = (self._m.eval_level if evaluation else self._m.level)[name].view(-1)
            target[rows] = torch.as_tensor(value, dtype=self.config.torch_dtype, device=device)

    # -- training ---------------------------------------------------------------------------------------

    def train(self, steps: int, members: Tensor | Sequence[int] | None = None) -> list[dict[str, float]]:
        """Train every member, or those in ``members``, for at least ``steps`` env steps each, in whole
        rollouts of ``n_envs * n_steps``. Failed members are skipped.

        Args:
            steps: Env steps per member, rounded up to whole rollouts.
            members: Member indices or a ``[P]`` bool mask; None for all.

        Returns:
            One dict per requested member, in order: the means over the last rollout's minibatches of
            ``policy_loss``, ``value_loss``, ``entropy_loss``, ``loss``, ``approx_kl`` (SB3's
            estimator) and ``clip_fraction``; the last rollout's ``explained_variance``, ``learning_rate``
            and ``clip_range``; ``episode_return``, the mean undiscounted return of the training
            episodes that ended in this call (nan if none) and ``episodes``, their number; ``budget``,
            the member's env steps so far; ``failed`` (1.0 or 0.0). A skipped member's losses are nan.
        """
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        order = self._indices(members)
        live = order[~self._m.failed[order]]
        k = len(live)
        nan = float("nan")
        results: dict[int, dict[str, float]] = {}
        if k:
            whole = k == self.size and bool((live == torch.arange(k, device=live.device)).all())
            m = self._m if whole else self._m.select(live)
            rollouts = -(-steps // (self.config.n_envs * self.config.n_steps))
            stats = self._train_members(m, live, rollouts)
            if not whole:
                self._m.assign(live, m)
            values = torch.stack([stats[name].double() for name in stats]).T.tolist()
            for member, row in zip(live.tolist(), values, strict=True):
                results[member] = dict(zip(stats, row, strict=True))
        out = []
        for member in order.tolist():
            row = results.get(member) or dict.fromkeys(
                (*_STATS, "explained_variance", "learning_rate", "clip_range", "episode_return"), nan
            ) | {"episodes": 0.0}
            row["budget"] = float(self._m.steps[member])
            row["failed"] = float(self._m.failed[member])
            out.append(row)
        return out

    def _train_members(self, m: _Members, members: Tensor, rollouts: int) -> dict[str, Tensor]:
        """Train ``m`` (the population or a subset; ``members`` its population indices) for ``rollouts``."""
        cfg = self.config
        k, n_envs = len(members), cfg.n_envs
        env = self._load_env(m)
        copy_ids = (members[:, None] * n_envs + torch.arange(n_envs, device=members.device)).reshape(-1)
        buffer = _Rollout.empty(cfg, k)
        episodes = torch.zeros(2, k, dtype=cfg.torch_dtype, device=cfg.device)  # sum and count of returns
        stats: dict[str, Tensor] = {}
        for _ in range(rollouts):
            self._collect(m, env, buffer, episodes, copy_ids)
            m.steps = m.steps + n_envs * cfg.n_steps
            advantages, returns, values = self._advantages(m, buffer)
            if self.on_rollout is not None:
                self.on_rollout(copy_ids, advantages, buffer.dones)
            stats = self._update(m, buffer, advantages, returns)
            stats["explained_variance"] = _explained_variance(values, returns)
        m.env_state = env.state.view(k, n_envs, -1)
        m.env_elapsed = env.elapsed.view(k, n_envs)
        m.level = {name: p.view(k, n_envs) for name, p in env.params.items()}
        stats["episode_return"] = episodes[0] / episodes[1]
        stats["episodes"] = episodes[1]
        return stats

    @torch.no_grad()
    def _collect(
        self, m: _Members, env: BatchedEnv, buf: _Rollout, episodes: Tensor, copy_ids: Tensor
    ) -> None:
        """Step every member's envs ``n_steps`` times with its current policy, filling ``buf``."""
        cfg, spec = self.config, self.spec
        k, n_steps, n_envs, dtype = m.theta.shape[0], cfg.n_steps, cfg.n_envs, cfg.torch_dtype
        actor, _, log_std = self._layout.split(m.theta)
        gamma = m.hp["gamma"].to(dtype)[:, None]
        discrete = spec.n_actions is not None
        # all of a rollout's random numbers in two draws, stepped through as [n_steps, k, ...]
        if discrete:
            noise = rng.uniform(m.seed, m.counter, (n_steps, n_envs), dtype=dtype)
        else:
            noise = rng.normal(m.seed, m.counter, (n_steps, n_envs, spec.action_dim), dtype=dtype)
        u_reset = rng.uniform(m.seed, m.counter + 1, (n_steps, n_envs * spec.reset_dims), dtype=dtype)
        m.counter = m.counter + 2
        noise = noise.transpose(0, 1).contiguous()
        u_reset = u_reset.transpose(0, 1).reshape(n_steps, k * n_envs, spec.reset_dims)
        if not discrete:
            std = log_std.exp()[:, None, :]
            log_prob_const = (log_std.sum(1) + spec.action_dim * _LOG_SQRT_2PI)[:, None]
            low = torch.tensor(spec.action_low, dtype=dtype, device=cfg.device)
            high = torch.tensor(spec.action_high, dtype=dtype, device=cfg.device)
        hooks = self.level_fn is not None or self.on_episode_end is not None

        obs = self._normalize(m, m.obs)
        for t in range(n_steps):
            buf.obs[:, t] = obs
            out = _mlp(actor, obs, self._activation)
            if discrete:
                log_probs = out.log_softmax(-1)
                cdf = log_probs.exp().cumsum(-1)
                action = torch.searchsorted(cdf, noise[t, :, :, None], right=True)
                action = action.clamp_(max=spec.n_actions - 1)  # type: ignore[operator]
                buf.log_probs[:, t] = log_probs.gather(-1, action)[..., 0]
                action = action[..., 0]
                env_action = action.reshape(-1)
            else:
                action = out + std * noise[t]
                buf.log_probs[:, t] = -0.5 * noise[t].square().sum(-1) - log_prob_const
                env_action = torch.maximum(torch.minimum(action, high), low).view(-1, spec.action_dim)
            buf.actions[:, t] = action
            step = env.step(env_action, u_reset[t])

            raw = step.obs.view(k, n_envs, -1)
            reward = step.reward.view(k, n_envs)
            done = step.done.view(k, n_envs)
            if cfg.normalize_obs:
                m.obs_mean, m.obs_var, m.obs_count = update_moments(m.obs_mean, m.obs_var, m.obs_count, raw)
            obs = self._normalize(m, raw)
            buf.final_obs[:, t] = self._normalize(m, step.final_obs.view(k, n_envs, -1))
            buf.dones[:, t] = done
            buf.truncated[:, t] = step.truncated.view(k, n_envs)

            ep_return = m.ep_return + reward
            episodes[0] += torch.where(done, ep_return, 0.0).sum(1)
            episodes[1] += done.sum(1)
            if hooks:
                self._episodes_ended(env, done.view(-1), ep_return.view(-1), copy_ids)
            m.ep_return = torch.where(done, 0.0, ep_return)

            if cfg.normalize_reward:
                m.ret_acc = m.ret_acc * gamma + reward
                m.ret_mean, m.ret_var, m.ret_count = update_moments(
                    m.ret_mean, m.ret_var, m.ret_count, m.ret_acc
                )
                reward = scale(reward, m.ret_var[:, None])
                m.ret_acc = torch.where(done, 0.0, m.ret_acc)
            buf.rewards[:, t] = reward
        m.obs = raw.clone()  # raw may be a view of the env's state (CartPole observes its state)
        buf.last_obs.copy_(obs)

    def _episodes_ended(self, env: BatchedEnv, done: Tensor, returns: Tensor, copy_ids: Tensor) -> None:
        ended = done.nonzero()[:, 0]
        if not len(ended):
            return
        if self.on_episode_end is not None:
            self.on_episode_end(copy_ids[ended], returns[ended])
        if self.level_fn is not None:
            self._apply_levels(env.params, ended, self.level_fn(copy_ids[ended]))

    @torch.no_grad()
    def _advantages(self, m: _Members, buf: _Rollout) -> tuple[Tensor, Tensor, Tensor]:
        """GAE advantages, returns and values ``[k, n_steps, n_envs]``, with per-member gamma and lambda.

        The critic runs once over the whole rollout and its last observations. Truncated steps get
        ``gamma * V(final_obs)`` added to their reward, as SB3 does; they are few, so they are gathered
        (one device sync per rollout) and each runs through its own member's critic.
        """
        cfg = self.config
        k, n_steps, n_envs = m.theta.shape[0], cfg.n_steps, cfg.n_envs
        _, critic, _ = self._layout.split(m.theta)
        rows = n_steps * n_envs
        inputs = torch.cat((buf.obs.view(k, rows, -1), buf.last_obs), 1)
        # tanh's sigmoid form (exact=False): values only, no action depends on them
        v = _mlp(critic, inputs, self._activation, exact=False)[..., 0]
        values, next_value = v[:, :rows].view(k, n_steps, n_envs), v[:, rows:]

        gamma = m.hp["gamma"].to(cfg.torch_dtype)[:, None]
        gamma_lambda = gamma * m.hp["gae_lambda"].to(cfg.torch_dtype)[:, None]
        rewards = buf.rewards
        truncated = buf.truncated.nonzero().unbind(1)
        if len(truncated[0]):
            member = truncated[0]
            layers = [(w[member], b[member]) for w, b in critic]
            final = _mlp(layers, buf.final_obs[truncated][:, None], self._activation)[:, 0, 0]
            rewards = rewards.index_put(truncated, gamma[member, 0] * final, accumulate=True)
        not_done = (~buf.dones).to(cfg.torch_dtype)
        advantages = torch.empty_like(values)
        last = torch.zeros_like(next_value)
        for t in reversed(range(n_steps)):
            delta = rewards[:, t] + gamma * next_value * not_done[:, t] - values[:, t]
            last = delta + gamma_lambda * not_done[:, t] * last
            advantages[:, t] = last
            next_value = values[:, t]
        return advantages, advantages + values, values

    def _update(self, m: _Members, buf: _Rollout, advantages: Tensor, returns: Tensor) -> dict[str, Tensor]:
        """``n_epochs`` passes of ``n_minibatches`` Adam steps over the rollout, for every member at once."""
        cfg, dtype = self.config, self.config.torch_dtype
        k, batch = m.theta.shape[0], cfg.n_steps * cfg.n_envs
        n_mb, size = cfg.n_minibatches, batch // cfg.n_minibatches
        hp = {name: t.to(dtype) for name, t in m.hp.items()}
        lr, clip = hp["learning_rate"], hp["clip_range"]
        if cfg.total_steps is not None:  # SB3 reads the schedules after the rollout
            remaining = (1 - m.steps.to(dtype) / cfg.total_steps).clamp(min=0)
            lr = lr * remaining if cfg.lr_schedule == "linear" else lr
            clip = clip * remaining if cfg.clip_schedule == "linear" else clip

        data = {
            "obs": buf.obs.view(k, batch, -1),
            "actions": buf.actions.view(k, batch, *buf.actions.shape[3:]),
            "log_probs": buf.log_probs.view(k, batch),
            "advantages": advantages.view(k, batch),
            "returns": returns.view(k, batch),
        }
        coefs = (clip[:, None], hp["ent_coef"], hp["vf_coef"])
        sums = torch.zeros(len(_STATS), k, dtype=dtype, device=cfg.device)
        for _ in range(cfg.n_epochs):
            order = rng.bits(m.seed, m.counter, (batch,)).argsort(1)  # a permutation per member
            m.counter = m.counter + 1
            epoch = {}
            for name, x in data.items():
                idx = order.view(k, batch, *([1] * (x.dim() - 2)))
                epoch[name] = x.take_along_dim(idx, 1).view(k, n_mb, size, *x.shape[2:])
            adv = epoch["advantages"]  # normalised per minibatch per member, as SB3 does
            epoch["advantages"] = (adv - adv.mean(2, keepdim=True)) / (adv.std(2, keepdim=True) + 1e-8)
            for i in range(n_mb):
                mb = {name: x[:, i] for name, x in epoch.items()}
                grad, loss, parts = self._minibatch(
                    m.theta,
                    mb["obs"],
                    mb["actions"],
                    mb["log_probs"],
                    mb["advantages"],
                    mb["returns"],
                    *coefs,
                )
                # the moments may change in place: they are this population's (or this subset's) own
                m.theta, m.adam_step, m.failed = adam_step(
                    m.theta.detach(),
                    grad,
                    loss,
                    lr,
                    hp["max_grad_norm"],
                    hp["adam_eps"],
                    exp_avg=m.adam_m,
                    exp_avg_sq=m.adam_v,
                    step=m.adam_step,
                    failed=m.failed,
                )
                sums += parts
        stats = dict(zip(_STATS, sums / (cfg.n_epochs * n_mb), strict=True))
        stats["learning_rate"], stats["clip_range"] = lr, clip
        return stats

    def _minibatch_grad(self, theta: Tensor, *minibatch: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The gradient of each member's loss on one minibatch (``minibatch``: the rest of
        :meth:`_loss`'s arguments) with respect to ``theta`` ``[k, n_params]``, the losses ``[k]`` and
        their parts; what ``compile`` compiles."""
        theta = theta.detach().requires_grad_(True)
        loss, parts = self._loss(theta, *minibatch)
        (grad,) = torch.autograd.grad(loss.sum(), theta)
        return grad, loss.detach(), parts

    def _loss(
        self,
        theta: Tensor,
        obs: Tensor,
        actions: Tensor,
        old_log_probs: Tensor,
        advantages: Tensor,
        returns: Tensor,
        clip: Tensor,
        ent_coef: Tensor,
        vf_coef: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """SB3 PPO's loss of each member ``[k]`` on one minibatch, and its parts ``[len(_STATS), k]``; the
        policy loss is the config's objective (:mod:`autorl.engine.objectives`)."""
        actor, critic, log_std = self._layout.split(theta)
        out = _mlp(actor, obs, self._activation)
        values = _mlp(critic, obs, self._activation)[..., 0]
        if self.spec.n_actions is not None:
            log_probs_all = out.log_softmax(-1)
            log_probs = log_probs_all.gather(-1, actions[..., None])[..., 0]
            entropy = _entropy_categorical(log_probs_all)
        else:
            z = (actions - out) * torch.exp(-log_std)[:, None, :]
            dims = log_std.shape[1]
            log_probs = -0.5 * z.square().sum(-1) - (log_std.sum(1) + dims * _LOG_SQRT_2PI)[:, None]
            entropy = (log_std.sum(1) + dims * (0.5 + _LOG_SQRT_2PI))[:, None].expand_as(log_probs)

        log_ratio = log_probs - old_log_probs
        ratio = log_ratio.exp()
        policy_loss = self._objective(ratio, advantages, clip).mean(1)
        value_loss = (returns - values).square().mean(1)
        entropy_loss = -entropy.mean(1)
        loss = policy_loss + ent_coef * entropy_loss + vf_coef * value_loss
        with torch.no_grad():
            approx_kl = ((ratio - 1) - log_ratio).mean(1)
            clip_fraction = ((ratio - 1).abs() > clip).to(ratio.dtype).mean(1)
            parts = torch.stack((policy_loss, value_loss, entropy_loss, loss, approx_kl, clip_fraction))
        return loss, parts

    # -- evaluation -------------------------------------------------------------------------------------

    def pass_evaluation(self, members: Tensor | Sequence[int], times: int = 1) -> None:
        """Move ``members``' evaluation streams as ``times`` :meth:`evaluate` calls without seeds would
        (failed members' stay), evaluating nothing: an evaluation left out changes none that follow."""
        chosen = self._indices(members)
        live = chosen[~self._m.failed[chosen]]
        self._m.eval_counter[live] += times

    @torch.no_grad()
    def evaluate(
        self,
        episodes: int | None = None,
        members: Tensor | Sequence[int] | None = None,
        seeds: Sequence[int] | None = None,
    ) -> Tensor:
        """``[P]`` float64: each member's mean return over ``episodes`` (default ``eval_episodes``)
        deterministic episodes (argmax, or the clipped mean action), one per evaluation env; only
        ``members`` (default: all) are evaluated, the others get nan and keep their evaluation streams.

        All members run at once, each on its own evaluation envs at its evaluation level
        (:meth:`set_level` with ``evaluation=True``), started from its own evaluation stream (fresh starts at
        every call, leaving the training stream untouched), with its observation normalisation frozen.
        With ``seeds`` (one per member in ``members``), the starts are drawn from those seeds instead and
        no stream moves: members given one seed start their episodes alike (a race's common seeds).
        Failed members get nan.
        """
        cfg, spec = self.config, self.spec
        n = cfg.eval_episodes if episodes is None else episodes
        if n < 1:
            raise ValueError(f"episodes must be >= 1, got {n}")
        out = torch.full((self.size,), float("nan"), dtype=torch.float64, device=cfg.device)
        chosen = self._indices(members)
        alive = ~self._m.failed[chosen]
        live = chosen[alive]
        k = len(live)
        if not k:
            return out
        m = self._m
        theta, seed, counter, stream = m.theta[live], m.seed[live], m.eval_counter[live], _EVAL
        if seeds is not None:
            if len(seeds) != len(chosen):
                raise ValueError(f"seeds must be one per member: {len(chosen)}, got {len(seeds)}")
            given = torch.as_tensor(list(seeds), dtype=torch.int64, device=cfg.device)
            seed, counter, stream = given[alive], torch.zeros_like(counter), _SEEDED
        else:
            self.pass_evaluation(live)  # the stream moves here, as where an evaluation is left out
        mean, var = m.obs_mean[live], m.obs_var[live]
        env = make(spec.name, k * n, device=cfg.device, dtype=cfg.torch_dtype)
        env.set_params({name: t[live].repeat_interleave(n) for name, t in m.eval_level.items()})
        u = rng.uniform(seed, counter, (n, spec.reset_dims), dtype=cfg.torch_dtype, stream=stream)
        state = env.initial_state(u.view(k * n, spec.reset_dims))
        actor, _, _ = self._layout.split(theta)
        if spec.n_actions is None:
            low = torch.tensor(spec.action_low, dtype=cfg.torch_dtype, device=cfg.device)
            high = torch.tensor(spec.action_high, dtype=cfg.torch_dtype, device=cfg.device)
        returns = torch.zeros(k, n, dtype=cfg.torch_dtype, device=cfg.device)
        running = torch.ones(k, n, dtype=torch.bool, device=cfg.device)
        # One episode per env, so no resets: the task's own transition, which costs a third less than
        # BatchedEnv.step (auto-reset and time-limit bookkeeping); the loop's length is the time limit.
        for t in range(spec.max_steps):
            obs = env._observe(state).view(k, n, -1)
            if cfg.normalize_obs:
                obs = normalize(obs, mean[:, None], var[:, None])
            head = _mlp(actor, obs, self._activation)
            if spec.n_actions is not None:
                action = head.argmax(-1).view(-1)
            else:
                action = torch.maximum(torch.minimum(head, high), low).view(-1, spec.action_dim)
            state, reward, terminated = env._dynamics(state, action)
            returns += torch.where(running, reward.view(k, n), 0.0)
            running &= ~terminated.view(k, n)
            if t % 16 == 15 and not bool(running.any()):
                break
        out[live] = returns.double().mean(1)
        return out

    # -- saving -----------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The whole population as tensors and plain data (``torch.load(weights_only=True)`` reads it):
        config, networks, Adam, normalisers, env states and levels, random-stream counters. Training
        resumed from it continues exactly. The hooks are not included."""
        return {
            "format": _STATE_FORMAT,
            "config": self.config.to_dict(),
            "members": {name: t.clone() for name, t in self._m.flat().items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace the whole population (its size too) by one saved by :meth:`state_dict`.

        Raises:
            ValueError: if the state's format or config differs from this population's.
        """
        if state.get("format") != _STATE_FORMAT:
            raise ValueError(f"state format must be {_STATE_FORMAT}, got {state.get('format')!r}")
        mine = self.config.to_dict()
        theirs = {"objective": "clip"} | dict(state["config"])  # saved before the objective was a key
        diff = sorted(k for k in mine if mine[k] != theirs.get(k))
        if diff:
            raise ValueError(f"the state's config must equal this population's; they differ in {diff}")
        expected = set(self._m.flat())
        if set(state["members"]) != expected:
            raise ValueError(
                f"the state's members must hold {sorted(expected)}, got {sorted(state['members'])}"
            )
        tensors = {name: t.to(self.config.device).clone() for name, t in state["members"].items()}
        self._m = _Members.from_flat(tensors)

    def member_state(self, member: int) -> dict[str, Any]:
        """One member's policy and observation normaliser as CPU tensors and plain data, for
        :func:`load_policy` and export, wherever the population trains (``torch.save`` it;
        ``torch.load(weights_only=True)`` reads it)."""
        member = self._member(member)
        theta = self._m.theta[member : member + 1]
        actor, critic, log_std = self._layout.split(theta)

        def plain(layers: list[tuple[Tensor, Tensor]]) -> list[list[Tensor]]:
            return [[w[0].detach().cpu().clone(), b[0, 0].detach().cpu().clone()] for w, b in layers]

        spec = self.spec
        return {
            "format": _STATE_FORMAT,
            "env": spec.name,
            "activation": self.config.activation,
            "n_actions": spec.n_actions,
            "action_low": None if spec.action_low is None else list(spec.action_low),
            "action_high": None if spec.action_high is None else list(spec.action_high),
            "actor": plain(actor),
            "critic": plain(critic),
            "log_std": log_std[0].detach().cpu().clone() if spec.n_actions is None else None,
            "normalize_obs": self.config.normalize_obs,
            "obs_mean": self._m.obs_mean[member].cpu().clone(),
            "obs_var": self._m.obs_var[member].cpu().clone(),
            "clip_obs": CLIP,
            "obs_eps": EPS,
            "hparams": self.hparams(member),
            "seed": int(self._m.seed[member]),
            "steps": int(self._m.steps[member]),
        }

    # -- helpers ----------------------------------------------------------------------------------------

    def _fresh(self, hparams: Mapping[str, float], seed: int) -> _Members:
        """A new member (leading dimension 1): initial weights, zero Adam, envs reset from its stream."""
        cfg, spec = self.config, self.spec
        if not -(2**63) <= seed < 2**63:
            raise ValueError(f"seed must fit in int64, got {seed}")
        dev, dtype, n_envs = cfg.device, cfg.torch_dtype, cfg.n_envs
        values = dict(DEFAULT_HPARAMS) | check_hparams(hparams)
        seed_t = torch.tensor([seed], dtype=torch.int64, device=dev)
        counter = torch.zeros(1, dtype=torch.int64, device=dev)
        env = make(spec.name, n_envs, device=dev, dtype=dtype)
        obs = env.reset(rng.uniform(seed_t, counter, (n_envs, spec.reset_dims), dtype=dtype)[0])[None]
        theta = self._layout.init(cfg, seed)[None]
        zeros = torch.zeros(1, dtype=dtype, device=dev)
        obs_mean = torch.zeros(1, spec.obs_dim, dtype=dtype, device=dev)
        obs_var, obs_count = torch.ones_like(obs_mean), torch.full_like(zeros, 1e-4)  # VecNormalize's start
        if cfg.normalize_obs:
            obs_mean, obs_var, obs_count = update_moments(obs_mean, obs_var, obs_count, obs)
        return _Members(
            seed=seed_t,
            counter=counter + 1,
            eval_counter=torch.zeros_like(counter),
            theta=theta,
            adam_m=torch.zeros_like(theta),
            adam_v=torch.zeros_like(theta),
            adam_step=torch.zeros_like(counter),
            hp={name: torch.tensor([values[name]], dtype=torch.float64, device=dev) for name in HYPERPARAMS},
            obs_mean=obs_mean,
            obs_var=obs_var,
            obs_count=obs_count,
            ret_mean=zeros.clone(),
            ret_var=torch.ones_like(zeros),
            ret_count=torch.full_like(zeros, 1e-4),
            ret_acc=torch.zeros(1, n_envs, dtype=dtype, device=dev),
            env_state=env.state[None],
            env_elapsed=env.elapsed[None],
            obs=obs,
            ep_return=torch.zeros(1, n_envs, dtype=dtype, device=dev),
            level={name: p[None].clone() for name, p in env.params.items()},
            eval_level={name: torch.full_like(zeros, v) for name, v in spec.params.items()},
            steps=torch.zeros_like(counter),
            failed=torch.zeros(1, dtype=torch.bool, device=dev),
        )

    def _restart_envs(self, member: int) -> None:
        """Fresh episodes in ``member``'s envs, at their levels, from its own training stream."""
        cfg, spec, m = self.config, self.spec, self._m
        env = make(spec.name, cfg.n_envs, device=cfg.device, dtype=cfg.torch_dtype)
        env.set_params({name: t[member] for name, t in m.level.items()})
        seed, counter = m.seed[member : member + 1], m.counter[member : member + 1]
        m.obs[member] = env.reset(
            rng.uniform(seed, counter, (cfg.n_envs, spec.reset_dims), dtype=cfg.torch_dtype)[0]
        )
        m.counter[member] += 1
        m.env_state[member], m.env_elapsed[member] = env.state, env.elapsed
        m.ep_return[member] = 0.0
        m.ret_acc[member] = 0.0

    def _start_levels(self, copies: Tensor) -> None:
        """Let ``level_fn`` choose the levels of the episodes that start in ``copies`` (population ids)."""
        if self.level_fn is not None:
            flat = {name: t.view(-1) for name, t in self._m.level.items()}
            self._apply_levels(flat, copies, self.level_fn(copies))

    def _apply_levels(
        self, params: Mapping[str, Tensor], where: Tensor, levels: Mapping[str, Tensor] | None
    ) -> None:
        """Write ``levels`` ``{name: [m]}`` into rows ``where`` ``[m]`` of the flat parameter tensors."""
        if levels is None:
            return
        cfg = self.config
        for name, value in levels.items():
            if name not in params:
                raise ConfigError(unknown_name(f"{self.spec.name} parameter (from level_fn)", name, params))
            params[name][where] = torch.as_tensor(value, dtype=cfg.torch_dtype, device=cfg.device)

    def _load_env(self, m: _Members) -> BatchedEnv:
        """A batched env holding ``m``'s training envs (states, step counters and levels)."""
        k, n_envs = m.theta.shape[0], self.config.n_envs
        env = make(self.spec.name, k * n_envs, device=self.config.device, dtype=self.config.torch_dtype)
        env.state = m.env_state.reshape(k * n_envs, -1)
        env.elapsed = m.env_elapsed.reshape(-1)
        env.set_params({name: t.reshape(-1) for name, t in m.level.items()})
        return env

    def _normalize(self, m: _Members, obs: Tensor) -> Tensor:
        if not self.config.normalize_obs:
            return obs
        return normalize(obs, m.obs_mean[:, None], m.obs_var[:, None])

    def _member(self, member: int) -> int:
        if not 0 <= member < self.size:
            raise IndexError(f"member must be in [0, {self.size}), got {member}")
        return int(member)

    def _indices(self, members: Tensor | Sequence[int] | None) -> Tensor:
        device = self.config.device
        if members is None:
            return torch.arange(self.size, device=device)
        idx = torch.as_tensor(members, device=device)
        if idx.dtype == torch.bool:
            if idx.shape != (self.size,):
                raise ValueError(f"a member mask must have shape [{self.size}], got {list(idx.shape)}")
            return idx.nonzero()[:, 0]
        idx = idx.to(torch.int64).reshape(-1)
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= self.size):
            raise IndexError(f"members must be in [0, {self.size}), got {idx.tolist()}")
        if len(idx.unique()) != len(idx):
            raise ValueError(f"members must not repeat, got {idx.tolist()}")
        return idx


def _explained_variance(values: Tensor, returns: Tensor) -> Tensor:
    """``[k]``: 1 - Var(returns - values) / Var(returns) per member over its rollout (SB3's diagnostic)."""
    k = values.shape[0]
    y, pred = returns.reshape(k, -1), values.reshape(k, -1)
    return 1 - (y - pred).var(1) / y.var(1)


def load_policy(member_state: Mapping[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    """A deterministic policy for a user's gymnasium env from :meth:`Population.member_state`.

    The returned ``policy(obs)`` takes one observation ``[obs_dim]`` (or a batch ``[n, obs_dim]``) and
    returns the argmax action (an integer array of shape ``[]`` or ``[n]``) or the mean action clipped to
    the action space (float32 ``[action_dim]`` or ``[n, action_dim]``). It needs numpy only.
    """
    layers = [(w.double().numpy(), b.double().numpy()) for w, b in member_state["actor"]]
    activation = np.tanh if member_state["activation"] == "tanh" else (lambda x: np.maximum(x, 0.0))
    mean = member_state["obs_mean"].double().numpy()
    std = np.sqrt(member_state["obs_var"].double().numpy() + member_state["obs_eps"])
    normalize, clip = member_state["normalize_obs"], member_state["clip_obs"]
    discrete = member_state["n_actions"] is not None
    low, high = member_state["action_low"], member_state["action_high"]

    def policy(obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float64)
        if normalize:
            x = np.clip((x - mean) / std, -clip, clip)
        for w, b in layers[:-1]:
            x = activation(x @ w + b)
        x = x @ layers[-1][0] + layers[-1][1]
        if discrete:
            return np.asarray(x.argmax(-1))
        return np.clip(x, low, high).astype(np.float32)

    return policy
