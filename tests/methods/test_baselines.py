"""The shipped baselines (``autorl/search_spaces/baselines/``): rl-zoo3 2.9.2's tuned settings and the
libraries' defaults, each a ``fixed`` sweep's config that validates on its target and env; the engine's
files are the SB3 ones after the translation rule."""

from __future__ import annotations

import ast
import inspect
import math
import re
from pathlib import Path
from typing import Any

import pytest

from autorl.config import SPACES_DIR, parse_sweep
from autorl.yamlio import load_yaml

BASELINES = SPACES_DIR / "baselines"

# rl_zoo3 2.9.2, hyperparams/{ppo,dqn,sac}.yml: the entries as written there (copied, not read at test time).
ZOO: dict[tuple[str, str], dict[str, Any]] = {
    ("ppo", "CartPole-v1"): {
        "n_envs": 8,
        "n_timesteps": 1e5,
        "policy": "MlpPolicy",
        "n_steps": 32,
        "batch_size": 256,
        "gae_lambda": 0.8,
        "gamma": 0.98,
        "n_epochs": 20,
        "ent_coef": 0.0,
        "learning_rate": "lin_0.001",
        "clip_range": "lin_0.2",
    },
    ("ppo", "Acrobot-v1"): {
        "normalize": True,
        "n_envs": 16,
        "n_timesteps": 1e6,
        "policy": "MlpPolicy",
        "n_steps": 256,
        "gae_lambda": 0.94,
        "gamma": 0.99,
        "n_epochs": 4,
        "ent_coef": 0.0,
    },
    ("ppo", "MountainCar-v0"): {
        "normalize": True,
        "n_envs": 16,
        "n_timesteps": 1e6,
        "policy": "MlpPolicy",
        "n_steps": 16,
        "gae_lambda": 0.98,
        "gamma": 0.99,
        "n_epochs": 4,
        "ent_coef": 0.0,
    },
    ("ppo", "Pendulum-v1"): {
        "n_envs": 4,
        "n_timesteps": 1e5,
        "policy": "MlpPolicy",
        "n_steps": 1024,
        "gae_lambda": 0.95,
        "gamma": 0.9,
        "n_epochs": 10,
        "ent_coef": 0.0,
        "learning_rate": 1e-3,
        "clip_range": 0.2,
        "use_sde": True,
        "sde_sample_freq": 4,
    },
    ("ppo", "MountainCarContinuous-v0"): {
        "normalize": True,
        "n_envs": 1,
        "n_timesteps": 20000,
        "policy": "MlpPolicy",
        "batch_size": 256,
        "n_steps": 8,
        "gamma": 0.9999,
        "learning_rate": 7.77e-05,
        "ent_coef": 0.00429,
        "clip_range": 0.1,
        "n_epochs": 10,
        "gae_lambda": 0.9,
        "max_grad_norm": 5,
        "vf_coef": 0.19,
        "use_sde": True,
        "policy_kwargs": "dict(log_std_init=-3.29, ortho_init=False)",
    },
    ("dqn", "Acrobot-v1"): {
        "n_timesteps": 1e5,
        "policy": "MlpPolicy",
        "learning_rate": 6.3e-4,
        "batch_size": 128,
        "buffer_size": 50000,
        "learning_starts": 0,
        "gamma": 0.99,
        "target_update_interval": 250,
        "train_freq": 4,
        "gradient_steps": -1,
        "exploration_fraction": 0.12,
        "exploration_final_eps": 0.1,
        "policy_kwargs": "dict(net_arch=[256, 256])",
    },
    ("dqn", "MountainCar-v0"): {
        "n_timesteps": 1.2e5,
        "policy": "MlpPolicy",
        "learning_rate": 4e-3,
        "batch_size": 128,
        "buffer_size": 10000,
        "learning_starts": 1000,
        "gamma": 0.98,
        "target_update_interval": 600,
        "train_freq": 16,
        "gradient_steps": 8,
        "exploration_fraction": 0.2,
        "exploration_final_eps": 0.07,
        "policy_kwargs": "dict(net_arch=[256, 256])",
    },
    ("sac", "Pendulum-v1"): {"n_timesteps": 20000, "policy": "MlpPolicy", "learning_rate": 1e-3},
    ("sac", "MountainCarContinuous-v0"): {
        "n_timesteps": 50000,
        "policy": "MlpPolicy",
        "learning_rate": 3e-4,
        "buffer_size": 50000,
        "batch_size": 512,
        "ent_coef": 0.1,
        "train_freq": 32,
        "gradient_steps": 32,
        "gamma": 0.9999,
        "tau": 0.01,
        "learning_starts": 0,
        "use_sde": True,
        "policy_kwargs": "dict(log_std_init=-3.67, net_arch=[64, 64], use_expln=True)",
    },
}
SHORT = {
    "CartPole-v1": "cartpole",
    "Acrobot-v1": "acrobot",
    "MountainCar-v0": "mountaincar",
    "Pendulum-v1": "pendulum",
    "MountainCarContinuous-v0": "mountaincarcontinuous",
}
ENGINE_ENVS = [env for algo, env in ZOO if algo == "ppo"]

# SB3 PPO's defaults (stable-baselines3 2.9.2; test_sb3_defaults_are_the_installed_ones checks them) of
# what the engine translation reads; MlpPolicy's net_arch and activation are resolved inside SB3.
SB3_PPO = {
    "n_envs": 1,
    "normalize": False,
    "learning_rate": 3e-4,
    "n_steps": 2048,
    "batch_size": 64,
    "n_epochs": 10,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_range": 0.2,
    "ent_coef": 0.0,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "net_arch": [64, 64],
    "activation_fn": "tanh",
    "ortho_init": True,
    "log_std_init": 0.0,
}
# What an SB3 setting holds that the engine has no key for: the policy class, and gSDE.
NOT_ON_ENGINE = {"policy", "use_sde", "sde_sample_freq", "use_expln"}


def _zoo_file(algo: str, env: str, target: str = "sb3") -> Path:
    return BASELINES / "zoo" / f"{target}_{algo}_{SHORT[env]}.yaml"


def _policy_kwargs(text: str) -> dict[str, Any]:
    """rl-zoo3's ``"dict(a=1, b=[2])"`` as a mapping (literals only: rl-zoo3 itself eval()s it)."""
    call = ast.parse(text, mode="eval").body
    assert isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "dict"
    return {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}


def ours(entry: dict[str, Any]) -> dict[str, Any]:
    """An rl-zoo3 entry in sb3's keys: n_timesteps is the budget, policy_kwargs become our keys, and
    rl-zoo3's defaults for n_envs (1) and normalize (false) are written out."""
    out = {"n_envs": 1, "normalize": False}
    for key, value in entry.items():
        if key == "policy_kwargs":
            out.update(_policy_kwargs(value))
        elif key != "n_timesteps":
            out[key] = value
    return out


def to_engine(sb3: dict[str, Any]) -> dict[str, Any]:
    """An sb3:ppo setting in engine:ppo's keys: batch_size becomes n_minibatches = n_envs * n_steps /
    batch_size (one minibatch where a batch is larger than the rollout, as SB3 then trains), ``lin_x``
    is x with a linear schedule, normalize is both normalisations, gSDE is dropped."""
    c = {**SB3_PPO, **sb3}
    assert c.pop("normalize_advantage", True) is True  # the engine always normalises advantages
    assert set(c) - NOT_ON_ENGINE <= set(SB3_PPO), (
        f"no translation for {set(c) - NOT_ON_ENGINE - set(SB3_PPO)}"
    )
    rollout = c["n_envs"] * c["n_steps"]
    batch = c["batch_size"]
    assert batch >= rollout or rollout % batch == 0, "SB3 would train a truncated last minibatch"
    out = {
        "n_envs": c["n_envs"],
        "n_steps": c["n_steps"],
        "n_epochs": c["n_epochs"],
        "n_minibatches": max(1, rollout // batch),
        "hidden": list(c["net_arch"]),
        "activation": c["activation_fn"],
        "normalize_obs": c["normalize"],
        "normalize_reward": c["normalize"],
    }
    for key, schedule in (("learning_rate", "lr_schedule"), ("clip_range", "clip_schedule")):
        value = c[key]
        linear = isinstance(value, str) and value.startswith("lin_")
        out[schedule] = "linear" if linear else "constant"
        c[key] = float(value.removeprefix("lin_")) if linear else value
    out.update(log_std_init=c["log_std_init"], ortho_init=c["ortho_init"])
    for key in ("learning_rate", "clip_range", "ent_coef", "vf_coef", "gamma", "gae_lambda", "max_grad_norm"):
        out[key] = c[key]
    out["adam_eps"] = 1e-5  # SB3's ActorCriticPolicy sets Adam's eps to 1e-5
    return out


def _header(path: Path) -> str:
    return "\n".join(line for line in path.read_text().splitlines() if line.startswith("#"))


@pytest.mark.parametrize(("algo", "env"), list(ZOO), ids=lambda x: str(x))
def test_each_zoo_file_is_rl_zoos_entry_and_cites_it(algo: str, env: str) -> None:
    path = _zoo_file(algo, env)
    assert load_yaml(path) == ours(ZOO[algo, env])
    header = _header(path)
    assert f"rl_zoo3 2.9.2, hyperparams/{algo}.yml, {env}" in header
    steps = re.search(r"n_timesteps: ([0-9.e+]+) env steps", header)
    assert steps and float(steps.group(1)) == ZOO[algo, env]["n_timesteps"]


@pytest.mark.parametrize("env", ENGINE_ENVS)
def test_each_engine_file_is_the_sb3_one_translated(env: str) -> None:
    sb3 = load_yaml(_zoo_file("ppo", env))
    engine = load_yaml(_zoo_file("ppo", env, "engine"))
    assert engine == to_engine(sb3)
    header = _header(_zoo_file("ppo", env, "engine"))
    assert f"rl_zoo3 2.9.2, hyperparams/ppo.yml, {env}" in header and _zoo_file("ppo", env).name in header
    if sb3.get("use_sde"):
        assert "gSDE" in header  # what the engine cannot do is said


def _validate(target: str, env: str, ref: str, steps: int, tmp_path: Path) -> Any:
    return parse_sweep(
        {
            "target": target,
            "args": {"env": env, "eval_episodes": 2},
            "method": {"name": "fixed", "config": ref},
            "budget": {"max": steps},
            "out": str(tmp_path / "run"),
        }
    )


FILES = [
    *[(f"sb3:{a}", e, _zoo_file(a, e), int(ZOO[a, e]["n_timesteps"])) for a, e in ZOO],
    *[
        ("engine:ppo", e, _zoo_file("ppo", e, "engine"), int(ZOO["ppo", e]["n_timesteps"]))
        for e in ENGINE_ENVS
    ],
    ("sb3:ppo", "CartPole-v1", BASELINES / "defaults" / "sb3_ppo.yaml", 100_000),
    ("sb3:dqn", "CartPole-v1", BASELINES / "defaults" / "sb3_dqn.yaml", 100_000),
    ("sb3:sac", "Pendulum-v1", BASELINES / "defaults" / "sb3_sac.yaml", 20_000),
    ("engine:ppo", "CartPole-v1", BASELINES / "defaults" / "engine_ppo.yaml", 100_000),
]


@pytest.mark.parametrize(("target", "env", "path", "steps"), FILES, ids=lambda x: getattr(x, "name", None))
def test_each_file_validates_as_a_fixed_sweep_on_its_target_and_env(
    target: str, env: str, path: Path, steps: int, tmp_path: Path
) -> None:
    ref = str(path.relative_to(SPACES_DIR))  # as a user writes it: found in the shipped search_spaces/
    sweep = _validate(target, env, ref, steps, tmp_path)
    assert {k: p.value for k, p in sweep.space.items()} == load_yaml(path) and sweep.config.trials == 1
    assert f"config: {ref}" in path.read_text()  # its own usage line names it as a sweep does
    if target == "engine:ppo":
        from autorl.engine.config import engine_config, hparams_of

        engine_config({"env": env, **load_yaml(path)}, total_steps=steps)
        hparams_of(load_yaml(path))


def test_every_shipped_baseline_is_tested() -> None:
    shipped = set(BASELINES.rglob("*.yaml"))
    assert shipped == {p for _, _, p, _ in FILES}


def _sb3_defaults(algo: str) -> dict[str, Any]:
    import stable_baselines3
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.dqn.policies import DQNPolicy
    from stable_baselines3.sac.policies import SACPolicy

    cls = getattr(stable_baselines3, algo.upper())
    policy = {"ppo": ActorCriticPolicy, "dqn": DQNPolicy, "sac": SACPolicy}[algo]
    out = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()}
    for key, p in inspect.signature(policy.__init__).parameters.items():
        if key in ("ortho_init", "log_std_init", "use_expln"):
            out[key] = p.default
        if key == "activation_fn":
            out[key] = p.default.__name__.lower()
    out["net_arch"] = {"ppo": [64, 64], "dqn": [64, 64], "sac": [256, 256]}[algo]  # resolved inside SB3
    return out


@pytest.mark.parametrize("algo", ["ppo", "dqn", "sac"])
def test_sb3_defaults_are_the_installed_ones(algo: str) -> None:
    from autorl.targets.sb3 import TARGET_SUPPLIED

    defaults = _sb3_defaults(algo)
    written = load_yaml(BASELINES / "defaults" / f"sb3_{algo}.yaml")
    assert written.pop("policy") == "MlpPolicy" and written.pop("n_envs") == 1
    assert written.pop("normalize") is False
    for key, value in written.items():
        assert value == defaults[key] or (isinstance(value, float) and math.isclose(value, defaults[key])), (
            key
        )
    # every constructor default that is set (not None) is written, but for logging
    skip = TARGET_SUPPLIED | {"stats_window_size", "tensorboard_log", "policy_kwargs"}
    expected = {k for k, v in defaults.items() if v is not None and k not in skip}
    if algo == "ppo":
        assert {k: defaults[k] for k in SB3_PPO if k not in ("n_envs", "normalize")} == {
            k: v for k, v in SB3_PPO.items() if k not in ("n_envs", "normalize")
        }
    assert set(written) == expected


def test_the_engine_defaults_are_sb3_ppos_translated() -> None:
    sb3 = load_yaml(BASELINES / "defaults" / "sb3_ppo.yaml")
    assert load_yaml(BASELINES / "defaults" / "engine_ppo.yaml") == to_engine(sb3)


@pytest.mark.slow
@pytest.mark.parametrize(("target", "env", "path", "steps"), FILES, ids=lambda x: getattr(x, "name", None))
def test_each_file_trains(target: str, env: str, path: Path, steps: int, tmp_path: Path) -> None:
    """One rollout or a few hundred steps of each: every key reaches a model that trains."""
    from autorl.evaluate import evaluate_config

    sweep = _validate(target, env, str(path), steps, tmp_path)
    params = {k: p.value for k, p in sweep.space.items()}
    if target.startswith("sb3:"):
        params = {**params, "buffer_size": 1000} if "buffer_size" in params else params
    budget = type(sweep.config.budget)(max=256, report_every=256)
    res = evaluate_config(target, sweep.config.args, params, [0], budget, "eval_return")
    assert res["eval_return"].notna().all()
