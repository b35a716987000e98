import math

import optuna
import pytest

from autorl.errors import ConfigError
from autorl.space import ParamType, SearchSpace, from_distributions, grid, suggest, to_distributions
from autorl.space.ray import from_ray, to_ray
from autorl.yamlio import loads

SPACE = {
    "lr": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True, "mutable": True},
    "gamma": {"type": "float", "low": 0.9, "high": 0.9999, "log": True, "transform": "one_minus"},
    "n_steps": {"type": "int", "low": 32, "high": 512, "transform": "pow2"},
    "epochs": {"type": "int", "low": 1, "high": 19, "step": 2},
    "act": {"type": "categorical", "choices": ["tanh", "relu"]},
    "slope": {"type": "float", "low": 0.0, "high": 0.5, "condition": {"act": "relu"}},
    "policy": {"type": "fixed", "value": "MlpPolicy"},
}


def test_yaml_round_trip():
    space = SearchSpace.from_dict(SPACE)
    assert SearchSpace.from_dict(space.to_dict()).to_dict() == space.to_dict()
    assert space["lr"].mutable and space["gamma"].search_name == "one_minus_gamma"


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"type": "float", "low": 3, "high": 1}, r"low <= high must hold, but got \(low=3, high=1\)"),
        ({"type": "categorical", "choices": []}, "choices must be a non-empty list"),
        ({"type": "float", "low": 0, "high": 1, "log": True}, "log scale needs low > 0"),
        ({"type": "floaty", "low": 0, "high": 1}, "type must be one of"),
        ({"type": "float", "low": "a", "high": 1}, "low must be a finite number"),
        ({"type": "int", "low": 0, "high": 10, "stepp": 2}, r"unknown key\(s\) stepp"),
        ({"type": "int", "low": 0, "high": 10, "step": 3}, "multiple of step"),
        ({"type": "int", "low": 3, "high": 64, "transform": "pow2"}, "powers of two"),
        ({"type": "float", "low": 0.5, "high": 1.0, "transform": "one_minus"}, "high < 1"),
        ({"type": "fixed"}, "needs 'value'"),
        (
            {"type": "int", "low": 2, "high": 64, "transform": "pow2", "log": True},
            "cannot be combined with step or log",
        ),
    ],
)
def test_bad_params_are_refused_with_the_rule(spec, match):
    with pytest.raises(ConfigError, match=match) as err:
        SearchSpace.from_dict({"p": spec})
    assert err.value.key == "p"


def test_every_bad_param_is_reported_in_one_line():
    """Two bad parameters: both named (only the first was), each with its rule."""
    with pytest.raises(ConfigError) as err:
        SearchSpace.from_dict(
            {
                "x": {"type": "float", "low": 5, "high": 1},
                "ok": {"type": "int", "low": 0, "high": 3},
                "y": {"type": "flaot", "low": 0, "high": 1},
            }
        )
    assert str(err.value) == (
        "2 parameters are invalid: x: low <= high must hold, but got (low=5, high=1); "
        "y: type must be one of float, int, categorical, fixed, got 'flaot'"
    )


def test_condition_must_refer_to_an_earlier_param_and_a_possible_value():
    with pytest.raises(ConfigError, match="must be defined before"):
        SearchSpace.from_dict(
            {
                "a": {"type": "float", "low": 0, "high": 1, "condition": {"b": 1}},
                "b": {"type": "int", "low": 0, "high": 1},
            }
        )
    with pytest.raises(ConfigError, match="can never be taken"):
        SearchSpace.from_dict(
            {
                "b": {"type": "categorical", "choices": ["x"]},
                "a": {"type": "float", "low": 0, "high": 1, "condition": {"b": "y"}},
            }
        )


def test_suggest_respects_ranges_conditions_and_transforms():
    space = SearchSpace.from_dict(SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen_relu = seen_tanh = False
    for _ in range(40):
        trial = study.ask()
        v = suggest(space, trial)
        assert 1e-5 <= v["lr"] <= 1e-2 and 0.9 <= v["gamma"] <= 0.9999
        assert v["n_steps"] in {32, 64, 128, 256, 512} and v["epochs"] % 2 == 1
        assert v["policy"] == "MlpPolicy"
        assert ("slope" in v) == (v["act"] == "relu")
        assert math.isclose(trial.params["one_minus_gamma"], 1 - v["gamma"])
        assert 2 ** trial.params["log2_n_steps"] == v["n_steps"]
        seen_relu |= v["act"] == "relu"
        seen_tanh |= v["act"] == "tanh"
        study.tell(trial, 0.0)
    assert seen_relu and seen_tanh
    rec = space.record({"gamma": 0.99, "n_steps": 64})
    assert math.isclose(rec["one_minus_gamma"], 0.01) and rec["log2_n_steps"] == 6


def test_optuna_round_trip_keeps_everything_but_conditions():
    space = SearchSpace.from_dict(SPACE)
    back = from_distributions(to_distributions(space))
    expected = {
        k: {kk: vv for kk, vv in v.items() if kk not in ("condition", "mutable")}
        for k, v in space.to_dict().items()
        if v["type"] != "fixed"
    }
    got = back.to_dict()
    for name, spec in expected.items():
        for key, value in spec.items():
            assert got[name][key] == pytest.approx(value), (name, key)


def test_ray_round_trip():
    space = SearchSpace.from_dict(SPACE)
    back = from_ray(to_ray(space)).to_dict()
    assert back["n_steps"] == {"type": "int", "low": 32, "high": 512, "transform": "pow2"}
    assert back["epochs"] == {"type": "int", "low": 1, "high": 19, "step": 2}
    assert back["lr"]["log"] and back["gamma"]["transform"] == "one_minus"
    assert back["gamma"]["low"] == pytest.approx(0.9) and back["gamma"]["high"] == pytest.approx(0.9999)
    assert back["policy"] == {"type": "fixed", "value": "MlpPolicy"}
    assert back["act"]["choices"] == ["tanh", "relu"]


def test_grid_points():
    g = grid(SearchSpace.from_dict(SPACE), 3)
    assert g["act"] == ["tanh", "relu"] and g["log2_n_steps"] == [5, 7, 9]
    assert g["lr"] == pytest.approx([1e-5, 10**-3.5, 1e-2])
    assert "policy" not in g


def test_yaml_reads_exponents_without_a_dot_as_numbers():
    data = loads("a: 1e4\nb: 3E-5\nc: 1.0e-3\nd: 12\ne: 1e\n")
    assert data == {"a": 1e4, "b": 3e-5, "c": 1e-3, "d": 12, "e": "1e"}


def test_with_fixed_pins_values():
    space = SearchSpace.from_dict(SPACE).with_fixed({"lr": 0.001})
    assert space["lr"].type is ParamType.FIXED and space["lr"].value == 0.001
