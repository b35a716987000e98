"""Every registered method runs a small sweep; model-based ones beat chance; multi-fidelity ones prune."""

import pytest

from autorl.api import sweep
from autorl.methods import METHODS, MethodKind, method_spec
from tests.conftest import toy

SINGLE = [n for n in METHODS.names() if method_spec(n).kind is MethodKind.STATIC]
MULTI_FIDELITY = [n for n in METHODS.names() if method_spec(n).kind is MethodKind.MULTI_FIDELITY]
MULTI_OBJECTIVE = [n for n in METHODS.names() if method_spec(n).multi_objective]


@pytest.mark.parametrize("method", SINGLE)
def test_static_method_runs_exactly_the_trials_in_the_space(method, make_config):
    r = sweep(make_config(method=method, trials=8), plots=False)
    assert len(r.trials) == 8 and set(r.trials["state"]) == {"COMPLETE"}
    assert r.trials["x"].between(-1, 1).all() and r.trials["y"].isin([0, 1, 2, 3]).all()
    assert (r.out / "best.yaml").is_file()


@pytest.mark.parametrize("method", ["tpe", "gp", "cmaes"])
def test_model_based_methods_beat_random(method, make_config):
    space = {"x": {"type": "float", "low": -1.0, "high": 1.0}}
    cfg = dict(space=space, trials=25)
    random_best = sweep(
        make_config(method="random", out=make_config()["out"] + "_r", **cfg), plots=False
    ).best_value
    best = sweep(make_config(method={"name": method, "n_startup_trials": 5}, **cfg), plots=False).best_value
    assert best < 1e-3 and best <= random_best


@pytest.mark.parametrize("method", MULTI_FIDELITY)
def test_multi_fidelity_methods_stop_trials_at_rungs(method, make_config):
    cfg = make_config(
        target=toy("curve"),
        metric="score",
        direction="maximize",
        method=method,
        trials=20,
        budget={"max": 81, "min": 3, "report_every": 3},
        space={"x": {"type": "float", "low": -1.0, "high": 1.0}},
    )
    r = sweep(cfg, plots=False)
    states = r.trials["state"].value_counts()
    assert states.get("PRUNED", 0) >= 5 and states.get("COMPLETE", 0) >= 1
    pruned = r.trials[r.trials["state"] == "PRUNED"]
    assert (pruned["budget"] < 81).all()  # stopped early, budget recorded


@pytest.mark.parametrize("method", ["tpe", "nsga2", "random"])
def test_multi_objective_gives_a_pareto_front(method, make_config):
    cfg = make_config(
        target=toy("two_objectives"),
        metric=["loss", "cost"],
        direction=["minimize", "minimize"],
        method=method,
        trials=12,
        space={"x": {"type": "float", "low": -1.0, "high": 1.0}},
    )
    r = sweep(cfg, plots=False)
    front = (r.out / "pareto.csv").read_text().splitlines()
    assert len(front) >= 2 and {"value_loss", "value_cost"} <= set(r.trials.columns)
    assert method in MULTI_OBJECTIVE


def test_grid_covers_the_grid(make_config):
    space = {
        "a": {"type": "categorical", "choices": ["p", "q"]},
        "x": {"type": "float", "low": 0.0, "high": 1.0},
    }
    r = sweep(
        make_config(
            target=toy("curve"),
            metric="score",
            direction="maximize",
            space=space,
            method={"name": "grid", "points": 3},
            trials=6,
        ),
        plots=False,
    )
    assert sorted(zip(r.trials["a"], r.trials["x"], strict=True)) == [
        (a, x) for a in ("p", "q") for x in (0.0, 0.5, 1.0)
    ]
