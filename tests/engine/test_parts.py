"""The engine's parts by name: checked without torch, loaded where a population is built."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from autorl.engine.config import EngineConfig
from autorl.engine.parts import ACTIVATIONS, BATCHED_ENVS, OBJECTIVES, continuous


@pytest.mark.parametrize("name", BATCHED_ENVS.names())
def test_each_built_in_env_is_registered_under_its_specs_name_with_its_action_kind(name: str) -> None:
    from autorl.engine.envs import BatchedEnv

    entry = BATCHED_ENVS.entry(name)
    cls = entry.load()
    assert issubclass(cls, BatchedEnv) and cls.spec.name == name
    assert entry.extra["continuous"] == (cls.spec.n_actions is None) == continuous(name)


def test_the_objectives_and_activations_named_are_the_ones_the_engine_has() -> None:
    from autorl.engine import nets
    from autorl.engine.objectives import clipped_surrogate

    assert OBJECTIVES.get("clip") is clipped_surrogate
    assert set(ACTIVATIONS) == set(nets._PLAIN)


def test_a_config_names_its_dtype_and_gives_torchs() -> None:
    import torch

    assert EngineConfig("CartPole-v1").torch_dtype is torch.float32
    given = EngineConfig("CartPole-v1", dtype=torch.float64)  # a torch dtype is taken by its name
    assert given.dtype == "float64" and given.torch_dtype is torch.float64
    assert EngineConfig.from_dict(given.to_dict()) == given
    assert EngineConfig("CartPole-v1", dtype="double").dtype == "float64"  # torch's aliases, as before
    assert EngineConfig("CartPole-v1", dtype="float").dtype == "float32"


ENGINE_SWEEPS = {
    "engine:ppo": {"env": "Pendulum-v1", "n_envs": 4, "n_steps": 16},
    "envdesign:engine": {"family": "CartPole", "level_sampler": "plr", "n_envs": 4, "n_steps": 16,
                         "n_test_levels": 2, "n_val_levels": 2},
}  # fmt: skip


@pytest.mark.parametrize("target", ENGINE_SWEEPS)
def test_an_engine_sweep_never_imports_torch_in_the_process_that_runs_it(tmp_path: Path, target: str) -> None:
    """The sweep's own process checks the engine's config by name: only its workers import torch (1.3 s
    and a few hundred MB, paid beside the workers' own imports on the same cores)."""
    script = f"""
import sys
from autorl.api import sweep
sweep({{
    "target": {target!r},
    "args": {ENGINE_SWEEPS[target]!r},
    "space": {{"learning_rate": {{"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}}},
    "method": "random", "trials": 2, "batch": 2, "budget": {{"max": 128}},
    "out": {str(tmp_path / "run")!r},
}}, plots=True)
print("torch" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"
    assert (tmp_path / "run" / "best.yaml").is_file()


@pytest.mark.parametrize("dtype", ["foo", "float16"])
def test_a_bad_dtype_is_refused_in_one_line_naming_the_key(dtype: str) -> None:
    from autorl.engine.config import check_args
    from autorl.errors import ConfigError

    with pytest.raises(ConfigError, match="float32, float64") as caught:  # "foo" was torch's AttributeError
        check_args({"env": "CartPole-v1", "dtype": dtype}, [])
    assert caught.value.key == "dtype"
