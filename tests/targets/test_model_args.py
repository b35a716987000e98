"""``autorl validate`` refuses what the research models and the actor-critic cannot take: unknown keys in
``args`` or the search space (with the closest valid key), wrong types and impossible values, before a
sweep runs and without training or loading data."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from autorl.config import parse_sweep
from autorl.errors import ConfigError
from autorl.targets import TARGETS, TrialContext

MODELS = ["autoencoder", "dat", "data2vec", "hashgrid", "relicv2", "stylex"]
NAMES = [f"models:{m}" for m in MODELS] + ["agents:actor_critic"]
# name -> (valid args, a typo of a real key, that key)
CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    **{f"models:{m}": ({"batch_size": 32}, "batch_sise", "batch_size") for m in MODELS},
    "agents:actor_critic": ({"env_id": "CartPole-v1", "num_envs": 2}, "num_env", "num_envs"),
}
# name -> a key outside the default space, a value of the wrong type, an impossible value
BAD_VALUES: dict[str, tuple[str, object, object]] = {
    **{f"models:{m}": ("batch_size", "big", 0) for m in MODELS},
    "models:autoencoder": ("num_threads", "two", 0),  # its default space searches batch_size
    "models:hashgrid": ("image_size", [64], 1),
    "agents:actor_critic": ("num_envs", "eight", 0),
}


def _config(name: str, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    budget = {"max": 128 if name == "agents:actor_critic" else 4}  # at least one of its batches
    return {"target": name, "args": CASES[name][0], "budget": budget, "out": str(tmp_path), **overrides}


@pytest.mark.parametrize("name", NAMES)
def test_a_typo_in_args_names_the_key_it_meant(name: str, tmp_path: Path) -> None:
    args, typo, key = CASES[name]
    with pytest.raises(ConfigError) as exc:
        parse_sweep(_config(name, tmp_path, args={**args, typo: 32}))
    assert exc.value.key == f"args.{typo}"
    message = str(exc.value)
    assert f"did you mean {key!r}?" in message and name in message
    assert "valid keys:" in message and key in message.split("valid keys:")[1]


@pytest.mark.parametrize("name", NAMES)
def test_an_unknown_search_space_parameter_is_refused(name: str, tmp_path: Path) -> None:
    _, typo, key = CASES[name]
    space = {typo: {"type": "int", "low": 2, "high": 8}}
    with pytest.raises(ConfigError, match=f"did you mean {key!r}") as exc:
        parse_sweep(_config(name, tmp_path, space=space))
    assert exc.value.key == f"space.{typo}"  # the search space's own key, not args


@pytest.mark.parametrize("name", NAMES)
def test_a_wrong_type_is_refused_with_the_value(name: str, tmp_path: Path) -> None:
    key, wrong, _ = BAD_VALUES[name]
    with pytest.raises(ConfigError, match=re.escape(f"got {wrong!r}")) as exc:
        parse_sweep(_config(name, tmp_path, args={**CASES[name][0], key: wrong}))
    assert exc.value.key == f"args.{key}"


@pytest.mark.parametrize("name", NAMES)
def test_an_impossible_value_is_refused(name: str, tmp_path: Path) -> None:
    key, _, impossible = BAD_VALUES[name]
    with pytest.raises(ConfigError, match=re.escape(f"got {impossible!r}")) as exc:
        parse_sweep(_config(name, tmp_path, args={**CASES[name][0], key: impossible}))
    assert exc.value.key == f"args.{key}"


@pytest.mark.parametrize(
    ("name", "args", "key"),
    [
        ("models:dat", {"heads": 2, "offset_groups": 4}, "offset_groups"),
        ("models:dat", {"deform_stages": 2.5}, "deform_stages"),
        ("models:data2vec", {"dim": 30, "heads": 4}, "heads"),
        ("models:hashgrid", {"n_min": 32, "n_max": 8}, "n_max"),
        ("models:stylex", {"channels": 1, "top_k": 5}, "top_k"),
        ("models:relicv2", {"ema_decay": 1.5}, "ema_decay"),
        ("agents:actor_critic", {"gamma": 1.5}, "gamma"),
        ("agents:actor_critic", {"norm_adv": "yes"}, "norm_adv"),
        ("agents:actor_critic", {"hidden": ["wide"]}, "hidden"),
        ("agents:actor_critic", {"env_id": "CartPol-v1"}, "env_id"),
    ],
)
def test_rules_between_keys_and_model_specific_values_are_checked(
    name: str, args: dict[str, Any], key: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_sweep(_config(name, tmp_path, args=args))
    assert exc.value.key == f"args.{key}"


@pytest.mark.parametrize("name", NAMES)
def test_a_valid_config_passes_without_loading_data(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import autorl.targets.models._data as data
    import autorl.targets.models.hashgrid as hashgrid

    def refuse(*_: object) -> None:
        raise AssertionError("the check must not load data")

    monkeypatch.setattr(data, "_digits", refuse)
    monkeypatch.setattr(hashgrid, "load_image", refuse)
    sweep = parse_sweep(_config(name, tmp_path))
    assert sweep.info.check is not None and len(sweep.space) > 0


@pytest.mark.parametrize("name", [f"models:{m}" for m in MODELS])
def test_the_targets_themselves_refuse_unknown_keys(name: str) -> None:
    """A typo that reaches a model target directly (a script, not a sweep) is not dropped either."""
    with pytest.raises(ConfigError, match="did you mean 'batch_size'") as exc:
        TARGETS.get(name)({"batch_sise": 32}, TrialContext(seed=0))
    assert exc.value.key == "batch_sise"
