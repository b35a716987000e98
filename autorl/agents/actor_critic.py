"""A single-file actor-critic agent whose hyperparameters can tune themselves by meta-gradients.

Read top to bottom:

1. :class:`ActorCriticConfig`: every hyperparameter, documented.
2. :class:`ActorCriticNet`: a small MLP actor and critic (categorical or diagonal Gaussian policy).
3. :func:`collect_rollout`: ``num_steps`` steps of ``num_envs`` gymnasium vector envs into a :class:`Rollout`.
4. :func:`gae`: generalised advantage estimation written with tensors, differentiable in gamma and lambda.
5. :func:`actor_critic_loss`: advantage actor-critic loss (optionally PPO's clipped surrogate).
6. :func:`inner_update`: the agent's own update as a *functional* step (``torch.func.functional_call`` on a
   dict of parameters), which can keep its graph so that the new parameters are functions of eta.
7. :func:`meta_loss`: the actor-critic objective on the *next* batch with fixed reference values
   (gamma_ref, lambda_ref, ...), differentiated through the inner update to give the meta-gradient
   (Xu, van Hasselt & Silver 2018; Zahavy et al. 2020, STAC).
8. :class:`ActorCriticTarget`: the Trainable registered as ``agents:actor_critic`` (with meta-gradients
   on, in a sweep, it writes ``eta_history.csv`` and ``eta.png`` beside its trial); :func:`plot_history`
   draws eta over env steps.

The meta-parameters eta (gamma, lambda and the entropy, value-loss and policy-loss coefficients) are each
opt-in (``meta_gamma``, ...). They live on an unconstrained scale and are mapped into range: gamma and lambda
through a sigmoid, the coefficients through a softplus.

Inner optimiser (the choice the meta-gradient must differentiate through): RMSProp, A2C's optimiser, with
its second-moment statistics treated as constants of the step. The preconditioner of step ``k`` is the
running average *before* step ``k`` (initialised from the first squared gradient), so the update is an exact,
smooth function of eta given the optimiser state; the statistics themselves are updated from detached
gradients. This truncates the meta-gradient to one inner update, as both papers do, and keeps its cost at
one extra backward pass. ``inner_optimizer="sgd"`` gives plain SGD.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Normal
from torch.func import functional_call

from autorl.errors import ConfigError
from autorl.registry import closest
from autorl.targets.base import TrialContext
from autorl.targets.models._data import refuse_unknown_keys

# Names of the meta-parameters eta, in the order used for conditioning the network on them.
ETA_NAMES = ("gamma", "gae_lambda", "ent_coef", "vf_coef", "pg_coef")
_SIGMOID_ETA = ("gamma", "gae_lambda")


@dataclass
class ActorCriticConfig:
    """Every hyperparameter of the agent. Build one from a flat dict with :meth:`from_dict`.

    Attributes:
        env_id: gymnasium id; discrete (``Discrete``) or continuous (``Box``) actions.
        num_envs: parallel environments in the ``SyncVectorEnv``.
        num_steps: rollout length per environment; a batch holds ``num_envs * num_steps`` transitions.
        lr: inner (agent) learning rate.
        inner_optimizer: ``rmsprop`` (default, see the module docstring) or ``sgd``.
        rms_decay: RMSProp's decay of the squared-gradient average.
        rms_eps: RMSProp's epsilon.
        update_epochs: inner update steps on each batch (full batch); all are differentiated through.
        gamma: discount gamma (initial value when learned).
        gae_lambda: GAE lambda (initial value when learned).
        ent_coef: entropy bonus coefficient (initial value when learned).
        vf_coef: value-loss coefficient (initial value when learned).
        pg_coef: policy-loss coefficient (initial value when learned).
        clip_coef: PPO's clipping range of the probability ratio; None gives plain advantage actor-critic.
        norm_adv: normalise advantages per batch.
        max_grad_norm: clip the inner gradient's global norm (0 disables).
        hidden: sizes of the hidden tanh layers of actor and critic (separate networks).
        reward_scale: rewards are multiplied by this before learning (returns are logged unscaled).
        meta_gamma: learn gamma by meta-gradient.
        meta_gae_lambda: learn lambda by meta-gradient.
        meta_ent_coef: learn the entropy coefficient by meta-gradient.
        meta_vf_coef: learn the value-loss coefficient by meta-gradient.
        meta_pg_coef: learn the policy-loss coefficient by meta-gradient.
        meta_lr: learning rate of the meta-optimiser.
        meta_optimizer: ``adam`` or ``sgd`` for eta.
        meta_max_grad_norm: clip the meta-gradient's norm (0 disables).
        ref_gamma: gamma_ref, the discount of the meta-objective.
        ref_gae_lambda: lambda_ref, the GAE lambda of the meta-objective.
        ref_ent_coef: entropy coefficient of the meta-objective.
        ref_vf_coef: value-loss coefficient of the meta-objective.
        ref_pg_coef: policy-loss coefficient of the meta-objective.
        condition_on_eta: feed eta to actor and critic (eta_ref in the meta-objective), as both papers do.
        eval_episodes: deterministic evaluation episodes at the end of each ``train`` call.
        log_every: record a row of :attr:`ActorCriticTarget.history` every this many iterations.
    """

    env_id: str = "CartPole-v1"
    num_envs: int = 8
    num_steps: int = 16
    lr: float = 7.0e-4
    inner_optimizer: str = "rmsprop"
    rms_decay: float = 0.99
    rms_eps: float = 1.0e-5
    update_epochs: int = 1
    gamma: float = 0.99
    gae_lambda: float = 0.95
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    pg_coef: float = 1.0
    clip_coef: float | None = None
    norm_adv: bool = False
    max_grad_norm: float = 0.5
    hidden: tuple[int, ...] = (64, 64)
    reward_scale: float = 1.0
    meta_gamma: bool = False
    meta_gae_lambda: bool = False
    meta_ent_coef: bool = False
    meta_vf_coef: bool = False
    meta_pg_coef: bool = False
    meta_lr: float = 1.0e-3
    meta_optimizer: str = "adam"
    meta_max_grad_norm: float = 0.0
    ref_gamma: float = 0.99
    ref_gae_lambda: float = 0.95
    ref_ent_coef: float = 0.01
    ref_vf_coef: float = 0.5
    ref_pg_coef: float = 1.0
    condition_on_eta: bool = False
    eval_episodes: int = 5
    log_every: int = 10

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> ActorCriticConfig:
        """Build from a flat dict; unknown keys are errors naming the closest valid key.

        A searched-scale copy such as ``one_minus_gamma`` (recorded by transformed search spaces) is ignored
        when its parameter is also present.
        """
        names = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in config.items():
            if key.startswith("one_minus_") and key[len("one_minus_") :] in config:
                continue
            if key not in names:
                close = closest(key, sorted(names))
                hint = f"; did you mean {close!r}?" if close else ""
                raise ConfigError(f"unknown actor-critic hyperparameter (got {value!r}){hint}", key=key)
            kwargs[key] = value
        if "hidden" in kwargs:
            h = kwargs["hidden"]
            kwargs["hidden"] = (int(h),) * 2 if isinstance(h, int | float) else tuple(int(x) for x in h)
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise ConfigError for values outside their valid range."""
        for name in ("gamma", "gae_lambda", "ref_gamma", "ref_gae_lambda"):
            v = getattr(self, name)
            learned = getattr(self, f"meta_{name}", False)
            if not (0.0 < v < 1.0 if learned else 0.0 <= v <= 1.0):
                rule = "(0, 1) when learned, for the sigmoid" if learned else "[0, 1]"
                raise ConfigError(f"must lie in {rule}, got {v}", key=name)
        for name in ("ent_coef", "vf_coef", "pg_coef"):
            v = getattr(self, name)
            if v < 0 or (getattr(self, f"meta_{name}") and v <= 0):
                raise ConfigError(f"must be >= 0 (> 0 when learned, for the softplus), got {v}", key=name)
        for name in ("num_envs", "num_steps", "update_epochs"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", key=name)
        if self.inner_optimizer not in ("rmsprop", "sgd"):
            raise ConfigError(
                f"must be 'rmsprop' or 'sgd', got {self.inner_optimizer!r}", key="inner_optimizer"
            )
        if self.meta_optimizer not in ("adam", "sgd"):
            raise ConfigError(f"must be 'adam' or 'sgd', got {self.meta_optimizer!r}", key="meta_optimizer")
        if self.clip_coef is not None and self.clip_coef <= 0:
            raise ConfigError(f"must be > 0 or None, got {self.clip_coef}", key="clip_coef")

    @property
    def learned(self) -> tuple[str, ...]:
        """The names of the eta learned by meta-gradient."""
        return tuple(n for n in ETA_NAMES if getattr(self, f"meta_{n}"))

    def reference_eta(self) -> dict[str, torch.Tensor]:
        """The fixed eta_ref of the meta-objective."""
        return {n: torch.tensor(float(getattr(self, f"ref_{n}"))) for n in ETA_NAMES}


def check_args(args: Mapping[str, Any], params: Sequence[str]) -> None:
    """The check ``autorl validate`` runs for ``agents:actor_critic``, before any trial starts.

    Refuses an unknown key in ``args`` or among the search space's ``params`` (naming the closest valid key
    and all of them), a value of the wrong type, an impossible value (:meth:`ActorCriticConfig.validate`)
    and an ``env_id`` gymnasium does not know. It builds the config only: no env, no network.
    """
    # A searched-scale copy next to its parameter (one_minus_gamma and gamma) is ignored, as in from_dict.
    copies = {k for k in args if k.startswith("one_minus_") and k[len("one_minus_") :] in args}
    given = {k: v for k, v in args.items() if k not in copies}
    defaults = {f.name: f.default for f in fields(ActorCriticConfig)}
    refuse_unknown_keys("agents:actor_critic", given, defaults, params)
    for key, value in given.items():
        _check_type(key, value, defaults[key])
    cfg = ActorCriticConfig.from_dict(given)
    if ":" not in cfg.env_id:  # "module:Env-v0" registers its env on import, which only gym.make does
        try:
            gym.spec(cfg.env_id)
        except gym.error.Error as exc:
            raise ConfigError(str(exc).splitlines()[0], "env_id") from None


def granularity(config: Mapping[str, Any]) -> int:
    """Env steps of one batch, ``num_envs * num_steps``: the smallest piece :meth:`ActorCriticTarget.train`
    trains."""
    return int(config.get("num_envs", ActorCriticConfig.num_envs)) * int(
        config.get("num_steps", ActorCriticConfig.num_steps)
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_type(key: str, value: Any, default: Any) -> None:
    """Raise ConfigError unless ``value`` has the type of the field whose default is ``default``."""
    if key == "hidden":
        ok = _is_int(value) or (isinstance(value, list | tuple) and all(map(_is_int, value)))
        rule = "an int or a list of ints"
    elif key == "clip_coef":
        ok, rule = value is None or _is_int(value) or isinstance(value, float), "a number or null"
    elif isinstance(default, bool):
        ok, rule = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, rule = _is_int(value), "an integer"
    elif isinstance(default, float):
        ok, rule = _is_int(value) or isinstance(value, float), "a number"
    else:
        ok, rule = isinstance(value, str), "a string"
    if not ok:
        raise ConfigError(f"must be {rule}, but got {value!r}", key)


# --------------------------------------------------------------------------------------------- network
def _mlp(sizes: list[int], out_std: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        lin = nn.Linear(a, b)
        last = i == len(sizes) - 2
        nn.init.orthogonal_(lin.weight, out_std if last else math.sqrt(2))
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if not last:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class ActorCriticNet(nn.Module):
    """Separate MLP actor and critic; ``forward`` returns ``(policy distribution, value)``.

    With ``eta_dim > 0`` the input is the observation concatenated with eta features (conditioning).
    """

    def __init__(self, obs_dim: int, action_space: gym.Space, hidden: tuple[int, ...], eta_dim: int = 0):
        super().__init__()
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        if not self.discrete and not isinstance(action_space, gym.spaces.Box):
            raise ConfigError(f"action space must be Discrete or Box, got {action_space}", key="env_id")
        if isinstance(action_space, gym.spaces.Discrete):
            n_out = int(action_space.n)
        else:
            n_out = int(np.prod(action_space.shape or ()))
        inp = obs_dim + eta_dim
        self.actor = _mlp([inp, *hidden, n_out], 0.01)
        self.critic = _mlp([inp, *hidden, 1], 1.0)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: torch.Tensor) -> tuple[Distribution, torch.Tensor]:
        value = self.critic(x).squeeze(-1)
        out = self.actor(x)
        if self.discrete:
            return Categorical(logits=out, validate_args=False), value
        return Normal(out, self.log_std.expand_as(out).exp(), validate_args=False), value


def _log_prob(dist: Distribution, actions: torch.Tensor, discrete: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if discrete:
        return dist.log_prob(actions), dist.entropy()
    return dist.log_prob(actions).sum(-1), dist.entropy().sum(-1)


def _eta_features(eta: Mapping[str, torch.Tensor], n: int) -> torch.Tensor:
    # gamma and lambda enter as 1 / (1 - x), the horizon, on a log scale; coefficients as their log.
    feats = [
        -torch.log1p(-eta[k].clamp(max=1 - 1e-6)) if k in _SIGMOID_ETA else torch.log(eta[k].clamp(min=1e-8))
        for k in ETA_NAMES
    ]
    return torch.stack(feats).expand(n, len(ETA_NAMES))


# --------------------------------------------------------------------------------------------- rollouts
@dataclass
class Rollout:
    """One batch, every tensor shaped ``[num_steps, num_envs, ...]``.

    ``next_obs`` is the observation after each step (the final observation where an episode ended), so the
    value of a truncated episode's last state can be bootstrapped; ``dones`` cuts the GAE trace at any end,
    ``terminated`` only removes the bootstrap at true terminal states.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    logprobs: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    dones: torch.Tensor

    def to(self, dtype: torch.dtype) -> Rollout:
        conv = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in asdict(self).items()}
        return Rollout(**conv)


@dataclass
class EnvState:
    """What the rollout needs to carry between batches: the envs, last observation and episode returns."""

    envs: gym.vector.VectorEnv
    obs: np.ndarray
    ep_returns: np.ndarray
    finished: list[float] = field(default_factory=list)


def _make_env(env_id: str) -> gym.Env:
    # Module level (not a closure) so that the vector env can be pickled into a checkpoint.
    env = gym.make(env_id)
    if isinstance(env.action_space, gym.spaces.Box):
        env = gym.wrappers.ClipAction(env)
    return env


def make_envs(env_id: str, num_envs: int, seed: int, env_fn: Callable[[], gym.Env] | None = None) -> EnvState:
    """A ``SyncVectorEnv`` that resets finished episodes in the same step (final obs kept in ``info``).

    ``env_fn`` (picklable, e.g. a ``functools.partial`` of a module-level function) replaces
    ``gym.make(env_id)``: environment design passes contextual envs this way."""
    fn = env_fn or functools.partial(_make_env, env_id)
    envs = gym.vector.SyncVectorEnv([fn] * num_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    obs, _ = envs.reset(seed=seed)
    return EnvState(envs, obs, np.zeros(num_envs))


def _sample(dist: Distribution, gen: torch.Generator) -> torch.Tensor:
    # Sampling from an explicit generator keeps a run reproducible even when several agents share a process.
    if isinstance(dist, Categorical):
        return torch.multinomial(dist.probs, 1, generator=gen).squeeze(-1)
    return dist.mean + dist.stddev * torch.randn(dist.mean.shape, generator=gen)


@torch.no_grad()
def collect_rollout(
    net: ActorCriticNet,
    params: Mapping[str, torch.Tensor],
    state: EnvState,
    num_steps: int,
    gen: torch.Generator,
    eta_feats: torch.Tensor | None,
    reward_scale: float = 1.0,
) -> Rollout:
    """Step the envs ``num_steps`` times with the policy given by ``params``."""
    envs, n = state.envs, state.envs.num_envs
    buf: dict[str, list[Any]] = {
        k: [] for k in ("obs", "actions", "logprobs", "rewards", "next_obs", "term", "done")
    }
    for _ in range(num_steps):
        obs = torch.as_tensor(state.obs, dtype=torch.float32)
        x = obs if eta_feats is None else torch.cat([obs, eta_feats.expand(n, -1)], -1)
        dist, _ = functional_call(net, dict(params), (x,))
        action = _sample(dist, gen)
        logp, _ = _log_prob(dist, action, net.discrete)
        next_obs, reward, term, trunc, info = envs.step(action.numpy())
        done = np.logical_or(term, trunc)
        real_next = next_obs.copy()
        if "_final_obs" in info:
            for i in np.flatnonzero(info["_final_obs"]):
                real_next[i] = info["final_obs"][i]
        state.ep_returns += reward
        for i in np.flatnonzero(done):
            state.finished.append(float(state.ep_returns[i]))
            state.ep_returns[i] = 0.0
        buf["obs"].append(obs)
        buf["actions"].append(action)
        buf["logprobs"].append(logp)
        buf["rewards"].append(torch.as_tensor(reward * reward_scale, dtype=torch.float32))
        buf["next_obs"].append(torch.as_tensor(real_next, dtype=torch.float32))
        buf["term"].append(torch.as_tensor(term, dtype=torch.float32))
        buf["done"].append(torch.as_tensor(done, dtype=torch.float32))
        state.obs = next_obs
    st = {k: torch.stack(v) for k, v in buf.items()}
    return Rollout(
        st["obs"], st["actions"], st["logprobs"], st["rewards"], st["next_obs"], st["term"], st["done"]
    )


# --------------------------------------------------------------------------------------------- losses
def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    dones: torch.Tensor,
    gamma: torch.Tensor,
    lam: torch.Tensor,
) -> torch.Tensor:
    """Generalised advantage estimates ``[T, N]``; differentiable in ``gamma`` and ``lam`` (0-d tensors)."""
    adv = torch.zeros_like(rewards[0])
    out = []
    for t in reversed(range(rewards.shape[0])):
        delta = rewards[t] + gamma * (1.0 - terminated[t]) * next_values[t] - values[t]
        adv = delta + gamma * lam * (1.0 - dones[t]) * adv
        out.append(adv)
    return torch.stack(out[::-1])


def gae_targets(
    net: ActorCriticNet,
    params: Mapping[str, torch.Tensor],
    batch: Rollout,
    eta: Mapping[str, torch.Tensor],
    inputs: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat advantages and lambda-returns of ``batch``; ``inputs``: network inputs of obs, then next_obs.

    Values come from detached parameters (semi-gradient) but stay functions of any eta in ``inputs``
    (conditioning), and the estimates are functions of ``eta["gamma"]`` and ``eta["gae_lambda"]``.
    """
    T, N = batch.rewards.shape
    _, v_all = functional_call(net, {k: v.detach() for k, v in params.items()}, (inputs,))
    values, next_values = v_all[: T * N].view(T, N), v_all[T * N :].view(T, N)
    adv = gae(
        batch.rewards, values, next_values, batch.terminated, batch.dones, eta["gamma"], eta["gae_lambda"]
    )
    return adv.flatten(), (adv + values).flatten()


def actor_critic_loss(
    net: ActorCriticNet,
    params: Mapping[str, torch.Tensor],
    batch: Rollout,
    eta: Mapping[str, torch.Tensor],
    cfg: ActorCriticConfig,
    condition: Mapping[str, torch.Tensor] | None = None,
    targets: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``pg_coef * policy loss + vf_coef * value loss - ent_coef * entropy`` under ``eta``.

    Advantages and value targets are semi-gradient: they use values computed with detached parameters, but
    keep their dependence on ``eta["gamma"]``, ``eta["gae_lambda"]`` and on the eta the network is
    conditioned on (``condition``). ``targets`` (flat advantages, returns) replaces them with given values.
    """
    T, N = batch.rewards.shape
    obs = torch.cat([batch.obs, batch.next_obs]).flatten(0, 1)
    if condition is not None:
        obs = torch.cat([obs, _eta_features(condition, obs.shape[0]).to(obs.dtype)], -1)
    dist, v_all = functional_call(net, dict(params), (obs,))
    values = v_all[: T * N]
    if net.discrete:
        dist = Categorical(logits=dist.logits[: T * N], validate_args=False)
    else:
        dist = Normal(dist.mean[: T * N], dist.stddev[: T * N], validate_args=False)
    logp, entropy = _log_prob(dist, batch.actions.flatten(0, 1), net.discrete)
    if targets is None:
        adv, returns = gae_targets(net, params, batch, eta, obs)
    else:
        adv, returns = targets
    if cfg.norm_adv:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    if cfg.clip_coef is None:
        pg_loss = -(adv * logp).mean()
    else:
        ratio = torch.exp(logp - batch.logprobs.flatten())
        clipped = ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)
        pg_loss = torch.max(-adv * ratio, -adv * clipped).mean()
    v_loss = 0.5 * ((values - returns) ** 2).mean()
    ent = entropy.mean()
    loss = eta["pg_coef"] * pg_loss + eta["vf_coef"] * v_loss - eta["ent_coef"] * ent
    stats = {"pg_loss": pg_loss.item(), "v_loss": v_loss.item(), "entropy": ent.item()}
    return loss, stats


def inner_update(
    net: ActorCriticNet,
    params: Mapping[str, torch.Tensor],
    opt_state: Mapping[str, torch.Tensor],
    batch: Rollout,
    eta: Mapping[str, torch.Tensor],
    cfg: ActorCriticConfig,
    create_graph: bool,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, float]]:
    """The agent's update as a pure function: ``(params, opt_state) -> (params', opt_state')``.

    With ``create_graph`` the returned parameters stay functions of ``eta`` (and of ``params``), so a loss
    computed with them can be differentiated with respect to eta. ``opt_state`` maps parameter names to
    RMSProp's squared-gradient averages (empty before the first step).
    """
    names = list(params)
    cur = dict(params)
    state = dict(opt_state)
    stats: dict[str, float] = {}
    cond = eta if cfg.condition_on_eta else None
    # As in PPO, advantages and returns come from the values before the update and are reused by every
    # epoch; they depend on eta (gamma, lambda, conditioning) but not on the parameters being updated.
    inputs = torch.cat([batch.obs, batch.next_obs]).flatten(0, 1)
    if cond is not None:
        inputs = torch.cat([inputs, _eta_features(cond, inputs.shape[0]).to(inputs.dtype)], -1)
    targets = gae_targets(net, cur, batch, eta, inputs)
    for _ in range(cfg.update_epochs):
        loss, stats = actor_critic_loss(net, cur, batch, eta, cfg, cond, targets)
        grads = torch.autograd.grad(loss, [cur[k] for k in names], create_graph=create_graph)
        if cfg.max_grad_norm > 0:
            norm = torch.stack([(g**2).sum() for g in grads]).sum().sqrt()
            scale = torch.clamp(cfg.max_grad_norm / (norm + 1e-6), max=1.0)
            grads = tuple(g * scale for g in grads)
        new = {}
        for k, g in zip(names, grads, strict=True):
            if cfg.inner_optimizer == "sgd":
                new[k] = cur[k] - cfg.lr * g
                continue
            sq = state.get(k, g.detach() ** 2)
            new[k] = cur[k] - cfg.lr * g / (sq.sqrt() + cfg.rms_eps)
            state[k] = cfg.rms_decay * sq + (1 - cfg.rms_decay) * g.detach() ** 2
        cur = new
        stats["loss"] = loss.item()
    return cur, state, stats


def meta_loss(
    net: ActorCriticNet,
    new_params: Mapping[str, torch.Tensor],
    batch: Rollout,
    cfg: ActorCriticConfig,
    targets: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The meta-objective: the actor-critic loss of the updated parameters on the next batch under eta_ref.

    Its advantages and returns are held fixed (semi-gradient, as in both papers): the meta-gradient is the
    exact gradient of this loss with ``targets`` frozen at their current values.
    """
    ref = {k: v.to(batch.rewards.dtype) for k, v in cfg.reference_eta().items()}
    cond = ref if cfg.condition_on_eta else None
    loss, _ = actor_critic_loss(net, new_params, batch, ref, cfg, cond, targets)
    return loss


# --------------------------------------------------------------------------------------------- meta-params
def eta_to_raw(name: str, value: float) -> float:
    """Unconstrained value of eta ``name``: logit for gamma and lambda, inverse softplus for coefficients."""
    if name in _SIGMOID_ETA:
        return math.log(value / (1.0 - value))
    return value + math.log(-math.expm1(-value)) if value > 0 else -20.0


def raw_to_eta(name: str, raw: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`eta_to_raw`, differentiable."""
    return torch.sigmoid(raw) if name in _SIGMOID_ETA else nn.functional.softplus(raw)


class MetaParams(nn.Module):
    """The learned eta (unconstrained tensors) plus the fixed ones; :meth:`forward` gives eta in range."""

    def __init__(self, cfg: ActorCriticConfig):
        super().__init__()
        self.learned = cfg.learned
        self.raw = nn.ParameterDict(
            {n: nn.Parameter(torch.tensor(eta_to_raw(n, float(getattr(cfg, n))))) for n in self.learned}
        )
        self.fixed = {n: torch.tensor(float(getattr(cfg, n))) for n in ETA_NAMES if n not in self.learned}

    def forward(self) -> dict[str, torch.Tensor]:
        eta = {n: raw_to_eta(n, p) for n, p in self.raw.items()}
        return {n: eta[n] if n in eta else self.fixed[n] for n in ETA_NAMES}

    def set(self, name: str, value: float) -> None:
        """Overwrite eta ``name`` (learned or not) with ``value``."""
        if name in self.raw:
            with torch.no_grad():
                self.raw[name].fill_(eta_to_raw(name, value))
        else:
            self.fixed[name] = torch.tensor(float(value))


# --------------------------------------------------------------------------------------------- the target
class ActorCriticTarget:
    """Trainable actor-critic; one budget unit is one environment step (summed over the vector envs).

    ``train(n)`` returns ``eval_return`` (mean return of ``eval_episodes`` deterministic episodes on a
    separately seeded env), ``train_return`` (mean of the training episodes finished in this call), the
    current ``eta_<name>`` values, ``meta_time_share`` (fraction of this agent's training wall time spent
    in meta-steps, cumulative) and ``env_steps``. :attr:`history` holds one row every ``log_every``
    iterations.
    """

    def __init__(self, config: Mapping[str, Any], ctx: TrialContext) -> None:
        torch.set_num_threads(1)
        self.cfg = ActorCriticConfig.from_dict(config)
        self.seed = int(ctx.seed)
        self.out_dir = ctx.checkpoint_dir  # in a sweep: where eta_history.csv and eta.png go
        self.total_budget = int(ctx.budget)
        cfg = self.cfg
        self.env = make_envs(cfg.env_id, cfg.num_envs, self.seed, self._env_fn())
        self.eval_env = gym.make(cfg.env_id)
        self._eval_seeded = False
        obs_dim = int(np.prod(self.env.envs.single_observation_space.shape or ()))
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            eta_dim = len(ETA_NAMES) if cfg.condition_on_eta else 0
            self.net = ActorCriticNet(obs_dim, self.env.envs.single_action_space, cfg.hidden, eta_dim)
        self.params = {k: v.detach().clone() for k, v in self.net.named_parameters()}
        self.opt_state: dict[str, torch.Tensor] = {}
        self.eta = MetaParams(cfg)
        self.meta_opt = self._make_meta_opt()
        self.gen = torch.Generator().manual_seed(self.seed)
        self.env_steps = 0
        self.iterations = 0
        self.train_time = 0.0
        self.meta_time = 0.0
        self.history: list[dict[str, float]] = []
        # The previous batch and the parameters/optimiser state it was applied to: the meta-step
        # differentiates the update they made; kept (not only the graph) so a checkpoint can rebuild it.
        self._prev: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], Rollout] | None = None
        self._pending: dict[str, torch.Tensor] | None = None

    # -- pieces
    def _env_fn(self) -> Callable[[], gym.Env] | None:
        """The training envs' factory; None = ``gym.make(env_id)`` (subclasses plug in other envs)."""
        return None

    def _make_meta_opt(self) -> torch.optim.Optimizer | None:
        if not self.cfg.learned:
            return None
        params = list(self.eta.raw.parameters())
        if self.cfg.meta_optimizer == "adam":
            return torch.optim.Adam(params, lr=self.cfg.meta_lr)
        return torch.optim.SGD(params, lr=self.cfg.meta_lr)

    def current_eta(self) -> dict[str, float]:
        """eta in range, as floats."""
        with torch.no_grad():
            return {n: float(v) for n, v in self.eta().items()}

    def _eta_feats(self) -> torch.Tensor | None:
        if not self.cfg.condition_on_eta:
            return None
        with torch.no_grad():
            return _eta_features(self.eta(), 1)

    def _meta_step(self, batch: Rollout) -> None:
        assert self._prev is not None and self.meta_opt is not None
        if self._pending is None:  # after load(): rebuild the differentiable update from the saved pieces
            p_prev, s_prev, b_prev = self._prev
            leaves = {k: v.detach().requires_grad_() for k, v in p_prev.items()}
            self._pending, _, _ = inner_update(self.net, leaves, s_prev, b_prev, self.eta(), self.cfg, True)
        loss = meta_loss(self.net, self._pending, batch, self.cfg)
        raw = list(self.eta.raw.values())
        grads = torch.autograd.grad(loss, raw)
        if self.cfg.meta_max_grad_norm > 0:
            norm = float(torch.stack([(g**2).sum() for g in grads]).sum().sqrt())
            grads = tuple(g * min(1.0, self.cfg.meta_max_grad_norm / (norm + 1e-12)) for g in grads)
        for p, g in zip(raw, grads, strict=True):
            p.grad = g
        self.meta_opt.step()
        self.meta_opt.zero_grad(set_to_none=True)
        self._pending = None

    def _iteration(self) -> dict[str, float]:
        cfg = self.cfg
        batch = collect_rollout(
            self.net, self.params, self.env, cfg.num_steps, self.gen, self._eta_feats(), cfg.reward_scale
        )
        self.env_steps += cfg.num_envs * cfg.num_steps
        if self.meta_opt is not None and self._prev is not None:
            t0 = time.perf_counter()
            self._meta_step(batch)
            self.meta_time += time.perf_counter() - t0
        meta = self.meta_opt is not None
        leaves = {k: v.requires_grad_() for k, v in self.params.items()}
        new, state, stats = inner_update(self.net, leaves, self.opt_state, batch, self.eta(), cfg, meta)
        if meta:
            self._prev = (self.params, self.opt_state, batch)
            self._pending = new
        self.params = {k: v.detach() for k, v in new.items()}
        self.opt_state = state
        self.iterations += 1
        return stats

    # -- evaluation
    @torch.no_grad()
    def act(self, obs: np.ndarray, feats: torch.Tensor | None = None) -> Any:
        """The deterministic action (argmax, or the Gaussian mean clipped to the action box)."""
        x = torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0)
        if self.cfg.condition_on_eta:
            eta = self._eta_feats() if feats is None else feats
            assert eta is not None  # conditioning on eta: there are features
            x = torch.cat([x, eta], -1)
        dist, _ = functional_call(self.net, self.params, (x,))
        if self.net.discrete:
            return int(dist.logits.argmax(-1))
        box = self.eval_env.action_space
        assert isinstance(box, gym.spaces.Box)
        return np.clip(dist.mean[0].numpy(), box.low, box.high)

    @torch.no_grad()
    def evaluate(self, episodes: int | None = None) -> float:
        """Mean return of deterministic episodes (argmax / Gaussian mean) on the evaluation env."""
        episodes = self.cfg.eval_episodes if episodes is None else episodes
        feats = self._eta_feats()
        total = 0.0
        for _ in range(episodes):
            if not self._eval_seeded:
                obs, _ = self.eval_env.reset(seed=self.seed + 10_000)
                self._eval_seeded = True
            else:
                obs, _ = self.eval_env.reset()
            done = False
            while not done:
                obs, reward, term, trunc, _ = self.eval_env.step(self.act(obs, feats))
                total += float(reward)
                done = term or trunc
        return total / max(episodes, 1)

    # -- Trainable interface
    def train(self, budget: int) -> dict[str, float]:
        """Train ``budget`` more env steps, rounded up to whole batches (from the steps already done)."""
        until = self.env_steps + int(budget)
        self.env.finished.clear()
        stats: dict[str, float] = {}
        while self.env_steps < until:
            start = time.perf_counter()
            stats = self._iteration()
            self.train_time += time.perf_counter() - start  # per iteration, so logged shares are current
            if self.iterations % self.cfg.log_every == 0:
                self._log(stats)
        eval_return = self.evaluate()
        finished = self.env.finished
        metrics = {
            "eval_return": eval_return,
            "train_return": float(np.mean(finished)) if finished else float("nan"),
            "env_steps": float(self.env_steps),
            "budget": float(self.env_steps),  # whole batches: may pass the requested budget a little
            "meta_time_share": self.meta_time / self.train_time if self.train_time > 0 else 0.0,
            **{f"eta_{k}": v for k, v in self.current_eta().items()},
            **stats,
        }
        self.history.append({**self._row(stats), "eval_return": eval_return})
        if self.out_dir is not None and self.cfg.learned:
            self._write_history()
        return metrics

    def _write_history(self) -> None:
        """In a sweep, keep eta over env steps next to the trial (and its plot once the run ends)."""
        import pandas as pd

        out = Path(self.out_dir)  # type: ignore[arg-type]
        out.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(self.history).to_csv(out / "eta_history.csv", index=False)
        if self.env_steps >= self.total_budget:
            plot_history(self.history, out / "eta.png", title=f"{self.cfg.env_id}, seed {self.seed}")

    def _row(self, stats: Mapping[str, float]) -> dict[str, float]:
        finished = self.env.finished[-20:]
        return {
            "env_steps": float(self.env_steps),
            **{f"eta_{k}": v for k, v in self.current_eta().items()},
            "train_return": float(np.mean(finished)) if finished else float("nan"),
            "eval_return": float("nan"),
            "meta_time_share": self.meta_time / self.train_time if self.train_time > 0 else 0.0,
            "loss": float(stats.get("loss", float("nan"))),
        }

    def _log(self, stats: Mapping[str, float]) -> None:
        self.history.append(self._row(stats))

    def save(self, path: Path) -> None:
        """Write weights, optimiser states, eta, RNG and counters (``agent.pt``: tensors and plain data,
        read back with ``weights_only=True``) and the gymnasium envs mid-episode (``envs.pkl``, pickled:
        the only way to continue an arbitrary gymnasium env exactly) under ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {
            "params": self.params,
            "opt_state": self.opt_state,
            "eta": self.eta.state_dict(),
            "eta_fixed": self.eta.fixed,
            "meta_opt": self.meta_opt.state_dict() if self.meta_opt is not None else None,
            "gen": self.gen.get_state(),
            "counters": (self.env_steps, self.iterations, self.train_time, self.meta_time),
            "history": self.history,
            "prev": (self._prev[0], self._prev[1], asdict(self._prev[2])) if self._prev else None,
            "cfg": asdict(self.cfg),
        }
        torch.save(state, path / "agent.pt")
        with open(path / "envs.pkl", "wb") as f:
            pickle.dump((self.env, self.eval_env, self._eval_seeded), f)

    def load(self, path: Path) -> None:
        """Restore what :meth:`save` wrote; training then continues as if never stopped."""
        path = Path(path)
        state = torch.load(path / "agent.pt", weights_only=True)
        self.params = state["params"]
        self.opt_state = state["opt_state"]
        self.eta.load_state_dict(state["eta"])
        self.eta.fixed = state["eta_fixed"]
        if self.meta_opt is not None and state["meta_opt"] is not None:
            self.meta_opt.load_state_dict(state["meta_opt"])
        self.gen.set_state(state["gen"])
        self.env_steps, self.iterations, self.train_time, self.meta_time = state["counters"]
        self.history = copy.deepcopy(state["history"])
        prev = state["prev"]
        self._prev = (prev[0], prev[1], Rollout(**prev[2])) if prev else None
        self._pending = None
        with open(path / "envs.pkl", "rb") as f:
            self.env, self.eval_env, self._eval_seeded = pickle.load(f)

    def reconfigure(self, config: Mapping[str, Any]) -> None:
        """Change ``lr``, ``meta_lr`` or any eta value mid-run (PBT); other keys are errors."""
        for key, value in config.items():
            if key == "lr":
                self.cfg.lr = float(value)
            elif key == "meta_lr":
                self.cfg.meta_lr = float(value)
                if self.meta_opt is not None:
                    for group in self.meta_opt.param_groups:
                        group["lr"] = float(value)
            elif key in ETA_NAMES:
                setattr(self.cfg, key, float(value))
                self.eta.set(key, float(value))
                self._pending = None  # the cached graph was built with the old eta
            else:
                raise ConfigError(
                    f"cannot change mid-run; mutable keys are lr, meta_lr, {', '.join(ETA_NAMES)}", key=key
                )


# --------------------------------------------------------------------------------------------- outputs
def plot_history(history: Sequence[Mapping[str, float]], path: Path, title: str = "") -> None:
    """Write a PNG: eta (gamma, lambda; loss coefficients) over env steps, returns, meta-step time share."""
    from autorl.plotting import pyplot, save_figure

    plt = pyplot()

    rows = sorted(history, key=lambda r: r["env_steps"])
    x = np.array([r["env_steps"] for r in rows])

    def col(key: str) -> np.ndarray:
        return np.array([r.get(key, float("nan")) for r in rows], dtype=float)

    fig, axes = plt.subplots(2, 2, figsize=(9, 5.5), sharex=True)
    ax = axes[0, 0]
    for k, label in (("eta_gamma", r"$\gamma$"), ("eta_gae_lambda", r"$\lambda$")):
        ax.plot(x, col(k), label=label)
    ax.set_ylabel(r"$\gamma$, $\lambda$")
    ax.legend()
    ax = axes[0, 1]
    for k in ("eta_ent_coef", "eta_vf_coef", "eta_pg_coef"):
        ax.plot(x, col(k), label=k[4:])
    ax.set_yscale("log")
    ax.set_ylabel("loss coefficients")
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    ax.plot(x, col("train_return"), label="train (last 20 episodes)", alpha=0.7)
    ev = col("eval_return")
    ok = np.isfinite(ev)
    ax.plot(x[ok], ev[ok], "o-", label="eval")
    ax.set_ylabel("return")
    ax.set_xlabel("env steps")
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    ax.plot(x, col("meta_time_share"))
    ax.set_ylim(0, 1)
    ax.set_ylabel("meta-step share of wall time")
    ax.set_xlabel("env steps")
    if title:
        fig.suptitle(title)
    save_figure(fig, path, dpi=80)
