"""autorl compare: equal budgets, caching, fresh test seeds, bad suites refused before running."""

import json
from pathlib import Path

import pytest
import yaml

from autorl.compare import load_suite, run_suite
from autorl.errors import ConfigError
from autorl.evaluate import FRESH_SEED_BASE

SMOKE = Path(__file__).resolve().parent.parent / "benchmarks" / "suites" / "smoke.yaml"


def _suite(tmp_path, **changes):
    data = {
        "tasks": {
            "branin": {
                "target": "synthetic:branin",
                "args": {"noise": 0.5},
                "budget": {"max": 1, "total": 8},
                "ref": [50.0, 0.397887],
            }
        },
        "methods": {"random": "random", "tpe": {"name": "tpe", "n_startup_trials": 3}},
        "seeds": 2,
        "test_seeds": 2,
        "out": str(tmp_path / "cmp"),
    }
    data.update(changes)
    p = tmp_path / "suite.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_smoke_suite_end_to_end_with_equal_budgets(tmp_path):
    suite = load_suite(SMOKE, ["seeds=2"], out=str(tmp_path / "smoke"))
    results, curves, report = run_suite(suite)
    assert len(results) == 2 * 3 * 2
    for _, row in results.iterrows():  # every method spent its budget, and no more
        task = suite.config.tasks[row["task"]]
        assert task.budget.total - task.budget.max < row["budget_used"] <= task.budget.total
    assert curves.groupby(["method", "task", "seed"])["budget"].max().le(5400).all()
    text = report.read_text()
    assert "## Ranking" in text and "IQM" in text
    for f in ("aggregates.png", "profiles.png", "anytime_curve.png", "results.csv", "runs.csv"):
        assert (tmp_path / "smoke" / f).is_file(), f


def test_cells_are_cached_and_minimised_metrics_become_higher_is_better(tmp_path):
    path = _suite(tmp_path)
    results, _, _ = run_suite(load_suite(path))
    assert (results["trials"] == 8).all()
    assert (results["score"] == -results["test_value"]).all()
    (cell,) = (tmp_path / "cmp" / "cells" / "branin" / "tpe").glob("seed0-*/cell.json")
    stamp = cell.stat().st_mtime_ns
    again, _, _ = run_suite(load_suite(path))
    assert cell.stat().st_mtime_ns == stamp  # read back, not re-run
    assert again["score"].tolist() == results["score"].tolist()
    # the incumbent is judged on fresh seeds that tuning never used
    tuning_seeds = json.loads((cell.parent / "run.json").read_text())["seed"]
    assert tuning_seeds < FRESH_SEED_BASE


def test_a_changed_suite_never_reuses_old_cells_and_a_truncated_cell_is_evaluated_again(tmp_path):
    path = _suite(tmp_path)
    run_suite(load_suite(path))
    cells = sorted((tmp_path / "cmp" / "cells").rglob("cell.json"))
    changed = load_suite(path, overrides=["test_seeds=3"])
    assert {c.sweep.out for c in changed.cells}.isdisjoint({c.parent for c in cells})  # keyed by definition
    cells[0].write_text('{"row": {"method": "tp')  # a kill in the middle of a write (before it was atomic)
    results, _, _ = run_suite(load_suite(path))
    assert json.loads(cells[0].read_text())["row"]["score"] in results["score"].tolist()


def test_a_second_comparison_on_one_directory_is_refused(tmp_path):
    from autorl.results import DirectoryLock

    suite = load_suite(_suite(tmp_path))
    with DirectoryLock(suite.out, "comparison"):  # as a live `autorl compare` holds it
        with pytest.raises(ConfigError, match="is in use by pid"):
            run_suite(suite)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds no autorl comparison"):
        run_suite(load_suite(_suite(tmp_path), out=str(other)))


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"methods": {"tpee": "tpee"}}, "methods.tpee: method: unknown method 'tpee'"),
        (
            {"tasks": {"t": {"target": "sb3:ppx", "budget": {"max": 1, "total": 2}}}},
            "unknown target 'sb3:ppx'",
        ),
        (
            {"tasks": {"t": {"target": "synthetic:curve", "budget": {"max": 100, "min": 10, "total": 50}}}},
            "cannot honour budget.total=50",
        ),
        (
            {"tasks": {"t": {"target": "synthetic:curve", "budget": {"max": 100}}}},
            "tasks.t.budget.total: is required",
        ),
        (
            {
                "tasks": {"t": {"target": "synthetic:branin", "budget": {"max": 1, "total": 5}}},
                "methods": {"asha": "asha"},
            },
            "needs budget.min",
        ),
    ],
)
def test_bad_suites_are_refused_before_anything_runs(tmp_path, changes, match):
    with pytest.raises(ConfigError, match=match):
        load_suite(_suite(tmp_path, **changes))
    assert not (tmp_path / "cmp").exists()


def test_tasks_with_different_method_sets_are_reported_in_groups(tmp_path):
    path = _suite(
        tmp_path,
        tasks={
            "branin": {
                "target": "synthetic:branin",
                "budget": {"max": 1, "total": 4},
                "ref": [50.0, 0.397887],
            },
            "curve": {
                "target": "synthetic:curve",
                "budget": {"max": 100, "total": 200},
                "ref": [0.0, 1.0],
                "methods": ["random"],
            },
        },
    )
    results, _, report = run_suite(load_suite(path))
    assert sorted(set(zip(results["task"], results["method"], strict=True))) == [
        ("branin", "random"),
        ("branin", "tpe"),
        ("curve", "random"),
    ]
    index = report.read_text()
    assert "[branin](group1/report.md)" in index and "[curve](group2/report.md)" in index
    assert (tmp_path / "cmp" / "group2" / "report.md").is_file()
    with pytest.raises(
        ConfigError, match=r"tasks\.curve\.methods: names methods the suite does not define: pbt"
    ):
        load_suite(
            _suite(
                tmp_path,
                tasks={
                    "curve": {
                        "target": "synthetic:curve",
                        "methods": ["pbt"],
                        "budget": {"max": 100, "total": 200},
                    }
                },
            )
        )


def test_dry_run_lists_every_cell_and_runs_nothing(tmp_path):
    from click.testing import CliRunner

    from autorl.cli import main

    res = CliRunner().invoke(main, ["compare", str(_suite(tmp_path)), "--dry-run"])
    assert res.exit_code == 0, res.output
    cells = [line for line in res.output.splitlines() if line.startswith("branin ")]
    assert sorted(cells) == sorted(
        f"branin {m} seed {s}: synthetic:branin" for m in ("random", "tpe") for s in (0, 1)
    )
    assert not (tmp_path / "cmp" / "results.csv").exists()
    res = CliRunner().invoke(main, ["compare", str(_suite(tmp_path, seeds=0)), "--dry-run"])
    assert res.exit_code == 2 and "seeds" in res.output


def test_pbt_cell_spends_the_budget_and_is_judged_by_replaying_its_schedule(tmp_path):
    """A population method takes part in a comparison: it spends budget.total split over its members,
    and its incumbent is the best schedule, retrained from scratch on fresh seeds."""
    suite = load_suite(
        _suite(
            tmp_path,
            tasks={
                "curve": {
                    "target": "synthetic:curve",
                    "args": {"noise": 0.0},
                    "budget": {"max": 300, "report_every": 100, "total": 1200},
                    "ref": [0.0, 1.0],
                }
            },
            methods={"pbt": {"name": "pbt", "population": 4}},
            seeds=1,
        )
    )
    results, _, _ = run_suite(suite)
    row = results.iloc[0]
    assert row["budget_used"] == 1200 and row["trials"] == 4
    out = suite.cells[0].sweep.out
    replay = (out / "replay.csv").read_text().splitlines()
    assert len(replay) == 1 + 2 and replay[1].startswith(str(FRESH_SEED_BASE))  # 2 fresh test seeds
    # noise-free curve: replaying the best schedule reproduces the tuning score
    assert row["test_value"] == pytest.approx(row["tuning_value"])
