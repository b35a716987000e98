"""The default SB3 spaces are rl-zoo3 2.9.2's samplers (rl_zoo3/hyperparams_opt.py), converted to SB3
arguments as rl-zoo3's convert_* functions do; SB3 keys are checked from data, without importing SB3."""

from __future__ import annotations

import inspect
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autorl.config import SPACES_DIR, parse_sweep
from autorl.errors import ConfigError
from autorl.space import ParamType, SearchSpace, Transform, from_unit, sample
from autorl.targets import TARGETS, TrialContext

ALGOS = ("ppo", "a2c", "dqn", "sac", "td3")
ENVS = {
    "ppo": "CartPole-v1",
    "a2c": "CartPole-v1",
    "dqn": "CartPole-v1",
    "sac": "Pendulum-v1",
    "td3": "Pendulum-v1",
}

# What each rl-zoo3 2.9.2 sampler draws, in SB3's terms (after convert_onpolicy_params /
# convert_offpolicy_params): ("log" | "uniform", low, high) floats, ("one_minus", low, high) for
# 1 - x log-uniform, ("pow2", lowest exponent, highest), ("int" | "int_log", low, high), ("choice", values).
GAMMA = ("one_minus", 1e-4, 0.03)
LR = ("log", 1e-5, 0.002)
OFF_POLICY = {
    "gamma": GAMMA,
    "batch_size": ("pow2", 2, 11),
    "learning_rate": LR,
    "train_freq": ("int", 1, 10),
}
ZOO: dict[str, dict[str, tuple[Any, ...]]] = {
    "ppo": {
        "batch_size": ("pow2", 2, 10),
        "n_steps": ("pow2", 5, 12),
        "gamma": GAMMA,
        "gae_lambda": ("one_minus", 1e-4, 0.1),
        "learning_rate": LR,
        "ent_coef": ("log", 1e-8, 0.1),
        "clip_range": ("choice", (0.1, 0.2, 0.3, 0.4)),
        "n_epochs": ("choice", (1, 5, 10, 20)),
        "max_grad_norm": ("uniform", 0.3, 2.0),
        "net_arch": ("choice", ("tiny", "small", "medium")),
        "activation_fn": ("choice", ("tanh", "relu")),
    },
    "a2c": {
        "n_steps": ("choice", (32, 64, 128, 256, 512, 1024, 2048)),
        "gamma": GAMMA,
        "gae_lambda": ("one_minus", 1e-4, 0.1),
        "learning_rate": LR,
        "max_grad_norm": ("uniform", 0.3, 2.0),
        "ent_coef": ("log", 1e-8, 0.1),
        "net_arch": ("choice", ("small", "medium")),
        "activation_fn": ("choice", ("tanh", "relu")),
    },
    "dqn": {
        **OFF_POLICY,
        "exploration_final_eps": ("uniform", 0.0, 0.2),
        "exploration_fraction": ("uniform", 0.0, 0.5),
        "target_update_interval": ("int_log", 1, 20000),
        "net_arch": ("choice", ("small", "medium", "big")),
    },
    "sac": {**OFF_POLICY, "tau": ("log", 0.001, 0.08), "net_arch": ("choice", ("small", "medium", "big"))},
    "td3": {
        **OFF_POLICY,
        "tau": ("log", 0.001, 0.08),
        "noise_std": ("uniform", 0.0, 0.5),
        "net_arch": ("choice", ("small", "medium", "big")),
    },
}
# rl-zoo3's layer widths per net_arch name: on-policy {pi: w, vf: w}, off-policy w.
ZOO_ON_POLICY_ARCH = {"tiny": [64], "small": [64, 64], "medium": [256, 256]}
ZOO_OFF_POLICY_ARCH = {"small": [64, 64], "medium": [256, 256], "big": [400, 300]}
# Ours, where it must differ: off-policy gradient_steps is -1 (one per env step collected), which is
# rl-zoo3's gradient_steps = train_freq for one env; rl-zoo3's DQN subsample_steps and TD3 noise_type
# are not searched (see the comments in dqn.yaml and td3.yaml).
FIXED = {"dqn": {"gradient_steps": -1}, "sac": {"gradient_steps": -1}, "td3": {"gradient_steps": -1}}
MUTABLE = {
    "ppo": {"learning_rate", "gamma", "gae_lambda", "clip_range", "ent_coef", "max_grad_norm"},
    "a2c": {"learning_rate", "gamma", "gae_lambda", "ent_coef", "max_grad_norm"},
    "dqn": {"learning_rate", "gamma"},
    "sac": {"learning_rate", "gamma", "tau"},
    "td3": {"learning_rate", "gamma", "tau"},
}


def _space(algo: str) -> SearchSpace:
    return SearchSpace.from_yaml(SPACES_DIR / "sb3" / f"{algo}.yaml")


def _zoo_can_give(spec: tuple[Any, ...], x: Any) -> bool:
    kind = spec[0]
    if kind == "choice":
        return x in spec[1] and type(x) is type(spec[1][0])
    lo, hi = spec[1], spec[2]
    if kind == "pow2":
        return isinstance(x, int) and x > 0 and x & (x - 1) == 0 and lo <= math.log2(x) <= hi
    if kind in ("int", "int_log"):
        return isinstance(x, int) and lo <= x <= hi
    value = 1.0 - x if kind == "one_minus" else x
    return isinstance(x, float) and lo * (1 - 1e-9) <= value <= hi * (1 + 1e-9)


@pytest.mark.parametrize("algo", ALGOS)
def test_space_declares_rl_zoo3_parameters_ranges_and_scales(algo: str) -> None:
    space = _space(algo)
    assert set(space) == set(ZOO[algo]) | set(FIXED.get(algo, {}))
    for name, value in FIXED.get(algo, {}).items():
        assert space[name].type is ParamType.FIXED and space[name].value == value
    for name, spec in ZOO[algo].items():
        p, kind = space[name], spec[0]
        if kind == "choice":
            assert p.type is ParamType.CATEGORICAL and p.choices == spec[1], name
            continue
        assert p.search_bounds() == pytest.approx(spec[1:], rel=1e-9), name
        assert (p.transform, p.log) == {
            "pow2": (Transform.POW2, False),
            "one_minus": (Transform.ONE_MINUS, True),
            "log": (None, True),
            "int_log": (None, True),
            "uniform": (None, False),
            "int": (None, False),
        }[kind], name
        assert p.type is (ParamType.INT if kind in ("pow2", "int", "int_log") else ParamType.FLOAT), name
    assert {n for n, p in space.items() if p.mutable} == MUTABLE[algo]


@pytest.mark.parametrize("algo", ALGOS)
def test_samples_are_values_rl_zoo3_can_draw_and_reach_its_extremes(algo: str) -> None:
    space, rng = _space(algo), np.random.default_rng(0)
    configs = [sample(space, rng) for _ in range(3000)]
    for name, spec in ZOO[algo].items():
        values = [c[name] for c in configs]
        bad = [v for v in values if not _zoo_can_give(spec, v)]
        assert not bad, (name, bad[:3])
        if spec[0] == "choice":
            assert set(values) == set(spec[1]), name
        elif spec[0] in ("pow2", "int"):
            lo, hi = spec[1:]
            expected = {2**e for e in range(lo, hi + 1)} if spec[0] == "pow2" else set(range(lo, hi + 1))
            assert set(values) == expected, name
        else:  # continuous: the samples come within 2% of each end of rl-zoo3's range, on its scale
            scale = math.log if spec[0] in ("log", "int_log", "one_minus") else float
            lo, hi = scale(spec[1]), scale(spec[2])
            got = [scale(1.0 - v if spec[0] == "one_minus" else v) for v in values]
            assert min(got) - lo < 0.02 * (hi - lo) and hi - max(got) < 0.02 * (hi - lo), name
    if algo == "ppo":  # the ends the old space could not reach
        assert {4, 1024} <= {c["batch_size"] for c in configs}
        assert {32, 4096} <= {c["n_steps"] for c in configs}


def _corner(space: SearchSpace, end: int) -> dict[str, Any]:
    """Every parameter at one end of its range (``end`` 0: low / first choice, 1: high / last)."""
    out: dict[str, Any] = {}
    for name, p in space.items():
        if p.type is ParamType.FIXED:
            out[name] = p.value
        elif p.type is ParamType.CATEGORICAL:
            out[name] = p.choices[-1] if end else p.choices[0]
        else:
            out[name] = from_unit(p, float(end))
    return out


def _zoo_model(algo: str, values: dict[str, Any], env: Any) -> Any:
    """The SB3 model rl-zoo3 builds from these sampled values (its convert_* functions, written out)."""
    import stable_baselines3
    import torch.nn as nn

    kwargs = {k: v for k, v in values.items() if k not in ("net_arch", "activation_fn", "gradient_steps")}
    if algo in ("ppo", "a2c"):
        width = ZOO_ON_POLICY_ARCH[values["net_arch"]]
        act = {"tanh": nn.Tanh, "relu": nn.ReLU}[values["activation_fn"]]
        policy_kwargs: dict[str, Any] = {"net_arch": {"pi": width, "vf": width}, "activation_fn": act}
    else:
        policy_kwargs = {"net_arch": ZOO_OFF_POLICY_ARCH[values["net_arch"]]}
        kwargs["gradient_steps"] = values["train_freq"]
    if algo == "td3":
        from stable_baselines3.common.noise import NormalActionNoise

        std = kwargs.pop("noise_std")
        kwargs["action_noise"] = NormalActionNoise(np.zeros(1), std * np.ones(1))
    cls = getattr(stable_baselines3, algo.upper())
    return cls("MlpPolicy", env, seed=0, device="cpu", policy_kwargs=policy_kwargs, **kwargs)


def _layers(model: Any) -> list[tuple[str, tuple[int, ...]]]:
    out = []
    for m in model.policy.modules():
        weight = getattr(m, "weight", None)
        if not list(m.children()):
            out.append((type(m).__name__, tuple(weight.shape) if weight is not None else ()))
    return out


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("end", [0, 1])
def test_each_end_of_the_space_builds_the_model_rl_zoo3_builds(algo: str, end: int) -> None:
    values = _corner(_space(algo), end)
    target = TARGETS.get(f"sb3:{algo}")({"env": ENVS[algo], **values}, TrialContext(seed=0))
    ours, zoo = target.model, _zoo_model(algo, values, target.env)
    assert _layers(ours) == _layers(zoo)
    for key in values:
        if key in ("net_arch", "activation_fn", "noise_std", "gradient_steps"):
            continue
        a, b = getattr(ours, key), getattr(zoo, key)
        a, b = (a(1.0), b(1.0)) if callable(a) else (a, b)  # clip_range is a schedule in both
        assert a == b, key


@pytest.mark.parametrize("algo", ["dqn", "sac", "td3"])
def test_off_policy_takes_one_gradient_step_per_env_step_as_rl_zoo3_does_for_one_env(algo: str) -> None:
    values = {**_corner(_space(algo), 0), "train_freq": 3, "learning_starts": 0, "buffer_size": 100}
    target = TARGETS.get(f"sb3:{algo}")({"env": ENVS[algo], **values}, TrialContext(seed=0))
    target.model.learn(total_timesteps=9)
    assert target.model._n_updates == 9  # rl-zoo3: gradient_steps = train_freq = 3, after each 3 steps


def test_net_arch_names_mean_rl_zoo3s_widths() -> None:
    from autorl.targets.sb3 import NET_ARCH

    for name, widths in {**ZOO_ON_POLICY_ARCH, **ZOO_OFF_POLICY_ARCH}.items():
        assert NET_ARCH[name] == widths, name


@pytest.mark.parametrize("algo", ALGOS)
def test_valid_key_data_equals_sb3_signatures(algo: str) -> None:
    import stable_baselines3

    from autorl.targets.sb3 import ALGO_KEYS, TARGET_SUPPLIED

    cls = getattr(stable_baselines3, algo.upper())
    assert frozenset(inspect.signature(cls.__init__).parameters) - TARGET_SUPPLIED == ALGO_KEYS[algo]
    assert TARGET_SUPPLIED - {"self"} <= frozenset(inspect.signature(cls.__init__).parameters)


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_default_rollout_lengths_equal_sb3s(algo: str) -> None:
    """The granularity of an on-policy agent without n_steps uses SB3's own default."""
    import stable_baselines3

    from autorl.targets.sb3 import ON_POLICY_N_STEPS, granularity

    default = (
        inspect.signature(getattr(stable_baselines3, algo.upper()).__init__).parameters["n_steps"].default
    )
    assert ON_POLICY_N_STEPS[algo] == default
    assert granularity({"n_envs": 4}, algo) == 4 * default and granularity({"n_envs": 4}, "sac") == 4


def test_a_typo_in_args_is_refused_with_the_closest_key(tmp_path: Path) -> None:
    cfg = {
        "target": "sb3:ppo",
        "args": {"env": "CartPole-v1", "n_env": 4},
        "budget": {"max": 1000},
        "method": "random",
        "trials": 2,
        "out": str(tmp_path / "run"),
    }
    with pytest.raises(ConfigError, match="did you mean 'n_envs'") as exc:
        parse_sweep(cfg, "s.yaml")
    assert "n_env not understood by sb3:ppo" in str(exc.value)
    cfg["args"] = {"env": "CartPole-v1", "leraning_rate": 1e-3}
    with pytest.raises(ConfigError, match="did you mean 'learning_rate'"):
        parse_sweep(cfg, "s.yaml")


def test_validating_sb3_configs_does_not_import_stable_baselines3(tmp_path: Path) -> None:
    code = f"""
import sys
from autorl.config import load_sweep, parse_sweep
load_sweep({str(SPACES_DIR / "examples" / "ppo_cartpole.yaml")!r}, out={str(tmp_path / "a")!r})
for algo, env in {ENVS!r}.items():
    parse_sweep({{"target": f"sb3:{{algo}}", "args": {{"env": env}}, "budget": {{"max": 4096}},
                 "method": "random", "trials": 2}}, out={str(tmp_path / "b")!r})
print(sorted(m for m in sys.modules if m.split(".")[0] == "stable_baselines3"))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_readme_example_searches_inside_the_ppo_space() -> None:
    """The main job narrows sb3/ppo.yaml (to stay a few minutes) but never leaves it or changes a scale."""
    from autorl.config import load_sweep

    example = load_sweep(SPACES_DIR / "examples" / "ppo_cartpole.yaml").space
    full = _space("ppo")
    assert set(example) == set(full)
    for name, p in example.items():
        q = full[name]
        assert (p.type, p.transform, p.log, p.mutable) == (q.type, q.transform, q.log, q.mutable), name
        if p.type is ParamType.CATEGORICAL:
            assert set(p.choices) <= set(q.choices), name
        else:
            assert q.low <= p.low <= p.high <= q.high, name
    assert (example["n_steps"].high, example["batch_size"].low) == (512, 16)
