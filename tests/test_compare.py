"""autorl compare: equal budgets, caching, fresh test seeds, bad suites refused before running."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from autorl.compare import load_suite, publish, run_suite
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


@pytest.mark.slow  # ~15 s; run_suite end to end stays in the fast suite (cached cells, racing suite)
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


@pytest.mark.slow  # ~5 s: keeps the default run under 5 minutes
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


@pytest.mark.slow  # ~6 s: keeps the default run under 5 minutes
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
    # one page holds every part, its plots found from the top directory
    assert "## branin" in index and "### Ranking" in index and "](group1/aggregates.png)" in index
    published = publish(report, tmp_path / "docs" / "results.md", "autorl compare suite.yaml")
    text = published.read_text()
    assert text.splitlines()[2].startswith("Regenerated by `autorl compare suite.yaml`")
    assert "](figures/results/group1_aggregates.png)" in text
    assert (tmp_path / "docs" / "figures" / "results" / "group2_profiles.png").is_file()
    # the parts are inline and the run directory is not published: their links become plain text
    assert "\n- branin\n" in text and "group1/report.md" not in text
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


def test_dry_run_lists_every_cell_with_its_budget_and_an_estimate_and_runs_nothing(tmp_path):
    from click.testing import CliRunner

    from autorl.cli import main

    # by default nothing trains: no cell has finished, so there is no estimate, and it says how to get one
    res = CliRunner().invoke(main, ["compare", str(_suite(tmp_path)), "--dry-run"])
    assert res.exit_code == 0 and "calibrating" not in res.output, res.output
    assert "no estimate (nothing measured yet; --calibrate trains each task briefly" in res.output
    res = CliRunner().invoke(main, ["compare", str(_suite(tmp_path)), "--dry-run", "--calibrate"])
    assert res.exit_code == 0, res.output
    cells = [line for line in res.output.splitlines() if line.startswith("branin ")]
    assert sorted(line.split(", ~")[0] for line in cells) == sorted(
        f"branin {m} seed {s}: synthetic:branin, 8 evaluations + test 2"
        for m in ("random", "tpe")
        for s in (0, 1)
    )
    assert all(re.search(r", ~\d+:\d\d$", line) for line in cells), cells  # an estimate from calibration
    assert "calibrating branin" in res.output and "4 cells, 0 done" in res.output
    assert "(from finished cells and short calibration runs)" in res.output
    assert not (tmp_path / "cmp").exists()
    # with one finished cell: that cell is "done", and the others are estimated from it without calibrating
    suite = load_suite(_suite(tmp_path, seeds=[0]), overrides=["methods={random: random}"])
    run_suite(suite)
    res = CliRunner().invoke(main, ["compare", str(_suite(tmp_path)), "--dry-run"])
    assert "branin random seed 0: synthetic:branin, 8 evaluations + test 2, done" in res.output, res.output
    assert re.search(r"branin random seed 1: .*, ~\d+:\d\d\n", res.output), res.output
    # tpe: nothing measured, and no calibration
    assert "(from finished cells (not calibrated); 2 cells with no estimate; --calibrate" in res.output
    res = CliRunner().invoke(main, ["compare", str(_suite(tmp_path, seeds=0)), "--dry-run"])
    assert res.exit_code == 2 and "seeds" in res.output


def _curve_task(noise: float, **extra: Any) -> dict[str, Any]:
    """A task on synthetic:curve: 1,200 steps of budget, trials of at most 300."""
    return {
        "target": "synthetic:curve",
        "args": {"noise": noise},
        "budget": {"max": 300, "report_every": 100, "total": 1200},
        "ref": [0.0, 1.0],
        **extra,
    }


def test_pbt_cell_spends_the_budget_and_is_judged_by_replaying_its_schedule(tmp_path):
    """A population method takes part in a comparison: it spends budget.total split over its members,
    and its incumbent is the best schedule, retrained from scratch on fresh seeds."""
    suite = load_suite(
        _suite(
            tmp_path,
            tasks={"curve": _curve_task(noise=0.0)},
            methods={"pbt": {"name": "pbt", "population": 4}},
            seeds=1,
        )
    )
    results, curves, _ = run_suite(suite)
    row = results.iloc[0]
    assert row["budget_used"] == 1200 and row["trials"] == 4
    # its anytime curve: the best member after each of the 3 intervals, at 400, 800, 1200 steps
    assert curves["budget"].tolist() == [400.0, 800.0, 1200.0]
    assert curves["time"].is_monotonic_increasing and curves["score"].is_monotonic_increasing
    out = suite.cells[0].sweep.out
    replay = (out / "replay.csv").read_text().splitlines()
    assert len(replay) == 1 + 2 and replay[1].startswith(str(FRESH_SEED_BASE))  # 2 fresh test seeds
    # noise-free curve: replaying the best schedule reproduces the tuning score
    assert row["test_value"] == pytest.approx(row["tuning_value"])


def test_a_racing_suite_races_every_tuner_and_judges_a_population_by_its_race(tmp_path):
    """``race`` on a suite reaches every tuning method's sweep (not a fixed baseline's); a racing PBT
    cell is judged by its race's incumbent and race mean, not by a race block's value."""
    suite = load_suite(
        _suite(
            tmp_path,
            tasks={"curve": _curve_task(noise=0.5, baselines={"fixed": {"x": 0.3, "lr": 0.01}})},
            methods={"pbt": {"name": "pbt", "population": 4}, "fixed": "fixed"},
            race={"share": 0.5, "seeds": 4},
            seeds=1,
        )
    )
    raced = {c.method: c.sweep.config.race is not None for c in suite.cells}
    assert raced == {"pbt": True, "fixed": False}
    from tests.conftest import toy

    toy_task = {  # a population on a target that cannot evaluate on seeds is left to run unraced
        "target": toy("Toy"),
        "metric": "score",
        "space": {"lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True, "mutable": True}},
        "budget": {"max": 30, "report_every": 10, "total": 120},
    }
    other = load_suite(_suite(tmp_path, tasks={"toy": toy_task}, methods={"pbt": "pbt"}, race=True))
    assert [c.sweep.config.race for c in other.cells] == [None, None]
    results, _, _ = run_suite(suite)
    row = results.set_index("method").loc["pbt"]
    (pbt,) = (c for c in suite.cells if c.method == "pbt")
    best = yaml.safe_load((pbt.sweep.out / "best.yaml").read_text())
    assert row["trials"] == 4 + 2 * 4 and row["budget_used"] == 1200  # race blocks train nothing
    assert row["tuning_value"] == pytest.approx(best["value"]) == pytest.approx(best["race"]["mean"])


def test_every_method_of_a_racing_suite_is_charged_and_tested_at_the_task_s_marks(tmp_path):
    """A racing sweep rounds its budget by default (budget.exact), but a comparison charges every method
    of a task the same marks: a racing cell keeps the task's budget as written unless the task sets
    exact."""
    small = {"n_steps": {"type": "int", "low": 64, "high": 512, "transform": "pow2"}}  # pieces to 2,048
    task = {
        "target": "sb3:ppo",
        "args": {"env": "CartPole-v1", "n_envs": 4},
        "space": small,
        "budget": {"max": 20000, "total": 100000},
        "ref": [0.0, 500.0],
    }
    methods = {"random": "random", "asha": {"name": "asha", "reduction_factor": 2}}
    tasks = {"cp": {**task, "budget": {**task["budget"], "min": 5000}}}
    racing = load_suite(_suite(tmp_path, tasks=tasks, methods=methods, race=True))
    for cell in racing.cells:
        b = cell.sweep.config.budget
        assert (b.max, b.min, b.exact) == (20000, 5000, False) and cell.sweep.config.race is not None
    exact = {"cp": {**tasks["cp"], "budget": {**tasks["cp"]["budget"], "exact": True}}}
    for cell in load_suite(_suite(tmp_path, tasks=exact, methods=methods, race=True)).cells:
        assert (cell.sweep.config.budget.max, cell.sweep.config.budget.min) == (20480, 6144)


def test_a_racing_cell_keeps_the_key_it_had_before_racing_sweeps_rounded_their_budgets(tmp_path):
    """A racing cell records budget.exact (off), but is keyed as before it did, so a suite run before
    then reuses its cells. The names below are what commit 3a52374 (before budget.exact's racing
    default) gave these cells; a change to what a cell is (its target, space or budget) rightly changes
    them, and this test with them."""
    small = {"n_steps": {"type": "int", "low": 64, "high": 512, "transform": "pow2"}}
    task = {
        "target": "sb3:ppo",
        "args": {"env": "CartPole-v1", "n_envs": 4},
        "space": small,
        "budget": {"max": 20000, "total": 100000, "min": 5000},
        "ref": [0.0, 500.0],
    }
    methods = {"random": "random", "asha": {"name": "asha", "reduction_factor": 2}}
    suite = load_suite(_suite(tmp_path, tasks={"cp": task}, methods=methods, race=True))
    names = {(c.method, c.seed): Path(c.sweep.config.out).name for c in suite.cells}
    assert names == {
        ("asha", 0): "seed0-86a2ad2e60",
        ("asha", 1): "seed1-72f19676d8",
        ("random", 0): "seed0-557ed47c35",
        ("random", 1): "seed1-bc8d2b7cc2",
    }


def test_a_suite_races_no_population_on_a_training_metric(tmp_path):
    """A population's race evaluates and trains nothing, so it cannot give a training return: on a task
    whose metric is one, a suite's race leaves its population cells unraced (a sweep would refuse it)
    and races the other tuners, whose race blocks train."""
    task = {
        "target": "engine:ppo",
        "args": {"env": "CartPole-v1", "n_envs": 8, "n_steps": 16},
        "space": {
            "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True, "mutable": True}
        },
        "metric": "train_return",
        "budget": {"max": 512, "total": 2048},
        "ref": [0.0, 500.0],
    }
    methods = {"random": "random", "pbt": {"name": "pbt", "population": 2}}
    suite = load_suite(_suite(tmp_path, tasks={"cp": task}, methods=methods, race=True))
    raced = {(c.method, c.seed): c.sweep.config.race is not None for c in suite.cells}
    assert raced == {("random", 0): True, ("random", 1): True, ("pbt", 0): False, ("pbt", 1): False}


def test_a_time_budget_is_what_each_cell_is_charged_and_the_report_says_so(tmp_path):
    from tests.conftest import toy

    path = _suite(
        tmp_path,
        tasks={
            "slow": {
                "target": toy("curve"),
                "args": {"sleep": 0.05},
                "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
                "metric": "score",
                "budget": {"max": 100, "report_every": 50, "time": 4.0},  # a worker may take 2 s to start
                "ref": [0.0, 1.0],
            }
        },
        methods={"random": "random"},
        seeds=1,
    )
    start = time.monotonic()
    results, curves, report = run_suite(load_suite(path))
    row = results.iloc[0]
    assert row["time_total"] == 4.0 and pd.isna(row["budget_total"])
    assert 2 <= row["trials"] <= 40  # about 0.1 s each: the clock, not the 10,000 trials, stopped it
    assert row["tuning_s"] < 8 and time.monotonic() - start < 20
    assert curves["time"].max() <= 4.0 + 0.5
    assert "of wall clock" in report.read_text()


@pytest.mark.slow  # ~6 s
def test_every_row_has_its_optimism_gap_and_the_report_a_table_of_them(tmp_path):
    results, _, report = run_suite(load_suite(_suite(tmp_path)))
    # branin is minimised: scores are negated values, and the gap is tuning estimate less test score
    assert (results["tuning_score"] == -results["tuning_value"]).all()
    assert (results["optimism"] == results["tuning_score"] - results["score"]).all()
    text = report.read_text()
    assert "## Honest incumbents: the optimism gap" in text
    assert re.search(r"\| random \| [+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\] \| \d/2 \|", text), text


@pytest.mark.slow  # ~5 s: keeps the default run under 5 minutes
def test_progress_is_told_after_every_cell_and_counts_cached_ones(tmp_path):
    seen = []
    suite = load_suite(_suite(tmp_path))
    run_suite(suite, progress=lambda s: seen.append((s.done, s.cached, s.eta is not None)))
    assert [d for d, _, _ in seen] == [1, 2, 3, 4] and all(c == 0 and eta for _, c, eta in seen)
    seen.clear()
    run_suite(suite, progress=lambda s: seen.append((s.done, s.cached, s.eta is not None)))
    assert seen == [(1, 1, False), (2, 2, False), (3, 3, False), (4, 4, False)]


def _compare_until_a_cell_is_done(path, cells):
    """Start ``autorl compare`` in a session of its own and return once its first cell is written."""
    cmd = [sys.executable, "-m", "autorl.cli", "compare", str(path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(cells.rglob("cell.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc, cells


@pytest.mark.slow  # ~25 s; faults.py kills comparisons 20 times
def test_a_suite_killed_with_sigkill_resumes_with_every_finished_cell_kept(tmp_path):
    path = _suite(
        tmp_path,
        seeds=4,
        tasks={
            "curve": {
                "target": "synthetic:curve",
                "budget": {"max": 300, "report_every": 100, "total": 1200},
                "ref": [0.0, 1.0],
            }
        },
    )
    proc, cells = _compare_until_a_cell_is_done(path, tmp_path / "cmp" / "cells")
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the process group this test started, and nothing else
    finally:
        proc.wait(timeout=30)
    kept = {p: p.stat().st_mtime_ns for p in cells.rglob("cell.json")}
    assert 1 <= len(kept) < 8, "the kill must land between the first cell and the last"
    results, _, _ = run_suite(load_suite(path))
    assert len(results) == 8 and results["score"].notna().all()
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in kept.items())  # read back, not re-run


@pytest.mark.slow  # ~6 s
def test_a_baseline_per_task_is_judged_like_the_tuners_and_keyed_by_its_contents(tmp_path):
    settings = tmp_path / "published.yaml"
    settings.write_text("x1: 3.14159\nx2: 2.275\n")  # one of branin's minima
    path = _suite(
        tmp_path,
        methods={"random": "random", "published": "fixed"},
        tasks={
            "branin": {
                "target": "synthetic:branin",
                "args": {"noise": 0.5},
                "budget": {"max": 1, "total": 8},
                "ref": [50.0, 0.397887],
                "baselines": {"published": str(settings)},
            }
        },
    )
    suite = load_suite(path)
    results, _, report = run_suite(suite)
    fixed = results[results["method"] == "published"]
    assert (fixed["trials"] == 1).all() and (fixed["budget_used"] == 1).all()  # one run at budget.max
    assert all(i == {"x1": 3.14159, "x2": 2.275} for i in fixed["incumbent"])
    assert "the baselines (published) train once, at 1." in report.read_text()
    before = {c.sweep.out for c in suite.cells if c.method == "published"}
    settings.write_text("x1: 0.0\nx2: 0.0\n")  # the same file name, other settings: other cells
    assert before.isdisjoint({c.sweep.out for c in load_suite(path).cells if c.method == "published"})
    with pytest.raises(ConfigError, match=r"tasks\.branin\.baselines: gives a configuration to 'random'"):
        load_suite(
            _suite(
                tmp_path,
                tasks={
                    "branin": {
                        "target": "synthetic:branin",
                        "budget": {"max": 1, "total": 8},
                        "baselines": {"random": str(settings)},
                    }
                },
            )
        )


def _session_processes(sid: int) -> list[int]:
    """Processes of session ``sid`` still alive (this test starts the comparison in its own session)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # field 6 of stat: the session id
            alive.append(int(stat.parent.name))
    return alive


@pytest.mark.slow  # 12 s; the default run keeps under 5 minutes
def test_sigterm_to_a_comparison_stops_its_cell_processes_and_it_resumes(tmp_path):
    path = _suite(
        tmp_path,
        seeds=4,
        jobs=2,
        tasks={
            "curve": {  # about 2 s a cell: cells are still queued when the signal comes
                "target": f"{Path(__file__).parent / 'toy_targets.py'}:curve",
                "space": {
                    "x": {"type": "float", "low": 0.0, "high": 1.0},
                    "sleep": {"type": "fixed", "value": 0.1},
                },
                "budget": {"max": 300, "report_every": 100, "total": 1200},
                "ref": [0.0, 1.0],
            }
        },
    )
    proc, cells = _compare_until_a_cell_is_done(path, tmp_path / "cmp" / "cells")
    try:
        at_signal = len(list(cells.rglob("cell.json")))
        proc.send_signal(signal.SIGTERM)  # the comparison only, as `kill PID` does
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _session_processes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _session_processes(proc.pid) == []  # its cell processes (and their workers) stopped too
    finally:
        for pid in _session_processes(proc.pid):
            os.kill(pid, signal.SIGKILL)
    kept = list(cells.rglob("cell.json"))
    # the running cells stop; no queued cell starts after the signal (one may have been ending)
    assert 1 <= len(kept) <= at_signal + 1 < 8
    results, _, _ = run_suite(load_suite(path))
    assert len(results) == 8 and results["score"].notna().all()


@pytest.mark.slow  # ~5 s
def test_a_partial_report_says_what_the_suite_is_and_which_tasks_it_leaves_out(tmp_path):
    path = _suite(
        tmp_path,
        notes="The **toy** suite: two synthetic tasks.",
        tasks={
            "branin": {"target": "synthetic:branin", "budget": {"max": 1, "total": 4}, "ref": [50.0, 0.4]},
            "other": {"target": "synthetic:branin", "budget": {"max": 1, "total": 2}, "ref": [50.0, 0.4]},
        },
        methods={"random": "random"},
        seeds=1,
    )
    _, _, report = run_suite(load_suite(path, only=["branin"]))
    head = report.read_text().split("## ", 1)[0]
    assert "The **toy** suite: two synthetic tasks." in head
    assert "Not in this report (tasks of the suite that this run left out): other." in head
    _, _, report = run_suite(load_suite(path))
    assert "Not in this report" not in report.read_text()


@pytest.mark.slow  # ~5 s
def test_each_seeds_incumbent_has_its_own_test_seeds_and_an_old_cell_is_only_re_judged(tmp_path):
    settings = tmp_path / "published.yaml"
    settings.write_text("x1: 3.14159\nx2: 2.275\n")
    path = _suite(
        tmp_path,
        methods={"published": "fixed"},
        tasks={
            "branin": {
                "target": "synthetic:branin",
                "args": {"noise": 0.5},
                "budget": {"max": 1, "total": 1},
                "ref": [50.0, 0.397887],
                "baselines": {"published": str(settings)},
            }
        },
    )
    suite = load_suite(path)
    results, _, _ = run_suite(suite)
    # one configuration, judged twice on disjoint fresh seeds: two estimates, not one copied
    assert set(suite.cells[0].test_seeds).isdisjoint(suite.cells[1].test_seeds)
    assert results["score"].nunique() == 2
    # cells written before test seeds were per cell: seed 0's (the seeds it had) is kept, seed 1's
    # is judged again on its own seeds without tuning again, its tuning time kept
    files = [c.sweep.out / "cell.json" for c in suite.cells]
    for f, score in zip(files, (111.0, 222.0), strict=True):
        payload = json.loads(f.read_text())
        del payload["test_seeds"]
        payload["row"].update(score=score, tuning_s=5.0)
        f.write_text(json.dumps(payload))
    results, _, _ = run_suite(load_suite(path))
    assert list(results["score"].iloc[:1]) == [111.0]
    again = json.loads(files[1].read_text())
    assert again["test_seeds"] == list(suite.cells[1].test_seeds) and again["row"]["score"] != 222.0
    assert again["row"]["tuning_s"] == 5.0 and again["row"]["trials"] == 1


def test_failed_trials_are_counted_by_kind_in_runs_and_the_report(tmp_path):
    """A task whose target raises for x < 0 and diverges for x > 0.8: each cell's runs.csv row counts
    its failed trials by kind, and the report sums them per method."""
    from tests.conftest import toy

    task = {
        "target": toy("flaky"),
        "space": {"x": {"type": "float", "low": -1.0, "high": 1.0}},
        "metric": "value",
        "direction": "maximize",
        "budget": {"max": 1, "total": 12},
    }
    suite = load_suite(_suite(tmp_path, tasks={"flaky": task}, methods={"random": "random"}))
    results, _, report = run_suite(suite)
    assert results["failed_error"].sum() > 0 and results["failed_diverged"].sum() > 0
    n_error, n_diverged = int(results["failed_error"].sum()), int(results["failed_diverged"].sum())
    assert f"random: {n_diverged} diverged, {n_error} error." in report.read_text()


def test_a_suites_executor_reaches_its_cells_and_tune_leaves_populations_to_ray(tmp_path):
    methods = {"random": "random", "pbt": {"name": "pbt", "population": 4}, "zoo": "fixed"}
    tasks = {"curve": _curve_task(noise=0.0, baselines={"zoo": {"x": 0.3, "lr": 0.1}})}
    plain = load_suite(_suite(tmp_path, tasks=tasks, methods=methods, seeds=1))
    tuned = load_suite(_suite(tmp_path, tasks=tasks, methods=methods, seeds=1, executor="tune"))
    where = {c.method: c.sweep.config.executor for c in tuned.cells}
    assert where == {"random": "tune", "pbt": "ray", "zoo": "ray"}  # Tune runs what it searches
    assert {c.sweep.config.executor for c in plain.cells} == {"embedded"}
    # where a cell runs is not what it is: the same cells, so finished ones are reused
    assert [c.sweep.out for c in tuned.cells] == [c.sweep.out for c in plain.cells]
