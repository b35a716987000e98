"""Throughput of the torch PPO engine against a compiled JAX peer, PureJaxRL-style, on CartPole-v1.

Both sides train P PPO agents on CartPole-v1 with the same settings (SB3's PPO: separate 4-64-64 tanh
actor and critic, Adam with eps 1e-5, clip 0.2, value coefficient 0.5, no entropy bonus, gamma 0.99,
GAE lambda 0.95, max grad norm 0.5, advantages normalised per minibatch, 32 envs x 32 steps per rollout,
4 epochs x 4 minibatches, truncation bootstrapped from the final observation, no observation or reward
normalisation, no evaluation), on one thread each:

* the engine: ``autorl.engine.ppo.Population`` with ``torch.set_num_threads(1)``;
* the peer, written below: CartPole's dynamics as jnp functions, the members under ``jax.vmap`` (each
  with its own parameters, Adam state, envs, PRNG key and learning rate, a traced array), one update
  (rollout, GAE, 4 epochs) under ``jax.lax.scan`` and several updates per ``jax.jit`` call.

For each population size the table gives the peer's compile time (trace and XLA compile of its first
call, apart from any training), then env steps per second (P x 1,024 per update) of each side, measured
alternately (engine, jax, engine, jax, ...) over about ``--seconds`` each after a warm-up, every repeat
and the median, and the ratio engine / jax of the medians; the cpu column is process CPU time over wall
time while that side trained (about 1.0 on one thread). The process is pinned to one core
(``--no-pin`` lets XLA's extra threads use more). For P = 8 it then prints each side's mean
training episode return in its last call, a check that both learn (not a gate). The peer does less work
than the engine: no loss statistics, no explained variance, no guard against non-finite members.

JAX is an optional benchmark extra, never imported by autorl: ``pip install "jax[cpu]"`` (or ``pip
install jax`` for the CPU). Run: ``python benchmarks/engine_vs_jax.py [--json out.json]`` (about three
minutes with the defaults; ``--help`` for the sizes, seconds and repeats).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, NamedTuple

# One thread for XLA, set before jax is imported (it reads XLA_FLAGS once). XLA still ran about 1.35
# cores' worth of CPU time per wall second with it, so the process is also pinned to one core (below).
os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
if hasattr(os, "sched_setaffinity") and "--no-pin" not in sys.argv:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

try:
    import jax
    import jax.numpy as jnp
    from jax import lax
except ImportError:  # main() says how to install it
    jax = None

import numpy as np

N_ENVS, N_STEPS, N_EPOCHS, N_MINIBATCHES = 32, 32, 4, 4
ROLLOUT = N_ENVS * N_STEPS  # env steps per member per update
HIDDEN = 64
GAMMA, GAE_LAMBDA, CLIP, VF_COEF, MAX_GRAD_NORM, ADAM_EPS = 0.99, 0.95, 0.2, 0.5, 0.5, 1e-5
BETA1, BETA2 = 0.9, 0.999
STEPS_PER_CALL = 65_536  # env steps of the population per timed call: a call lasts about half a second


# -- CartPole-v1 as gymnasium 1.4.0 steps it (autorl.engine.envs.CartPole is the reference) -----------

GRAVITY, CART_MASS, POLE_MASS, POLE_LENGTH, FORCE_MAG, TAU = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
TOTAL_MASS, POLEMASS_LENGTH = POLE_MASS + CART_MASS, POLE_MASS * POLE_LENGTH
X_THRESHOLD, THETA_THRESHOLD, MAX_STEPS = 2.4, 12 * 2 * math.pi / 360, 500


def cartpole_reset(key: jax.Array, n: int) -> jax.Array:
    """``n`` initial states ``(x, x_dot, theta, theta_dot)``, each uniform in [-0.05, 0.05)."""
    return jax.random.uniform(key, (n, 4), minval=-0.05, maxval=0.05)


def cartpole_dynamics(state: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One euler step of states ``[n, 4]`` under actions ``[n]`` (1 pushes right): next state, terminal."""
    x, x_dot, theta, theta_dot = state.T
    force = jnp.where(action == 1, FORCE_MAG, -FORCE_MAG)
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    temp = (force + POLEMASS_LENGTH * theta_dot**2 * sin) / TOTAL_MASS
    theta_acc = (GRAVITY * sin - cos * temp) / (POLE_LENGTH * (4.0 / 3.0 - POLE_MASS * cos**2 / TOTAL_MASS))
    x_acc = temp - POLEMASS_LENGTH * theta_acc * cos / TOTAL_MASS
    x, theta = x + TAU * x_dot, theta + TAU * theta_dot
    x_dot, theta_dot = x_dot + TAU * x_acc, theta_dot + TAU * theta_acc
    terminated = (jnp.abs(x) > X_THRESHOLD) | (jnp.abs(theta) > THETA_THRESHOLD)
    return jnp.stack((x, x_dot, theta, theta_dot), 1), terminated


# -- one member's PPO (vmapped over the population below) ---------------------------------------------

# {"actor": [(w [in, out], b [out]) per layer], "critic": [...]} (Any: jax is imported only if installed)
Params = dict[str, list[tuple[Any, Any]]]


class Member(NamedTuple):
    """Everything one member owns; the population is the same tree with a leading axis P."""

    params: Params
    adam_m: Params
    adam_v: Params
    adam_step: jax.Array  # int32 []
    env_state: jax.Array  # [N_ENVS, 4]: CartPole observes its state
    elapsed: jax.Array  # int32 [N_ENVS]: steps since each env's reset
    ep_return: jax.Array  # [N_ENVS]: return so far of each env's episode
    key: jax.Array
    learning_rate: jax.Array  # []: traced, so that any value runs the same compiled code


class Transition(NamedTuple):
    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    done: jax.Array
    truncated: jax.Array
    final_obs: jax.Array  # the observation the step reached, before an auto-reset


def init_member(seed: jax.Array, learning_rate: jax.Array) -> Member:
    """A fresh member: SB3's orthogonal init (gain sqrt 2, 0.01 for the policy head, 1 for the value head),
    zero Adam moments, envs reset from its own key."""
    key, env_key, *layer_keys = jax.random.split(jax.random.key(seed), 8)
    sizes = [(4, HIDDEN), (HIDDEN, HIDDEN)]
    params: Params = {}
    for name, head, head_gain, keys in (
        ("actor", 2, 0.01, layer_keys[:3]),
        ("critic", 1, 1.0, layer_keys[3:]),
    ):
        shapes = [*sizes, (HIDDEN, head)]
        gains = [math.sqrt(2), math.sqrt(2), head_gain]
        params[name] = [
            (jax.nn.initializers.orthogonal(gain)(k, shape), jnp.zeros(shape[1]))
            for k, shape, gain in zip(keys, shapes, gains, strict=True)
        ]
    zeros = jax.tree.map(jnp.zeros_like, params)
    return Member(
        params=params,
        adam_m=zeros,
        adam_v=zeros,
        adam_step=jnp.zeros((), jnp.int32),
        env_state=cartpole_reset(env_key, N_ENVS),
        elapsed=jnp.zeros(N_ENVS, jnp.int32),
        ep_return=jnp.zeros(N_ENVS),
        key=key,
        learning_rate=jnp.asarray(learning_rate, jnp.float32),
    )


def mlp(layers: list[tuple[jax.Array, jax.Array]], x: jax.Array) -> jax.Array:
    for w, b in layers[:-1]:
        x = jnp.tanh(x @ w + b)
    w, b = layers[-1]
    return x @ w + b


def rollout(member: Member) -> tuple[Member, Transition, jax.Array]:
    """``N_STEPS`` steps of the member's envs with auto-reset; also the sum and count of ended returns."""

    def step(carry: tuple[Member, jax.Array], _: None) -> tuple[tuple[Member, jax.Array], Transition]:
        m, ended = carry
        key, act_key, reset_key = jax.random.split(m.key, 3)
        obs = m.env_state
        logits = jax.nn.log_softmax(mlp(m.params["actor"], obs))
        action = jax.random.categorical(act_key, logits)
        log_prob = jnp.take_along_axis(logits, action[:, None], 1)[:, 0]
        final_obs, terminated = cartpole_dynamics(obs, action)
        elapsed = m.elapsed + 1
        truncated = (elapsed >= MAX_STEPS) & ~terminated
        done = terminated | truncated
        ep_return = m.ep_return + 1.0  # CartPole's reward is 1 per step
        ended = ended + jnp.stack((jnp.where(done, ep_return, 0.0).sum(), done.sum()))
        m = m._replace(
            env_state=jnp.where(done[:, None], cartpole_reset(reset_key, N_ENVS), final_obs),
            elapsed=jnp.where(done, 0, elapsed),
            ep_return=jnp.where(done, 0.0, ep_return),
            key=key,
        )
        return (m, ended), Transition(obs, action, log_prob, done, truncated, final_obs)

    (member, ended), batch = lax.scan(step, (member, jnp.zeros(2)), None, length=N_STEPS)
    return member, batch, ended


def advantages(params: Params, batch: Transition, last_obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """GAE advantages and returns ``[N_STEPS, N_ENVS]``; a truncated step's reward gets ``gamma *
    V(final_obs)``, as SB3 and the engine add it (here for every step and masked: no data-dependent
    shapes under jit)."""
    rows = N_STEPS * N_ENVS
    all_obs = jnp.concatenate((batch.obs.reshape(rows, 4), batch.final_obs.reshape(rows, 4), last_obs))
    v = mlp(params["critic"], all_obs)[:, 0]
    values, final_values, last_value = v[:rows].reshape(N_STEPS, N_ENVS), v[rows:-N_ENVS], v[-N_ENVS:]
    rewards = 1.0 + GAMMA * final_values.reshape(N_STEPS, N_ENVS) * batch.truncated
    not_done = 1.0 - batch.done

    def back(carry: tuple[jax.Array, jax.Array], x: tuple[jax.Array, ...]) -> tuple[Any, jax.Array]:
        last, next_value = carry
        reward, value, live = x
        delta = reward + GAMMA * next_value * live - value
        last = delta + GAMMA * GAE_LAMBDA * live * last
        return (last, value), last

    init = (jnp.zeros(N_ENVS), last_value)
    _, adv = lax.scan(back, init, (rewards, values, not_done), reverse=True)
    return adv, adv + values


def loss(
    params: Params,
    obs: jax.Array,
    action: jax.Array,
    old_log_prob: jax.Array,
    adv: jax.Array,
    returns: jax.Array,
) -> jax.Array:
    """SB3's PPO loss on one minibatch: clipped surrogate + 0.5 x the unclipped value loss."""
    log_probs = jax.nn.log_softmax(mlp(params["actor"], obs))
    log_prob = jnp.take_along_axis(log_probs, action[:, None], 1)[:, 0]
    value = mlp(params["critic"], obs)[:, 0]
    adv = (adv - adv.mean()) / (adv.std(ddof=1) + 1e-8)  # torch's std is the unbiased one
    ratio = jnp.exp(log_prob - old_log_prob)
    policy_loss = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - CLIP, 1 + CLIP) * adv).mean()
    return policy_loss + VF_COEF * ((returns - value) ** 2).mean()


def adam(member: Member, grads: Params) -> Member:
    """Clip the gradient's global norm to ``MAX_GRAD_NORM``, then torch.optim.Adam's step."""
    norm = jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grads)))
    grads = jax.tree.map(lambda g: g * jnp.minimum(1.0, MAX_GRAD_NORM / (norm + 1e-6)), grads)
    step = member.adam_step + 1
    m = jax.tree.map(lambda m, g: BETA1 * m + (1 - BETA1) * g, member.adam_m, grads)
    v = jax.tree.map(lambda v, g: BETA2 * v + (1 - BETA2) * g**2, member.adam_v, grads)
    step_size = member.learning_rate / (1 - BETA1**step)
    bias2 = jnp.sqrt(1 - BETA2**step)
    params = jax.tree.map(
        lambda p, m, v: p - step_size * m / (jnp.sqrt(v) / bias2 + ADAM_EPS), member.params, m, v
    )
    return member._replace(params=params, adam_m=m, adam_v=v, adam_step=step)


def ppo_update(member: Member) -> tuple[Member, jax.Array]:
    """One rollout, its advantages and ``N_EPOCHS`` x ``N_MINIBATCHES`` Adam steps; also the sum and
    count of the returns of the episodes that ended in the rollout."""
    member, batch, ended = rollout(member)
    adv, returns = advantages(member.params, batch, member.env_state)
    data = (
        batch.obs.reshape(ROLLOUT, 4),
        batch.action.reshape(ROLLOUT),
        batch.log_prob.reshape(ROLLOUT),
        adv.reshape(ROLLOUT),
        returns.reshape(ROLLOUT),
    )

    def minibatch(m: Member, mb: tuple[jax.Array, ...]) -> tuple[Member, None]:
        return adam(m, jax.grad(loss)(m.params, *mb)), None

    def epoch(m: Member, key: jax.Array) -> tuple[Member, None]:
        order = jax.random.permutation(key, ROLLOUT)
        shuffled = [x[order].reshape(N_MINIBATCHES, ROLLOUT // N_MINIBATCHES, *x.shape[1:]) for x in data]
        return lax.scan(minibatch, m, shuffled)[0], None

    key, *epoch_keys = jax.random.split(member.key, N_EPOCHS + 1)
    member, _ = lax.scan(epoch, member._replace(key=key), jnp.stack(epoch_keys))
    return member, ended


def train_updates(population: Member, n_updates: int) -> tuple[Member, jax.Array]:
    """``n_updates`` PPO updates of every member; the ended returns' sums and counts ``[n_updates, P, 2]``."""
    return lax.scan(lambda pop, _: jax.vmap(ppo_update)(pop), population, None, length=n_updates)


# -- measurement -------------------------------------------------------------------------------------


@dataclass
class Side:
    """One side's figures at one population size."""

    steps_per_second: list[float]  # one per repeat
    cpu_per_wall: list[float]  # process CPU time / wall time, one per repeat
    env_steps_per_member: int = 0  # trained so far, at the end
    last_episode_return: float = math.nan  # mean return of the training episodes ended in the last call

    @property
    def median(self) -> float:
        return statistics.median(self.steps_per_second)


def timed(train: Callable[[], None], side: Side, steps_per_call: int, seconds: float) -> None:
    """Call ``train`` until ``seconds`` have passed; append its env steps/s and CPU share to ``side``."""
    calls, start, cpu = 0, time.perf_counter(), time.process_time()
    while calls == 0 or time.perf_counter() - start < seconds:
        train()
        calls += 1
    wall = time.perf_counter() - start
    side.steps_per_second.append(calls * steps_per_call / wall)
    side.cpu_per_wall.append((time.process_time() - cpu) / wall)


def measure(p: int, *, updates: int, seconds: float, repeats: int, learning_rate: float) -> dict[str, Any]:
    """Both sides at population size ``p``, alternating; the JAX compile time first."""
    from autorl.engine.config import EngineConfig  # here: ``--pbt-run`` imports jax alone
    from autorl.engine.ppo import Population

    steps_per_call = p * ROLLOUT * updates
    config = EngineConfig(
        "CartPole-v1", n_envs=N_ENVS, n_steps=N_STEPS, n_epochs=N_EPOCHS, n_minibatches=N_MINIBATCHES
    )
    pop = Population(config, [{"learning_rate": learning_rate}] * p, seeds=range(p))
    pop.train(1)  # warm-up: one rollout
    engine = Side([], [])
    engine_stats: list[dict[str, float]] = []

    def train_engine() -> None:
        engine_stats[:] = pop.train(updates * ROLLOUT)

    # jax.jit(jax.vmap(init_member)) deadlocked for P >= 6 here (jax 0.10.x): initialise eagerly.
    population = jax.vmap(init_member)(jnp.arange(p), jnp.full(p, learning_rate))
    t0 = time.perf_counter()
    step_fn = jax.jit(partial(train_updates, n_updates=updates), donate_argnums=0)
    compiled = step_fn.lower(population).compile()
    compile_s = time.perf_counter() - t0
    population, ended = jax.block_until_ready(compiled(population))  # warm-up: one call
    peer = Side([], [])
    jax_calls = 1

    def train_jax() -> None:
        nonlocal population, ended, jax_calls
        population, ended = jax.block_until_ready(compiled(population))
        jax_calls += 1

    for _ in range(repeats):
        timed(train_engine, engine, steps_per_call, seconds)
        timed(train_jax, peer, steps_per_call, seconds)
    engine.env_steps_per_member = int(pop.steps[0])
    counts = sum(s["episodes"] for s in engine_stats)
    returns = sum(s["episode_return"] * s["episodes"] for s in engine_stats if s["episodes"])
    engine.last_episode_return = returns / counts if counts else math.nan
    peer.env_steps_per_member = jax_calls * updates * ROLLOUT
    total = ended.sum((0, 1))  # over the last call's updates and members: [sum, count]
    peer.last_episode_return = float(total[0] / total[1]) if total[1] else math.nan
    return {
        "members": p,
        "updates_per_call": updates,
        "jax_compile_s": compile_s,
        "engine": asdict(engine) | {"median": engine.median},
        "jax": asdict(peer) | {"median": peer.median},
        "engine_over_jax": engine.median / peer.median,
    }


# -- the peer end to end: PBT at the shipped engine example's size --------------------------------------


def exploit(population: Member, source: jax.Array, rates: jax.Array) -> Member:
    """Member ``i`` takes the parameters and Adam state of member ``source[i]`` (itself where it is kept)
    and the learning rate ``rates[i]``; envs, episodes and keys stay its own."""
    take = partial(jax.tree.map, lambda x: x[source])
    return population._replace(
        params=take(population.params),
        adam_m=take(population.adam_m),
        adam_v=take(population.adam_v),
        adam_step=population.adam_step[source],
        learning_rate=rates,
    )


def init_population_numpy(rng: np.random.Generator, seed: int, rates: np.ndarray) -> Member:
    """The population of ``init_member``'s distribution (orthogonal init by numpy's QR, states uniform in
    [-0.05, 0.05)), drawn with numpy from ``rng``: XLA compiles ``init_member`` in about 3 s on this
    machine, numpy draws it in milliseconds, and the end-to-end figure should show the peer at its best.
    ``seed`` seeds the members' JAX keys (their rollouts' sampling)."""

    def orthogonal(rows: int, cols: int, gain: float) -> np.ndarray:
        q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
        q = q * np.sign(np.diag(r))
        return (gain * (q if rows >= cols else q.T)).astype(np.float32)

    def net(head: int, head_gain: float) -> list[tuple[np.ndarray, np.ndarray]]:
        shapes = [(4, HIDDEN, math.sqrt(2)), (HIDDEN, HIDDEN, math.sqrt(2)), (HIDDEN, head, head_gain)]
        return [(orthogonal(i, o, g), np.zeros(o, np.float32)) for i, o, g in shapes]

    members = [{"actor": net(2, 0.01), "critic": net(1, 1.0)} for _ in rates]
    params = jax.tree.map(lambda *x: jnp.asarray(np.stack(x)), *members)
    p = len(rates)
    return Member(  # Adam's moments in buffers of their own: the train step donates its input
        params=params,
        adam_m=jax.tree.map(jnp.zeros_like, params),
        adam_v=jax.tree.map(jnp.zeros_like, params),
        adam_step=jnp.zeros(p, jnp.int32),
        env_state=jnp.asarray(rng.uniform(-0.05, 0.05, (p, N_ENVS, 4)).astype(np.float32)),
        elapsed=jnp.zeros((p, N_ENVS), jnp.int32),
        ep_return=jnp.zeros((p, N_ENVS)),
        key=jax.random.split(jax.random.key(seed), p),
        learning_rate=jnp.asarray(rates),
    )


def pbt_run(seed: int, members: int, steps: int, interval: int, cache_dir: str | None) -> dict[str, Any]:
    """PBT from the shipped example's poor start (learning rates log-uniform in [1e-5, 3e-5]): every
    ``interval`` env steps the worst quarter copies the best quarter, ranked by the interval's training
    returns (the example's ``decide_on: train_return``), and explores its learning rate as autorl's PBT
    does: resampled from the example's range (log-uniform in [1e-5, 1e-2]) with probability 0.25, else
    the source's times 0.8 or 1.2, within that range. Friendlier to the peer than the example: clip
    range and entropy coefficient stay fixed (the peer compiles them in), and nothing is evaluated or
    written. Returns the phases and each member's last training return."""
    began = time.perf_counter()
    if cache_dir:
        jax.config.update("jax_compilation_cache_dir", cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    weights, rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    rates = np.exp(rng.uniform(math.log(1e-5), math.log(3e-5), members)).astype(np.float32)
    t0 = time.perf_counter()
    population = init_population_numpy(weights, seed, rates)  # a stream of its own: PBT's draws are apart
    jax.block_until_ready(population)
    init_s = time.perf_counter() - t0
    updates = max(1, interval // ROLLOUT)
    t0 = time.perf_counter()
    train = jax.jit(partial(train_updates, n_updates=updates), donate_argnums=0).lower(population).compile()
    swap = jax.jit(exploit, donate_argnums=0).lower(population, jnp.arange(members), rates).compile()
    compile_s = time.perf_counter() - t0
    k = max(1, round(members * 0.25))
    score = np.full(members, -np.inf)  # the last finite training return of each member
    trained, train_s, exploit_s = 0, 0.0, 0.0
    while True:
        t = time.perf_counter()
        population, ended = train(population)
        totals = np.asarray(ended).sum(0)  # [P, 2]: returns' sum and count over the interval
        train_s += time.perf_counter() - t
        trained += updates * ROLLOUT
        score = np.where(totals[:, 1] > 0, totals[:, 0] / np.maximum(totals[:, 1], 1), score)
        if trained >= steps:
            break
        t = time.perf_counter()
        order = np.argsort(score, kind="stable")
        source = np.arange(members)
        for i in order[:k]:
            source[i] = rng.choice(order[-k:])
            if rng.random() < 0.25:
                rates[i] = math.exp(rng.uniform(math.log(1e-5), math.log(1e-2)))
            else:
                rates[i] = min(max(rates[source[i]] * rng.choice([0.8, 1.2]), 1e-5), 1e-2)
        population = swap(population, jnp.asarray(source), jnp.asarray(rates))
        exploit_s += time.perf_counter() - t
    return {
        "seed": seed,
        "members": members,
        "env_steps": members * trained,
        "init_s": init_s,
        "compile_s": compile_s,
        "train_s": train_s,
        "exploit_s": exploit_s,
        "in_process_s": time.perf_counter() - began,
        "final_train_return": score.tolist(),
        "jax_cache": bool(cache_dir),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 64, 256], help="population sizes")
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per side and repeat")
    parser.add_argument("--repeats", type=int, default=2, help="alternating measurements per side")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="every member's, both sides")
    parser.add_argument("--json", type=str, default=None, metavar="PATH", help="also write the figures here")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the process to one core")
    parser.add_argument(
        "--pbt-run",
        type=int,
        metavar="SEED",
        help="instead: one PBT run of the peer at the shipped engine example's size, start to end "
        "(engine_end_to_end.py --peer times it); prints one JSON line",
    )
    pbt = "with --pbt-run: "
    parser.add_argument("--pbt-members", type=int, default=8, help=pbt + "members")
    parser.add_argument("--pbt-steps", type=int, default=100_000, help=pbt + "env steps per member")
    parser.add_argument("--pbt-interval", type=int, default=4096, help=pbt + "env steps per interval")
    parser.add_argument("--jax-cache", type=str, metavar="DIR", help=pbt + "JAX's persistent cache")
    args = parser.parse_args()
    if jax is None:
        print('engine_vs_jax.py needs jax, an optional benchmark extra: pip install "jax[cpu]"')
        sys.exit(2)
    if args.pbt_run is not None:
        result = pbt_run(args.pbt_run, args.pbt_members, args.pbt_steps, args.pbt_interval, args.jax_cache)
        print(json.dumps(result))
        return
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    print(f"jax {jax.__version__}, torch {torch.__version__}; env steps/s, one thread each\n")

    def k(x: float) -> str:
        return f"{x / 1000:.1f}k"

    width = 8 * args.repeats
    print(
        f"{'P':>4} {'compile s':>9} {'updates':>7}  {'engine runs':>{width}} {'median':>7} {'cpu':>4}  "
        f"{'jax runs':>{width}} {'median':>7} {'cpu':>4}  {'engine/jax':>10}"
    )
    rows = []
    for p in args.sizes:
        updates = max(1, STEPS_PER_CALL // (p * ROLLOUT))
        row = measure(
            p, updates=updates, seconds=args.seconds, repeats=args.repeats, learning_rate=args.learning_rate
        )
        rows.append(row)
        cells = []
        for side in (row["engine"], row["jax"]):
            runs = " ".join(f"{k(x):>7}" for x in side["steps_per_second"])
            cells.append(f"{runs:>{width}} {k(side['median']):>7} {max(side['cpu_per_wall']):>4.2f}")
        print(
            f"{p:>4} {row['jax_compile_s']:>9.1f} {updates:>7}  {cells[0]}  {cells[1]}  "
            f"{row['engine_over_jax']:>10.2f}",
            flush=True,
        )
    for row in rows:
        if row["members"] == 8:
            print("\nP = 8, mean return of the training episodes that ended in each side's last call:")
            for name in ("engine", "jax"):
                side = row[name]
                print(
                    f"  {name:<6} {side['last_episode_return']:6.1f} after "
                    f"{side['env_steps_per_member']:,} env steps per member"
                )
    wall = time.perf_counter() - start
    print(f"\nwall time {wall:.0f} s")
    if args.json:
        settings = vars(args) | {
            "n_envs": N_ENVS,
            "n_steps": N_STEPS,
            "n_epochs": N_EPOCHS,
            "n_minibatches": N_MINIBATCHES,
        }
        out = {
            "jax": jax.__version__,
            "torch": torch.__version__,
            "settings": settings,
            "rows": rows,
            "wall_s": wall,
        }
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
