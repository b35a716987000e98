import os

import pytest
import yaml

from autorl.config import apply_overrides, load_sweep, parse_sweep
from autorl.errors import ConfigError

from .conftest import toy

CORES = os.cpu_count() or 1


def write(tmp_path, cfg):
    p = tmp_path / "sweep.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_valid_config_resolves(make_config, tmp_path):
    sw = load_sweep(write(tmp_path, make_config()))
    assert sw.metrics == ("value",) and sw.directions == ("minimize",)
    assert sw.method == "random" and list(sw.space) == ["x", "y"]
    assert sw.study_name == "sweep"


@pytest.mark.parametrize(
    "change, key, rule",
    [
        ({"trails": 5}, "trails", "unknown key (did you mean 'trials'?); valid keys: name, target"),
        ({"trials": "many"}, "trials", "valid integer"),
        ({"trials": 0}, "trials", "greater than or equal to 1"),
        ({"trials": 2**32 + 5}, "trials", "less than or equal to 1000000"),
        ({"workers": CORES + 1}, "workers", f"workers <= {CORES} (this machine's cores)"),
        (
            {"workers": CORES, "args": {"threads": 2}},
            "args.threads",
            f"workers x threads <= {CORES} (this machine's cores) must hold, got {CORES} x 2",
        ),
        ({"budget": {"maxx": 5000}}, "budget.maxx", "unknown key (did you mean 'max'?)"),
        (
            {"space": {"x": {"type": "float", "low": 0, "high": float("inf")}}},
            "space.x",
            "high must be a finite number",
        ),
        (
            {"space": {"x": {"type": "float", "low": float("nan"), "high": 1}}},
            "space.x",
            "low must be a finite number",
        ),
        ({"storage": "mysql://u:secret@localhost/db"}, "storage", "pip install 'mysqlclient'"),
        ({"trial_timeout": "15 minutes"}, "trial_timeout", "a duration looks like"),
        ({"trial_memory": "lots"}, "trial_memory", "a memory size looks like"),
        ({"budget": {"max": 10, "min": 20}}, "budget", "min <= max must hold"),
        ({"budget": {"max": 10, "mni": 2}}, "budget.mni", "unknown key"),
        ({"space": {"x": {"type": "float", "low": 2, "high": 1}}}, "space.x", "low <= high"),
        ({"space": {"c": {"type": "categorical", "choices": []}}}, "space.c", "non-empty list"),
        ({"target": "sb3:ppx"}, "target", "Did you mean 'sb3:ppo'"),
        ({"target": toy("nope")}, "target", "has no attribute 'nope'"),
        ({"method": "tpee"}, "method", "Did you mean 'tpe'"),
        ({"method": {"name": "tpe", "n_startup": 3}}, "method", "unknown option(s) n_startup"),
        ({"method": "asha"}, "budget.min", "needs budget.min"),
        ({"metric": ["a", "b"], "direction": ["minimize"] * 3}, "direction", "same length"),
        (
            {"metric": ["loss", "cost"], "direction": "minimize", "method": "cmaes"},
            "method",
            "optimises one objective",
        ),
        ({"direction": "up"}, "direction", "Input should be"),
        (
            {"method": {"name": "grid", "points": 2}, "trials": 9},
            "method",
            "the grid has 4 points, so trials <= 4",
        ),
        ({"method": "hyperband", "budget": {"max": 9, "min": 1}}, "method", "reports no intermediate values"),
    ],
)
def test_bad_configs_name_file_key_and_rule(make_config, tmp_path, change, key, rule):
    path = write(tmp_path, make_config(**change))
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    assert err.value.file == str(path)
    assert err.value.key == key
    assert rule in err.value.rule
    assert str(err.value).startswith(f"{path}: {key}: ")


def test_unknown_env_and_incompatible_algorithm(make_config):
    base = make_config(
        target="sb3:ppo",
        args={"env": "CartPol-v1"},
        space={"gamma": {"type": "fixed", "value": 0.99}},
        metric=None,
        direction=None,
    )
    with pytest.raises(ConfigError, match="Did you mean: `CartPole`"):
        parse_sweep(base, "s.yaml")
    with pytest.raises(ConfigError, match="needs a continuous action space"):
        parse_sweep({**base, "target": "sb3:sac", "args": {"env": "CartPole-v1"}}, "s.yaml")
    with pytest.raises(ConfigError, match="n_epochs not understood by sb3:dqn"):
        parse_sweep(
            {
                **base,
                "target": "sb3:dqn",
                "args": {"env": "CartPole-v1"},
                "space": {"n_epochs": {"type": "fixed", "value": 3}},
            },
            "s.yaml",
        )


def test_overrides_parse_values_and_reach_inside():
    data = {"method": "tpe", "budget": {"max": 10}, "args": {"env": "CartPole-v1"}}
    out = apply_overrides(
        data, ["method.reduction_factor=2", "budget.max=1e4", "args.env=Acrobot-v1", "trials=7"], "f"
    )
    assert out == {
        "method": {"name": "tpe", "reduction_factor": 2},
        "budget": {"max": 1e4},
        "args": {"env": "Acrobot-v1"},
        "trials": 7,
    }
    assert data["budget"]["max"] == 10  # the original is untouched
    with pytest.raises(ConfigError, match="needs key=value"):
        apply_overrides(data, ["novalue"], "f")


def test_default_space_and_metric_come_from_the_target():
    sw = parse_sweep({"target": "sb3:ppo", "args": {"env": "CartPole-v1"}, "budget": {"max": 4096}}, "s.yaml")
    assert sw.metrics == ("eval_return",) and sw.directions == ("maximize",)
    assert "learning_rate" in sw.space and sw.space["gamma"].search_name == "one_minus_gamma"
    assert sw.info.unit == "env_steps"


def test_yaml_errors_name_the_file(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("target: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: invalid YAML at line \d"):
        load_sweep(p)
    with pytest.raises(ConfigError, match=r"missing\.yaml: file not found"):
        load_sweep(tmp_path / "missing.yaml")


def test_an_unclosed_brace_is_reported_at_the_line_that_opens_it(tmp_path):
    """A missing ``}`` on line 5 was reported where the parser noticed it, lines later."""
    lines = [
        "target: sb3:ppo",
        "args: {env: CartPole-v1}",
        "",
        "# the budget",
        "budget: {max: 20000, min: 5000",
    ]
    lines += ["", "# more keys", "trials: 16", "workers: 2", "", "method: bohb"]
    p = tmp_path / "brace.yaml"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as err:
        load_sweep(p)
    assert str(err.value).startswith(f"{p}: invalid YAML at line 5: the '{{' opened there is never closed")


def test_duplicate_yaml_keys_are_refused(tmp_path):
    p = tmp_path / "dup.yaml"
    p.write_text("target: a\ntrials: 3\ntrials: 4\n")
    with pytest.raises(ConfigError, match=r"dup\.yaml: invalid YAML at line 3: duplicate key 'trials'"):
        load_sweep(p)


def test_file_targets_are_recorded_with_absolute_paths(make_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f.py").write_text("def f(c):\n    return c['x']\n")
    sw = parse_sweep(make_config(target="f.py:f"), "s.yaml")
    assert sw.config.target == f"{tmp_path / 'f.py'}:f"


def _sb3(**over):
    cfg = {
        "target": "sb3:ppo",
        "args": {"env": "CartPole-v1", "n_envs": 4},
        "space": "sb3/ppo.yaml",
        "budget": {"max": 20, "min": 5},
        "method": "bohb",
    }
    cfg.update(over)
    return cfg


def test_a_budget_below_one_rollout_is_refused_naming_the_smallest_valid_value(tmp_path):
    """rl-zoo3's space has n_steps up to 4,096; with 4 envs one rollout is 16,384 env steps."""
    with pytest.raises(ConfigError) as err:
        load_sweep(write(tmp_path, _sb3()))
    assert err.value.key == "budget.max"
    assert "max >= 16384 must hold (the smallest valid value), but got 20" in str(err.value)
    with pytest.raises(ConfigError, match=r"budget\.max: .*max >= 16384 must hold"):
        load_sweep(write(tmp_path, _sb3(budget={"max": 16000, "min": 4000})))
    # rungs and reports below a rollout are kept: such a trial reports at its rollout's end
    sw = load_sweep(write(tmp_path, _sb3(budget={"max": 20000, "min": 5000})))
    assert sw.granularity == (128, 16384) and sw.config.budget.interval == 5000
    small = {"n_steps": {"type": "int", "low": 64, "high": 512, "transform": "pow2"}}
    sw = load_sweep(write(tmp_path, _sb3(space=small, budget={"max": 20000, "min": 2048})))
    assert sw.granularity == (256, 2048)
    # no report_every given: a tenth of max (1,000) would be below one rollout, so it is one rollout
    sw = load_sweep(write(tmp_path, _sb3(space=small, method="random", budget={"max": 1000 * 10})))
    assert sw.config.budget.interval == 2048


def test_an_exact_budget_is_rounded_to_the_largest_piece_or_refused_where_pieces_do_not_nest(tmp_path):
    """4 envs, n_steps 64..512 (pow2): pieces 256..2,048, each dividing the largest."""
    small = {"n_steps": {"type": "int", "low": 64, "high": 512, "transform": "pow2"}}
    budget = {"max": 20000, "min": 5000, "report_every": 5000, "exact": True}
    b = load_sweep(write(tmp_path, _sb3(space=small, budget=budget))).config.budget
    assert (b.max, b.min, b.report_every) == (20480, 6144, 6144)
    b = load_sweep(
        write(tmp_path, _sb3(space=small, method="random", budget={"max": 20000, "exact": True}))
    ).config.budget
    assert (b.max, b.interval) == (20480, 2048)  # the default report, a tenth of max, rounded too
    odd = {"n_steps": {"type": "categorical", "choices": [96, 128]}}  # pieces 384 and 512
    with pytest.raises(ConfigError, match="384 does not divide 512") as err:
        load_sweep(write(tmp_path, _sb3(space=odd, budget=budget)))
    assert err.value.key == "budget.exact"
    # a trial whose condition fails has no n_steps: SB3's default 2,048 x 4, which 384 does not divide
    conditional = {
        "n_epochs": {"type": "categorical", "choices": [5, 10]},
        "n_steps": {"type": "categorical", "choices": [96], "condition": {"n_epochs": [10]}},
    }
    with pytest.raises(ConfigError, match="384 does not divide 8,192"):
        load_sweep(write(tmp_path, _sb3(space=conditional, budget=budget)))
    ranged = {"n_steps": {"type": "int", "low": 64, "high": 512}}  # every integer: pieces cannot be listed
    with pytest.raises(ConfigError, match="cannot be listed"):
        load_sweep(write(tmp_path, _sb3(space=ranged, budget=budget)))
    with pytest.raises(ConfigError, match=r"rounds min up to 6,144 .* more than total = 6,000"):
        load_sweep(write(tmp_path, _sb3(space=small, budget={**budget, "total": 6000})))


def test_a_racing_sweep_trains_exact_budgets_unless_told_otherwise(tmp_path):
    """Racing compares configurations on the seeds both ran, so also on equal steps: budget.exact left
    unset is on where the pieces nest and off (not refused) where they do not; a population's race
    trains nothing, and a sweep that does not race keeps it unset."""
    small = {"n_steps": {"type": "int", "low": 64, "high": 512, "transform": "pow2"}}  # 256..2,048
    racing = _sb3(space=small, method="random", race=True, budget={"max": 20000})

    def budget(cfg):
        return load_sweep(write(tmp_path, cfg)).config.budget

    assert (budget(racing).max, budget(racing).exact) == (20480, True)
    assert budget(racing).interval == 2048  # the default report, a tenth of max, rounded too
    told = budget({**racing, "budget": {"max": 20000, "exact": False}})
    assert (told.max, told.exact) == (20000, False)
    odd = budget({**racing, "space": {"n_steps": {"type": "categorical", "choices": [96, 128]}}})
    assert (odd.max, odd.exact) == (20000, False)  # pieces 384 and 512 do not nest
    plain = budget({k: v for k, v in racing.items() if k != "race"})
    assert (plain.max, plain.exact) == (20000, None)
    pbt = {
        **racing,
        "space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3, "mutable": True}},
        "budget": {"max": 20000, "report_every": 5000},
        "method": {"name": "pbt", "population": 2},
    }
    assert (budget(pbt).max, budget(pbt).exact) == (20000, None)
    # the choice is recorded, so a worker (which rebuilds the sweep from its portable keys) makes it too
    sw = load_sweep(write(tmp_path, racing))
    assert sw.resolved()["budget"]["exact"] is True and sw.portable()["budget"]["exact"] is True


def test_evaluate_every_is_refused_where_every_report_is_evaluated(tmp_path):
    """It sets where a batch of trials evaluates; a trial of its own evaluates at every report."""
    small = {"n_steps": {"type": "int", "low": 64, "high": 512, "transform": "pow2"}}
    budget = {"max": 20000, "min": 5000, "evaluate_every": 10000}
    with pytest.raises(ConfigError, match="batch > 1") as err:
        load_sweep(write(tmp_path, _sb3(space=small, budget=budget)))
    assert err.value.key == "budget.evaluate_every"


def test_off_policy_agents_and_plain_functions_need_no_more_than_one_step(make_config, tmp_path):
    sw = load_sweep(
        write(tmp_path, _sb3(target="sb3:dqn", space="sb3/dqn.yaml", method="random", budget={"max": 8}))
    )
    assert sw.granularity == (4, 4)  # one step of each of the 4 envs
    assert load_sweep(write(tmp_path, make_config())).granularity == (1, 1)


def test_a_population_interval_below_one_rollout_is_refused(tmp_path):
    cfg = _sb3(
        space={"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3, "mutable": True}},
        args={"env": "CartPole-v1", "n_envs": 8, "n_steps": 32},
        budget={"max": 4096},
        method={"name": "pbt", "population": 2, "interval": 100},
    )
    with pytest.raises(ConfigError, match=r"method\.interval: .*interval >= 256 must hold"):
        load_sweep(write(tmp_path, cfg))


def test_deciding_on_a_training_metric_the_target_does_not_declare_is_refused(tmp_path):
    """SB3 agents report no training return, so PBT deciding on one would rank nothing: refused before
    the sweep starts, naming the key and the targets that report it."""
    cfg = _sb3(
        space={"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3, "mutable": True}},
        budget={"max": 16384},
        method={"name": "pbt", "population": 2, "decide_on": "train_return"},
    )
    with pytest.raises(ConfigError, match=r"method\.decide_on: .*'train_return'.*engine:ppo") as err:
        load_sweep(write(tmp_path, cfg))
    assert "\n" not in str(err.value)
    cfg["method"]["decide_on"] = "eval_return"  # the sweep's own metric: evaluated every interval
    assert load_sweep(write(tmp_path, cfg)).population.decides_on == "eval_return"


def test_deciding_on_a_return_while_minimising_is_refused(tmp_path):
    cfg = {
        "target": "engine:ppo",
        "args": {"env": "CartPole-v1", "n_envs": 8, "n_steps": 16},
        "space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3, "mutable": True}},
        "direction": "minimize",
        "budget": {"max": 1024},
        "method": {"name": "pbt", "population": 2, "decide_on": "train_return"},
    }
    with pytest.raises(ConfigError, match=r"method\.decide_on: .*maximises, while the sweep minimises"):
        load_sweep(write(tmp_path, cfg))


def test_halve_on_stall_on_a_target_that_declares_no_training_metric_runs_as_before(tmp_path):
    """It reads a training metric it cannot know the target reports: accepted as before decide_on
    existed (the loop then evaluates every interval), not refused."""
    from tests.conftest import toy

    cfg = {
        "target": toy("Toy"),
        "space": {"learning_rate": {"type": "float", "low": 1e-3, "high": 0.1, "log": True, "mutable": True}},
        "metric": "score",
        "budget": {"max": 20, "report_every": 10},
        "method": {"name": "halve_on_stall", "population": 2},
    }
    assert load_sweep(write(tmp_path, cfg)).population.decides_on == "train_return"


def test_threads_are_counted_on_the_processes_a_population_starts(make_config, tmp_path, monkeypatch):
    """A population of 2 on 4 workers starts 2 processes: 2 threads each fit 4 cores."""
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    cfg = make_config(
        target="engine:ppo",
        args={"env": "CartPole-v1", "n_envs": 4, "n_steps": 16, "threads": 2},
        space={"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True, "mutable": True}},
        budget={"max": 256, "report_every": 128},
        method={"name": "pbt", "population": 2},
        workers=4,
    )
    del cfg["trials"]
    assert load_sweep(write(tmp_path, cfg)).config.workers == 4
    cfg["method"] = {"name": "pbt", "population": 4}  # 4 processes of 2 threads: refused
    with pytest.raises(ConfigError, match="got 4 x 2"):
        load_sweep(write(tmp_path, cfg))


def test_a_run_written_before_the_newer_budget_keys_resumes_unchanged(make_config, tmp_path):
    """config.yaml of a run made before budget.exact and budget.evaluate_every existed lacks them."""
    from autorl.results.rundir import differences

    new = load_sweep(write(tmp_path, make_config())).resolved()
    old = {**new, "budget": {k: v for k, v in new["budget"].items() if k not in ("exact", "evaluate_every")}}
    assert differences(old, new) == []
    # exact written as null (before a racing sweep recorded its choice) is off, as false is
    assert (
        differences(
            {**old, "budget": {**old["budget"], "exact": None}},
            {**new, "budget": {**new["budget"], "exact": False}},
        )
        == []
    )
    # exact alone changes nothing (the marks it rounds are compared themselves)
    assert differences(old, {**new, "budget": {**new["budget"], "exact": True}}) == []
    assert differences(old, {**new, "budget": {**new["budget"], "max": 7}}) != []
