"""Batched classic-control environments: N copies of a gymnasium task stepped as one torch computation.

CartPole-v1, Acrobot-v1, MountainCar-v0, MountainCarContinuous-v0 and Pendulum-v1 reproduce gymnasium
1.4.0's dynamics, rewards, terminations, time limits and observations; in float64 they follow
gymnasium's trajectories to rounding. The conventions:

* Every copy has its own physical parameters: tensors of shape ``[N]`` named as the context keys of
  :mod:`autorl.envs.families`, settable per copy at any time with :meth:`BatchedEnv.set_params`.
* The envs draw no random numbers. The caller passes uniforms in ``[0, 1)`` (``spec.reset_dims`` per
  initial state), so that every population member can have its own random stream.
* Auto-reset follows SB3's same-step convention: where an episode ends, :meth:`BatchedEnv.step`
  returns the first observation of the next episode in ``obs`` and the last observation of the
  finished one in ``final_obs``.
* ``truncated`` means that the time limit ended an episode that did not terminate (gymnasium's
  TimeLimit also sets it when both happen on the same step).
* Discrete actions are integer tensors ``[N]`` in ``{0, ..., n_actions - 1}`` (not checked, which
  would cost a device sync); continuous actions are ``[N, action_dim]`` and are clipped where
  gymnasium's dynamics clip them, never rejected.

Every task is a :class:`BatchedEnv` subclass registered in :data:`autorl.engine.parts.BATCHED_ENVS`
under its spec's name (the built-in ones there, by reference; a user's with :func:`register_env`, or a
plug-in's ``autorl.engine_envs`` entry point); :func:`make` builds one by name.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

import torch
from torch import Tensor

from autorl.engine.parts import BATCHED_ENVS
from autorl.errors import ConfigError
from autorl.registry import unknown_name


@dataclass(frozen=True)
class EnvSpec:
    """What a batched env is: its sizes, action space, time limit and physical parameters.

    Attributes:
        name: The gymnasium id, e.g. ``"CartPole-v1"``.
        obs_dim: Length of one observation.
        state_dim: Length of one internal state (``BatchedEnv.state`` is ``[N, state_dim]``).
        n_actions: The number of discrete actions, or None for a continuous action space.
        action_dim: Length of one action (1 for discrete actions).
        action_low: The continuous action space's lower bounds, else None.
        action_high: The continuous action space's upper bounds, else None.
        max_steps: The time limit, gymnasium's ``max_episode_steps``.
        reset_dims: How many uniforms in ``[0, 1)`` one initial state takes.
        params: The physical parameters and their defaults (read-only).
    """

    name: str
    obs_dim: int
    state_dim: int
    n_actions: int | None
    action_dim: int
    action_low: tuple[float, ...] | None
    action_high: tuple[float, ...] | None
    max_steps: int
    reset_dims: int
    params: Mapping[str, float] = field(hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))


@dataclass(frozen=True, eq=False)
class StepResult:
    """What one batched step returns.

    Attributes:
        obs: ``[N, obs_dim]``; where an episode ended, the first observation of the next one.
        reward: ``[N]``.
        terminated: ``[N]`` bool: the step reached a terminal state.
        truncated: ``[N]`` bool: the time limit ended an episode that did not terminate.
        final_obs: ``[N, obs_dim]``: the observation the step reached, before any reset; equal to
            ``obs`` where the episode goes on (for bootstrapping truncated episodes).
    """

    obs: Tensor
    reward: Tensor
    terminated: Tensor
    truncated: Tensor
    final_obs: Tensor

    @property
    def done(self) -> Tensor:
        """``[N]`` bool: the episode ended (terminated or truncated) and the copy was reset."""
        return self.terminated | self.truncated


def _uniform(u: Tensor, low: tuple[float, ...], high: tuple[float, ...]) -> Tensor:
    """``low + (high - low) * u`` per column, as numpy's ``Generator.uniform`` computes it."""
    span = tuple(h - lo for lo, h in zip(low, high, strict=True))
    return u.new_tensor(low) + u.new_tensor(span) * u


class BatchedEnv:
    """N copies of one task stepped together; a subclass per task supplies the dynamics.

    Attributes:
        spec: The task's EnvSpec.
        num_envs: N, the number of copies.
        device: Where every tensor lives.
        dtype: The floating dtype of states, observations, rewards and parameters.
        params: The physical parameters, each a ``[N]`` tensor (change them with :meth:`set_params`).
        state: ``[N, state_dim]``: the copies' states (zeros until :meth:`reset`).
        elapsed: ``[N]`` int64: steps since each copy's last reset.
    """

    spec: ClassVar[EnvSpec]

    def __init__(
        self, num_envs: int, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> None:
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.dtype = dtype
        self.params = {
            name: torch.full((num_envs,), default, dtype=dtype, device=self.device)
            for name, default in self.spec.params.items()
        }
        self.state = torch.zeros(num_envs, self.spec.state_dim, dtype=dtype, device=self.device)
        self.elapsed = torch.zeros(num_envs, dtype=torch.int64, device=self.device)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.spec.name}, num_envs={self.num_envs}, {self.device}, {self.dtype})"
        )

    # -- the per-task parts ------------------------------------------------------------------------

    def _initial(self, u: Tensor) -> Tensor:
        """Initial states ``[n, state_dim]`` from uniforms ``[n, reset_dims]`` (of the env's dtype)."""
        raise NotImplementedError

    def _dynamics(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One step of every copy: the next state, the reward and whether it is terminal."""
        raise NotImplementedError

    def _observe(self, state: Tensor) -> Tensor:
        """The observations ``[n, obs_dim]`` of states ``[n, state_dim]``."""
        raise NotImplementedError

    # -- the common interface ----------------------------------------------------------------------

    def set_params(self, values: Mapping[str, Tensor | float], where: Tensor | None = None) -> None:
        """Set physical parameters, for every copy or only for the copies in ``where``.

        The tensors in ``params`` are updated in place, so references to them stay valid.

        Args:
            values: ``{name: value}``, each value a float or a tensor broadcastable to ``[N]`` (cast to
                the env's dtype: a float32 tensor loses precision in a float64 env).
            where: Optional ``[N]`` bool mask of the copies to change.

        Raises:
            ConfigError: (a ValueError) for an unknown name; nothing is changed then.
        """
        for name in values:
            if name not in self.params:
                raise ConfigError(unknown_name(f"{self.spec.name} parameter", name, self.params))
        for name, value in values.items():
            current = self.params[name]
            new = torch.as_tensor(value, dtype=self.dtype, device=self.device)
            current.copy_(new if where is None else torch.where(where, new, current))

    def initial_state(self, u: Tensor) -> Tensor:
        """Initial states drawn as gymnasium's ``reset`` draws them.

        Args:
            u: ``[n, reset_dims]`` uniforms in ``[0, 1)`` (gymnasium's ``np_random.random`` draws).

        Returns:
            ``[n, state_dim]`` states.
        """
        if u.dim() != 2 or u.shape[1] != self.spec.reset_dims:
            raise ValueError(
                f"{self.spec.name} takes uniforms of shape [n, {self.spec.reset_dims}], got {list(u.shape)}"
            )
        return self._initial(u.to(device=self.device, dtype=self.dtype))

    def reset(self, u: Tensor) -> Tensor:
        """Start a new episode in every copy, from uniforms ``u`` ``[N, reset_dims]``; returns the obs."""
        self._check_rows(u, self.spec.reset_dims, "u")
        self.state = self.initial_state(u)
        self.elapsed = torch.zeros_like(self.elapsed)
        return self.obs()

    def set_state(self, state: Tensor, where: Tensor | None = None) -> None:
        """Start copies from given states ``[N, state_dim]``: all, or those in ``where`` (``[N]`` bool).

        Their step counters restart at 0. Meant for tests and for replaying recorded states.
        """
        self._check_rows(state, self.spec.state_dim, "state")
        state = state.to(device=self.device, dtype=self.dtype)
        if where is None:
            self.state = state.clone()
            self.elapsed = torch.zeros_like(self.elapsed)
        else:
            self.state = torch.where(where[:, None], state, self.state)
            self.elapsed = self.elapsed.masked_fill(where, 0)

    def obs(self) -> Tensor:
        """The current observations ``[N, obs_dim]``."""
        return self._observe(self.state)

    def step(self, action: Tensor, u_reset: Tensor) -> StepResult:
        """Advance every copy by one step; copies whose episode ends start the next one at once.

        Args:
            action: ``[N]`` integers for a discrete task, ``[N, action_dim]`` for a continuous one.
            u_reset: ``[N, reset_dims]`` uniforms in ``[0, 1)``; row i draws copy i's next initial
                state and is used only where copy i's episode ends.

        Returns:
            The StepResult (obs, reward, terminated, truncated, final_obs).
        """
        self._check_rows(u_reset, self.spec.reset_dims, "u_reset")
        state, reward, terminated = self._dynamics(self.state, self._checked_action(action))
        elapsed = self.elapsed + 1
        truncated = (elapsed >= self.spec.max_steps) & ~terminated
        done = terminated | truncated
        final_obs = self._observe(state)
        self.state = torch.where(done[:, None], self.initial_state(u_reset), state)
        self.elapsed = elapsed.masked_fill(done, 0)
        return StepResult(self.obs(), reward, terminated, truncated, final_obs)

    def _check_rows(self, x: Tensor, width: int, what: str) -> None:
        if tuple(x.shape) != (self.num_envs, width):
            raise ValueError(f"{what} must have shape [{self.num_envs}, {width}], got {list(x.shape)}")

    def _checked_action(self, action: Tensor) -> Tensor:
        if self.spec.n_actions is not None:
            if tuple(action.shape) != (self.num_envs,):
                raise ValueError(
                    f"{self.spec.name} takes discrete actions of shape [{self.num_envs}], "
                    f"got {list(action.shape)}"
                )
            return action.to(self.device)
        if tuple(action.shape) != (self.num_envs, self.spec.action_dim):
            raise ValueError(
                f"{self.spec.name} takes actions of shape [{self.num_envs}, {self.spec.action_dim}], "
                f"got {list(action.shape)}"
            )
        return action.to(device=self.device, dtype=self.dtype)


class CartPole(BatchedEnv):
    """CartPole-v1: the euler integrator and a reward of 1 per step (``sutton_barto_reward=False``).

    State and observation: ``(x, x_dot, theta, theta_dot)``. ``pole_length`` is the half-length, as
    gymnasium stores it; the total mass and ``polemass_length`` are computed from the parameters.
    """

    spec = EnvSpec(
        "CartPole-v1",
        obs_dim=4,
        state_dim=4,
        n_actions=2,
        action_dim=1,
        action_low=None,
        action_high=None,
        max_steps=500,
        reset_dims=4,
        params={"pole_length": 0.5, "cart_mass": 1.0, "pole_mass": 0.1, "force_mag": 10.0, "gravity": 9.8},
    )
    TAU = 0.02
    X_THRESHOLD = 2.4
    THETA_THRESHOLD = 12 * 2 * math.pi / 360

    def _initial(self, u: Tensor) -> Tensor:
        return _uniform(u, (-0.05,) * 4, (0.05,) * 4)

    def _dynamics(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        p = self.params
        length, masspole, gravity = p["pole_length"], p["pole_mass"], p["gravity"]
        total_mass = masspole + p["cart_mass"]
        polemass_length = masspole * length
        x, x_dot, theta, theta_dot = state.unbind(1)

        force = torch.where(action == 1, p["force_mag"], -p["force_mag"])
        costheta, sintheta = torch.cos(theta), torch.sin(theta)
        temp = (force + polemass_length * theta_dot.square() * sintheta) / total_mass
        thetaacc = (gravity * sintheta - costheta * temp) / (
            length * (4.0 / 3.0 - masspole * costheta.square() / total_mass)
        )
        xacc = temp - polemass_length * thetaacc * costheta / total_mass

        tau = self.TAU
        x, theta = x + tau * x_dot, theta + tau * theta_dot
        x_dot, theta_dot = x_dot + tau * xacc, theta_dot + tau * thetaacc
        terminated = (x.abs() > self.X_THRESHOLD) | (theta.abs() > self.THETA_THRESHOLD)
        return torch.stack((x, x_dot, theta, theta_dot), 1), torch.ones_like(x), terminated

    def _observe(self, state: Tensor) -> Tensor:
        return state


class Acrobot(BatchedEnv):
    """Acrobot-v1: one RK4 step of 0.2 s of the "book" dynamics, without torque noise.

    State: ``(theta1, theta2, dtheta1, dtheta2)``; observation: ``(cos theta1, sin theta1, cos theta2,
    sin theta2, dtheta1, dtheta2)``. As in gymnasium, the dynamics read ``link_length_1`` and the two
    masses but not ``link_length_2`` (gymnasium draws with it only); the centres of mass stay at 0.5,
    the moments of inertia at 1.0 and the goal test (``-cos t1 - cos(t1 + t2) > 1``) ignores the lengths.
    """

    spec = EnvSpec(
        "Acrobot-v1",
        obs_dim=6,
        state_dim=4,
        n_actions=3,
        action_dim=1,
        action_low=None,
        action_high=None,
        max_steps=500,
        reset_dims=4,
        params={"link_length_1": 1.0, "link_length_2": 1.0, "link_mass_1": 1.0, "link_mass_2": 1.0},
    )
    DT = 0.2
    LINK_COM_POS_1 = 0.5
    LINK_COM_POS_2 = 0.5
    LINK_MOI = 1.0
    GRAVITY = 9.8
    MAX_VEL_1 = 4 * math.pi
    MAX_VEL_2 = 9 * math.pi

    def _initial(self, u: Tensor) -> Tensor:
        # gymnasium keeps the initial state as float32
        return _uniform(u, (-0.1,) * 4, (0.1,) * 4).to(torch.float32).to(self.dtype)

    def _dynamics(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        torque = (action - 1).to(self.dtype)  # AVAIL_TORQUE = [-1, 0, 1]
        c, dt = self._coefficients(), self.DT
        k1 = self._dsdt(state, torque, c)
        k2 = self._dsdt(state + dt / 2.0 * k1, torque, c)
        k3 = self._dsdt(state + dt / 2.0 * k2, torque, c)
        k4 = self._dsdt(state + dt * k3, torque, c)
        theta1, theta2, dtheta1, dtheta2 = (state + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)).unbind(1)

        theta1, theta2 = _wrap(theta1, -math.pi, math.pi), _wrap(theta2, -math.pi, math.pi)
        dtheta1 = dtheta1.clamp(-self.MAX_VEL_1, self.MAX_VEL_1)
        dtheta2 = dtheta2.clamp(-self.MAX_VEL_2, self.MAX_VEL_2)
        terminated = -torch.cos(theta1) - torch.cos(theta2 + theta1) > 1.0
        reward = terminated.to(self.dtype) - 1.0
        return torch.stack((theta1, theta2, dtheta1, dtheta2), 1), reward, terminated

    def _coefficients(self) -> dict[str, Tensor]:
        """The parameter-only factors of gymnasium's ``_dsdt``, computed once per step, not per RK4 stage.

        Each is grouped as gymnasium's left-to-right evaluation groups it, so the results are the same
        to the last bit; the comments give gymnasium's expressions they stand for.
        """
        m1, m2, l1 = self.params["link_mass_1"], self.params["link_mass_2"], self.params["link_length_1"]
        lc1, lc2, i2, g = self.LINK_COM_POS_1, self.LINK_COM_POS_2, self.LINK_MOI, self.GRAVITY
        return {
            "d1_const": m1 * lc1**2,  # m1 * lc1**2
            "d1_sum": l1**2 + lc2**2,  # l1**2 + lc2**2
            "d1_cos": 2 * l1 * lc2,  # 2 * l1 * lc2
            "d2_cos": l1 * lc2,  # l1 * lc2
            "phi2": m2 * lc2 * g,  # m2 * lc2 * g
            "phi1_sq": -m2 * l1 * lc2,  # -m2 * l1 * lc2
            "phi1_cross": 2 * m2 * l1 * lc2,  # 2 * m2 * l1 * lc2
            "phi1_grav": (m1 * lc1 + m2 * l1) * g,  # (m1 * lc1 + m2 * l1) * g
            "coriolis": m2 * l1 * lc2,  # m2 * l1 * lc2
            "inertia2": m2 * lc2**2 + i2,  # m2 * lc2**2 + I2
        }

    def _dsdt(self, s: Tensor, a: Tensor, c: dict[str, Tensor]) -> Tensor:
        """The state's time derivative under torque ``a`` (gymnasium's ``_dsdt``, "book" variant)."""
        m2, lc2, pi = self.params["link_mass_2"], self.LINK_COM_POS_2, math.pi
        i1 = i2 = self.LINK_MOI
        theta1, theta2, dtheta1, dtheta2 = s.unbind(1)
        cos2, sin2 = torch.cos(theta2), torch.sin(theta2)

        d1 = c["d1_const"] + m2 * (c["d1_sum"] + c["d1_cos"] * cos2) + i1 + i2
        d2 = m2 * (lc2**2 + c["d2_cos"] * cos2) + i2
        phi2 = c["phi2"] * torch.cos(theta1 + theta2 - pi / 2.0)
        phi1 = (
            c["phi1_sq"] * dtheta2**2 * sin2
            - c["phi1_cross"] * dtheta2 * dtheta1 * sin2
            + c["phi1_grav"] * torch.cos(theta1 - pi / 2)
            + phi2
        )
        ddtheta2 = (a + d2 / d1 * phi1 - c["coriolis"] * dtheta1**2 * sin2 - phi2) / (
            c["inertia2"] - d2**2 / d1
        )
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return torch.stack((dtheta1, dtheta2, ddtheta1, ddtheta2), 1)

    def _observe(self, state: Tensor) -> Tensor:
        theta1, theta2, dtheta1, dtheta2 = state.unbind(1)
        return torch.stack(
            (torch.cos(theta1), torch.sin(theta1), torch.cos(theta2), torch.sin(theta2), dtheta1, dtheta2), 1
        )


def _wrap(x: Tensor, low: float, high: float) -> Tensor:
    """gymnasium's ``wrap``: shift by whole periods ``high - low`` until ``low <= x <= high``."""
    period = high - low
    x = x - period * torch.ceil((x - high) / period).clamp(min=0)
    return x + period * torch.ceil((low - x) / period).clamp(min=0)


class MountainCar(BatchedEnv):
    """MountainCar-v0: velocity clipped to 0.07, position to [-1.2, 0.6], stopped by the left wall.

    State and observation: ``(position, velocity)``; the reward is -1 per step.
    """

    spec = EnvSpec(
        "MountainCar-v0",
        obs_dim=2,
        state_dim=2,
        n_actions=3,
        action_dim=1,
        action_low=None,
        action_high=None,
        max_steps=200,
        reset_dims=1,
        params={"force": 0.001, "gravity": 0.0025},
    )
    MIN_POSITION = -1.2
    MAX_POSITION = 0.6
    MAX_SPEED = 0.07
    GOAL_POSITION = 0.5

    def _initial(self, u: Tensor) -> Tensor:
        return torch.cat((_uniform(u, (-0.6,), (-0.4,)), torch.zeros_like(u)), 1)

    def _dynamics(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        position, velocity = state.unbind(1)
        push = (action - 1).to(self.dtype) * self.params["force"]
        velocity = velocity + (push + torch.cos(3 * position) * (-self.params["gravity"]))
        velocity = velocity.clamp(-self.MAX_SPEED, self.MAX_SPEED)
        position = (position + velocity).clamp(self.MIN_POSITION, self.MAX_POSITION)
        velocity = torch.where((position <= self.MIN_POSITION) & (velocity < 0), 0.0, velocity)
        terminated = (position >= self.GOAL_POSITION) & (velocity >= 0)
        return torch.stack((position, velocity), 1), torch.full_like(position, -1.0), terminated

    def _observe(self, state: Tensor) -> Tensor:
        return state


class MountainCarContinuous(BatchedEnv):
    """MountainCarContinuous-v0: force = the action clipped to [-1, 1], times ``power``; goal at 0.45.

    The reward is 100 on reaching the goal minus 0.1 * action**2, of the action as given (gymnasium
    clips it for the dynamics only). gymnasium stores this env's state as float32 after every step,
    so in float64 the next state is rounded to float32 too (the first step starts from a float64 state).
    """

    spec = EnvSpec(
        "MountainCarContinuous-v0",
        obs_dim=2,
        state_dim=2,
        n_actions=None,
        action_dim=1,
        action_low=(-1.0,),
        action_high=(1.0,),
        max_steps=999,
        reset_dims=1,
        params={"power": 0.0015},
    )
    MIN_ACTION = -1.0
    MAX_ACTION = 1.0
    MIN_POSITION = -1.2
    MAX_POSITION = 0.6
    MAX_SPEED = 0.07
    GOAL_POSITION = 0.45
    GRAVITY = 0.0025

    def _initial(self, u: Tensor) -> Tensor:
        return torch.cat((_uniform(u, (-0.6,), (-0.4,)), torch.zeros_like(u)), 1)

    def _dynamics(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        position, velocity = state.unbind(1)
        force = action[:, 0].clamp(self.MIN_ACTION, self.MAX_ACTION)
        velocity = velocity + (force * self.params["power"] - self.GRAVITY * torch.cos(3 * position))
        velocity = velocity.clamp(-self.MAX_SPEED, self.MAX_SPEED)
        position = (position + velocity).clamp(self.MIN_POSITION, self.MAX_POSITION)
        velocity = torch.where((position <= self.MIN_POSITION) & (velocity < 0), 0.0, velocity)
        terminated = (position >= self.GOAL_POSITION) & (velocity >= 0)
        reward = 100.0 * terminated.to(self.dtype) - action[:, 0].square() * 0.1
        next_state = torch.stack((position, velocity), 1).to(torch.float32).to(self.dtype)
        return next_state, reward, terminated

    def _observe(self, state: Tensor) -> Tensor:
        return state


class Pendulum(BatchedEnv):
    """Pendulum-v1: torque clipped to ``max_torque`` (the action space stays [-2, 2]), speed to 8.

    State: ``(theta, theta_dot)``; observation: ``(cos theta, sin theta, theta_dot)``. The cost uses the
    angle normalised to [-pi, pi) and the clipped torque. Episodes never terminate.
    """

    spec = EnvSpec(
        "Pendulum-v1",
        obs_dim=3,
        state_dim=2,
        n_actions=None,
        action_dim=1,
        action_low=(-2.0,),
        action_high=(2.0,),
        max_steps=200,
        reset_dims=2,
        params={"mass": 1.0, "length": 1.0, "gravity": 10.0, "max_torque": 2.0},
    )
    MAX_SPEED = 8.0
    DT = 0.05

    def _initial(self, u: Tensor) -> Tensor:
        return _uniform(u, (-math.pi, -1.0), (math.pi, 1.0))

    def _dynamics(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        m, length, g, max_torque = (self.params[k] for k in ("mass", "length", "gravity", "max_torque"))
        th, thdot = state.unbind(1)
        u = action[:, 0].clamp(-max_torque, max_torque)
        angle = torch.remainder(th + math.pi, 2 * math.pi) - math.pi
        costs = angle**2 + 0.1 * thdot**2 + 0.001 * (u**2)
        newthdot = thdot + (3 * g / (2 * length) * torch.sin(th) + 3.0 / (m * length**2) * u) * self.DT
        newthdot = newthdot.clamp(-self.MAX_SPEED, self.MAX_SPEED)
        newth = th + newthdot * self.DT
        return torch.stack((newth, newthdot), 1), -costs, torch.zeros_like(th, dtype=torch.bool)

    def _observe(self, state: Tensor) -> Tensor:
        th, thdot = state.unbind(1)
        return torch.stack((torch.cos(th), torch.sin(th), thdot), 1)


def register_env(cls: type[BatchedEnv], description: str = "") -> type[BatchedEnv]:
    """Make ``cls`` available to :func:`make` and ``EngineConfig(env=...)`` under ``cls.spec.name``.

    Returns ``cls``, so it also works as a class decorator. ``description`` defaults to the first line
    of the class's docstring.

    Raises:
        TypeError: if ``cls`` is not a BatchedEnv subclass with an EnvSpec ``spec``.
        ValueError: if the name is taken (a subclass that keeps its parent's spec takes its parent's name).
    """
    spec = getattr(cls, "spec", None)
    if not (isinstance(cls, type) and issubclass(cls, BatchedEnv) and isinstance(spec, EnvSpec)):
        raise TypeError(f"register_env takes a BatchedEnv subclass with an EnvSpec spec, got {cls!r}")
    summary = (cls.__doc__ or "").strip().partition("\n")[0]
    BATCHED_ENVS.register(cls.spec.name, cls, description or summary, continuous=spec.n_actions is None)
    return cls


class _Specs(Mapping[str, EnvSpec]):
    """The specs of the registered batched envs by name: a read-only view of :data:`BATCHED_ENVS`, so
    an env registered later appears in it."""

    def __getitem__(self, name: str) -> EnvSpec:
        if name not in BATCHED_ENVS:
            raise KeyError(name)
        return BATCHED_ENVS.entry(name).load().spec

    def __contains__(self, name: object) -> bool:
        return name in BATCHED_ENVS

    def __iter__(self) -> Iterator[str]:
        return iter(BATCHED_ENVS.names())

    def __len__(self) -> int:
        return len(BATCHED_ENVS.names())


SPECS: Mapping[str, EnvSpec] = _Specs()


def make(
    env_id: str, num_envs: int, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> BatchedEnv:
    """``num_envs`` copies of the registered task ``env_id`` (a gymnasium id), with default parameters.

    Raises:
        ConfigError: (a ValueError) for an unknown id, naming the closest and all valid ones.
    """
    return BATCHED_ENVS.entry(env_id).load()(num_envs, device=device, dtype=dtype)
