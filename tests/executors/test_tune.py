"""Ray Tune both ways: autorl targets in a user's own ``tune.Tuner`` (ASHA, PBT), and ``executor: tune``
writing the run directory the embedded executor writes. Each Ray test runs in a process of its own
session (loopback, token auth, a temporary Ray directory) and is stopped by its process ids."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from autorl.config import parse_sweep
from autorl.errors import ConfigError
from tests.conftest import toy
from tests.executors.test_ray import _stop_session, ray_env

__all__ = ["ray_env"]  # the fixture, shared with the Ray tests

AUTORL = [sys.executable, "-m", "autorl.cli"]
RAY_INIT = (
    'ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, '
    '_node_ip_address="127.0.0.1")'
)


def _python(script: str, env: dict[str, str], timeout: float = 300) -> dict[str, Any]:
    """Run ``script`` in a session of its own; it prints one JSON line last."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        env={**env, "RAY_AIR_NEW_OUTPUT": "0"},
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        _stop_session(proc.pid)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_users_tuner_runs_a_function_an_sb3_and_an_engine_target_with_asha(tmp_path: Path, ray_env) -> None:
    got = _python(
        f"""
        import json, ray
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler
        from autorl.api import tune_target

        def run(config, samples):
            target = tune_target(config)
            tuner = tune.Tuner(
                target.trainable,
                param_space=target.param_space,
                tune_config=tune.TuneConfig(
                    metric=target.metric, mode=target.mode, num_samples=samples,
                    scheduler=ASHAScheduler(time_attr=target.time_attr, max_t=config["budget"]["max"],
                                            grace_period=config["budget"]["report_every"]),
                ),
                run_config=tune.RunConfig(storage_path="{tmp_path}", verbose=0),
            )
            grid = tuner.fit()
            return [dict(budget=r.metrics["budget"], value=r.metrics[target.metric], config=r.config,
                         error=str(r.error) if r.error else None) for r in grid]

        {RAY_INIT}
        curve = dict(target="{toy("curve")}", metric="score", direction="maximize",
                     space=dict(x=dict(type="float", low=-1.0, high=1.0)),
                     budget=dict(max=9, report_every=1))
        sb3 = dict(target="sb3:ppo", args=dict(env="CartPole-v1", n_envs=2, n_steps=64, batch_size=64,
                                               n_epochs=1, eval_episodes=2),
                   space=dict(learning_rate=dict(type="float", low=1e-4, high=1e-3, log=True),
                              gamma=dict(type="float", low=0.9, high=0.999, transform="one_minus")),
                   budget=dict(max=512, report_every=256))
        engine = dict(target="engine:ppo", args=dict(env="CartPole-v1", n_envs=4, n_steps=16, n_epochs=1,
                                                     n_minibatches=2),
                      space=dict(learning_rate=dict(type="float", low=1e-4, high=1e-2, log=True)),
                      budget=dict(max=256, report_every=128))
        print(json.dumps(dict(curve=run(curve, 8), sb3=run(sb3, 3), engine=run(engine, 2))))
        """,
        ray_env,
    )
    curve, sb3 = got["curve"], got["sb3"]
    assert len(curve) == 8 and not any(r["error"] for r in curve)
    budgets = sorted(r["budget"] for r in curve)
    assert budgets[0] < 9 and budgets[-1] == 9  # ASHA stopped some trials early and let others finish
    for r in curve:  # the function target's own report: value = (1 - |x - 0.3|) * step / budget
        assert r["value"] == pytest.approx((1 - abs(r["config"]["x"] - 0.3)) * r["budget"] / 9)
    assert len(sb3) == 3 and not any(r["error"] for r in sb3)
    assert all(r["budget"] in (256, 512) for r in sb3) and any(r["budget"] == 512 for r in sb3)
    assert all("one_minus_gamma" in r["config"] for r in sb3)  # Tune searched the transformed scale
    assert all(r["value"] > 0 for r in sb3)  # CartPole returns are positive
    engine = got["engine"]
    assert len(engine) == 2 and not any(r["error"] for r in engine)
    assert all(r["budget"] in (128, 256) and r["value"] > 0 for r in engine)


@pytest.mark.slow
def test_tunes_pbt_exploits_an_autorl_trainable_through_its_checkpoints(tmp_path: Path, ray_env) -> None:
    got = _python(
        f"""
        import json, ray
        from ray import tune
        from ray.tune.schedulers import PopulationBasedTraining
        from autorl.api import tune_target

        {RAY_INIT}
        target = tune_target(dict(target="synthetic:curve", budget=dict(max=400, report_every=50)))
        pbt = PopulationBasedTraining(time_attr=target.time_attr, perturbation_interval=100,
                                      hyperparam_mutations=dict(lr=target.param_space["lr"]))
        tuner = tune.Tuner(
            target.trainable, param_space=target.param_space,
            tune_config=tune.TuneConfig(metric=target.metric, mode=target.mode, num_samples=4, scheduler=pbt),
            run_config=tune.RunConfig(storage_path="{tmp_path}", name="pbt", verbose=0),
        )
        grid = tuner.fit()
        print(json.dumps([dict(budget=r.metrics["budget"], error=str(r.error) if r.error else None)
                          for r in grid]))
        """,
        ray_env,
    )
    assert len(got) == 4 and not any(r["error"] for r in got)
    assert all(r["budget"] == 400 for r in got)  # an exploited trial went on from its donor's checkpoint
    policies = list((tmp_path / "pbt").glob("pbt_policy_*.txt"))
    assert policies, "Tune's PBT exploited no trial"


def _sweep(tmp_path: Path, name: str, **extra: Any) -> Path:
    cfg = {
        "target": "synthetic:curve",
        "budget": {"max": 100, "report_every": 20},
        "method": "tpe",
        "trials": 6,
        "seed": 3,
        "out": str(tmp_path / name),
        **extra,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        args, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        _stop_session(proc.pid)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.mark.slow
def test_executor_tune_writes_the_run_directory_the_embedded_executor_writes(tmp_path: Path, ray_env) -> None:
    for executor in ("tune", "embedded"):
        path = _sweep(tmp_path, executor, executor=executor, tracking={"tensorboard": True})
        done = _run([*AUTORL, "sweep", str(path), "--quiet"], ray_env)
        assert done.returncode == 0, done.stderr[-3000:]
    tune, embedded = tmp_path / "tune", tmp_path / "embedded"
    for name in ("trials.csv", "curves.csv", "best.yaml", "plots/history.png", "plots/curves.png"):
        assert (tune / name).is_file(), name
    # trials of well under checkpoint_every (10 s) save no Tune checkpoint: each costs Tune a snapshot
    assert not list((tune / "tune").rglob("checkpoint_*"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for run in (tune, embedded):  # the target's own metrics are tracked, not Tune's clocks and counters
        events = EventAccumulator(str(run / "tensorboard" / "trial-0"))
        events.Reload()
        assert events.Tags()["scalars"] == ["score"]
        assert [e.step for e in events.Scalars("score")] == [20, 40, 60, 80, 100]
    a, b = pd.read_csv(tune / "trials.csv"), pd.read_csv(embedded / "trials.csv")
    # one worker: the same sampler on the same study asks the same configurations, which score alike
    cols = ["trial", "state", "value", "budget", "seed", "x", "lr"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    pd.testing.assert_frame_equal(pd.read_csv(tune / "curves.csv"), pd.read_csv(embedded / "curves.csv"))
    assert yaml.safe_load((tune / "best.yaml").read_text())["value"] == pytest.approx(b["value"].max())
    commands = (["show", str(tune)], ["train", str(tune / "best.yaml"), "--seeds", "2"],
                ["reeval", str(tune), "--top", "2", "--seeds", "2"])  # fmt: skip
    for command in commands:
        done = _run([*AUTORL, *command], ray_env)
        assert done.returncode == 0, done.stderr[-3000:]
    assert len(pd.read_csv(tune / "reeval.csv")) == 4  # 2 configurations x 2 fresh seeds
    # the method's pruner decides through Tune's scheduler
    asha = _sweep(tmp_path, "asha", executor="tune", method="asha", budget={"max": 100, "min": 20},
                  workers=2)  # fmt: skip
    done = _run([*AUTORL, "sweep", str(asha), "--quiet"], ray_env)
    assert done.returncode == 0, done.stderr[-3000:]
    states = pd.read_csv(tmp_path / "asha" / "trials.csv")["state"]
    assert (states == "PRUNED").any() and (states == "COMPLETE").any()


@pytest.mark.slow
def test_executor_tune_records_crashing_and_diverging_trials_as_the_embedded_executor(
    tmp_path: Path, ray_env
) -> None:
    space = {"x": {"type": "float", "low": -1.0, "high": 1.0}}
    for executor in ("tune", "embedded"):  # flaky: raises for x < 0, NaN for x > 0.8
        path = _sweep(tmp_path, executor, executor=executor, target=toy("flaky"), space=space, trials=12,
                      method="random", direction="maximize", budget={}, seed=0)  # fmt: skip
        done = _run([*AUTORL, "sweep", str(path), "--quiet", "--no-plots"], ray_env)
        assert done.returncode == 0, done.stderr[-3000:]
    cols = ["trial", "state", "value", "budget", "x", "failure", "error"]
    a = pd.read_csv(tmp_path / "tune" / "trials.csv")[cols]
    pd.testing.assert_frame_equal(a, pd.read_csv(tmp_path / "embedded" / "trials.csv")[cols])
    assert set(a["failure"].dropna()) == {"error", "diverged"}  # both kinds met, the sweep went on


def _under_way(proc: subprocess.Popen, out: Path, finished: int) -> None:
    """Wait until the running sweep in ``out`` has ``finished`` trials finished (2 minutes at most)."""
    from autorl.results.store import open_run

    deadline, done = time.monotonic() + 120, 0
    while done < finished and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        with contextlib.suppress(FileNotFoundError, KeyError, ValueError):
            study, _ = open_run(out)
            done = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    assert done >= finished and proc.poll() is None, "the sweep did not get under way"


@pytest.mark.slow
def test_executor_tune_killed_mid_sweep_resumes_through_tunes_restore(tmp_path: Path, ray_env) -> None:
    import signal

    from tests.executors.test_ray import _session_pids

    space = {"x": {"type": "float", "low": -1.0, "high": 1.0}}
    path = _sweep(tmp_path, "killed", executor="tune", target=toy("curve"), metric="score", space=space,
                  direction="maximize", budget={"max": 10, "report_every": 1}, args={"sleep": 0.3},
                  trials=8, workers=2)  # fmt: skip
    proc = subprocess.Popen([*AUTORL, "sweep", str(path), "--quiet"], env=ray_env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _under_way(proc, tmp_path / "killed", 3)
        for pid in _session_pids(proc.pid):  # kill -9, Ray's processes too
            os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        _stop_session(proc.pid)
    resumed = _run([*AUTORL, "sweep", str(path), "--resume", "--quiet"], ray_env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    df = pd.read_csv(tmp_path / "killed" / "trials.csv")
    assert (df["state"] == "COMPLETE").sum() == 8  # every trial the sweep asked for, once
    others = df[df["state"] != "COMPLETE"]
    assert (others["state"] == "FAIL").all() and others["interrupted"].all()  # cut trials, not counted
    assert (df.loc[df["state"] == "COMPLETE", "budget"] == 10).all()


@pytest.mark.slow
def test_compare_runs_its_cells_through_tune_within_budget_total(tmp_path: Path, ray_env) -> None:
    suite = {
        "tasks": {"curve": {"target": "synthetic:curve", "budget": {"max": 300, "report_every": 100,
                                                                    "total": 1200}, "ref": [0.0, 1.0]}},
        "methods": {"random": "random", "asha": {"name": "asha"}},
        "seeds": 1,
        "test_seeds": 2,
        "executor": "tune",
        "out": str(tmp_path / "cmp"),
    }  # fmt: skip
    suite["tasks"]["curve"]["budget"]["min"] = 100
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    done = _run([*AUTORL, "compare", str(path)], ray_env)
    assert done.returncode == 0, done.stderr[-3000:]
    results = pd.read_csv(tmp_path / "cmp" / "results.csv")
    assert sorted(results["method"].unique()) == ["asha", "random"]
    for cell in (tmp_path / "cmp" / "cells" / "curve").glob("*/seed0-*"):
        assert (cell / "tune").is_dir()  # it ran through Tune
        trials = pd.read_csv(cell / "trials.csv")
        assert trials["budget"].sum() <= 1200  # budget.total holds, as on the other executors


@pytest.mark.slow
def test_ctrl_c_stops_an_executor_tune_sweep_with_its_results_and_resume_finishes(
    tmp_path: Path, ray_env
) -> None:
    import signal

    space = {"x": {"type": "float", "low": -1.0, "high": 1.0}}
    path = _sweep(tmp_path, "cut", executor="tune", target=toy("curve"), metric="score", space=space,
                  direction="maximize", budget={"max": 10, "report_every": 1}, args={"sleep": 0.3},
                  trials=12, workers=2)  # fmt: skip
    proc = subprocess.Popen(  # SIGINT as a terminal sends it (a background job would ignore it)
        [*AUTORL, "sweep", str(path), "--quiet"], env=ray_env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        _under_way(proc, tmp_path / "cut", 2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        _stop_session(proc.pid)
    assert proc.returncode == 130, err[-3000:]  # stopped, as on the other executors
    assert "interrupted: results so far are in" in err
    cut = pd.read_csv(tmp_path / "cut" / "trials.csv")
    assert 2 <= (cut["state"] == "COMPLETE").sum() < 12  # exported as it stood
    resumed = _run([*AUTORL, "sweep", str(path), "--resume", "--quiet"], ray_env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    df = pd.read_csv(tmp_path / "cut" / "trials.csv")
    assert (df["state"] == "COMPLETE").sum() == 12
    assert df.loc[df["state"] != "COMPLETE", "interrupted"].all()


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"method": {"name": "pbt", "population": 4}, "budget": {"max": 4, "report_every": 2}}, "method"),
        ({"race": True}, "race"),
        ({"storage": "sqlite:///shared.db"}, "storage"),
        ({"trial_timeout": 60}, "trial_timeout"),
        ({"space": {"x": {"type": "fixed", "value": 0.5}}}, "space"),
    ],
)
def test_executor_tune_refuses_what_it_cannot_run_in_one_line(
    make_config: Any, extra: dict, key: str
) -> None:
    cfg = make_config(executor="tune", target=toy("Toy"))
    cfg["space"] = {"x": {"type": "float", "low": -1.0, "high": 1.0, "mutable": True}}
    cfg.update(extra)
    if key == "method":
        del cfg["trials"]  # a population's size is its own
    with pytest.raises(ConfigError) as err:
        parse_sweep(cfg, "sweep.yaml")
    assert str(err.value).startswith(f"sweep.yaml: {key}: executor: tune cannot run this (")
    assert str(err.value).endswith("; use executor: ray") and "\n" not in str(err.value)
