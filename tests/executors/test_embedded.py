"""The embedded executor: failures recorded, exact trial counts, resume after kill -9, shared storage."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from autorl.api import sweep
from autorl.errors import ConfigError
from autorl.results import make_storage
from tests.conftest import toy

AUTORL = [sys.executable, "-m", "autorl.cli"]


def test_raising_and_diverging_trials_fail_and_the_sweep_goes_on(make_config):
    r = sweep(
        make_config(
            target=toy("flaky"),
            metric="value",
            direction="maximize",
            trials=12,
            space={"x": {"type": "float", "low": -1.0, "high": 1.0}},
        ),
        plots=False,
    )
    df = r.trials
    assert len(df) == 12
    failed = df[df["state"] == "FAIL"]
    assert len(failed) >= 3 and (df["state"] == "COMPLETE").any()
    assert failed["error"].str.contains("boom: x < 0|diverged").all()
    assert ((failed["x"] < 0) | (failed["x"] > 0.8)).all()


def test_two_workers_run_exactly_the_trials(make_config):
    r = sweep(
        make_config(
            target=toy("slow"),
            trials=6,
            workers=2,
            direction="maximize",
            space={"x": {"type": "float", "low": 0.0, "high": 1.0}, "sleep": {"type": "fixed", "value": 0.2}},
        ),
        plots=False,
    )
    assert len(r.trials) == 6 and set(r.trials["state"]) == {"COMPLETE"}
    # Two workers overlap: the run took clearly less than six sequential trials.
    starts = [t.datetime_start for t in r.study.trials]
    ends = [t.datetime_complete for t in r.study.trials]
    overlap = sum(
        1 for i in range(6) for j in range(6) if i < j and starts[j] < ends[i] and starts[i] < ends[j]
    )
    assert overlap >= 2


def test_existing_sweep_needs_resume_and_resume_proposes_new_points(make_config):
    cfg = make_config(trials=3)
    sweep(cfg, plots=False)
    with pytest.raises(ConfigError, match=r"resume it \(--resume; resume=True in Python\)"):
        sweep(cfg, plots=False)
    r = sweep({**cfg, "trials": 6}, resume=True, plots=False)
    assert len(r.trials) == 6
    first, added = r.trials["x"][:3].tolist(), r.trials["x"][3:].tolist()
    assert not set(first) & set(added)  # the seeded sampler does not replay its first proposals


def test_resume_of_a_directory_without_a_sweep_is_refused_and_creates_nothing(make_config, tmp_path):
    """A typo in --out must not restart the work silently."""
    cfg = make_config(out=str(tmp_path / "tyop"))
    with pytest.raises(ConfigError, match=r"out: .*tyop holds no sweep to resume: check --out"):
        sweep(cfg, resume=True, plots=False)
    assert not (tmp_path / "tyop").exists()
    res = subprocess.run(
        [*AUTORL, "sweep", str(_yaml(tmp_path, cfg)), "--resume", "--quiet"], capture_output=True, text=True
    )
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "holds no sweep to resume" in res.stderr


def _yaml(tmp_path, cfg):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_trial_that_spent_its_whole_budget_is_never_pruned(make_config):
    cfg = make_config(
        target=toy("curve"),
        metric="score",
        direction="maximize",
        method="asha",
        trials=15,
        budget={"max": 9, "min": 1, "report_every": 1},
        space={"x": {"type": "float", "low": -1.0, "high": 1.0}},
    )
    df = sweep(cfg, plots=False).trials
    assert not ((df["state"] == "PRUNED") & (df["budget"] >= 9)).any()
    assert (df["state"] == "PRUNED").any()


def _write(tmp_path: Path, cfg: dict) -> Path:
    p = tmp_path / "slow.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def _starts(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


def _wait_for(cond, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def kill_sweep_when(path: Path, env: dict[str, str], cond) -> None:
    """Run ``autorl sweep path`` and kill -9 its whole process group once ``cond()`` holds."""
    proc = subprocess.Popen(
        [*AUTORL, "sweep", str(path), "--quiet", "--no-plots"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _wait_for(cond)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: nothing survives
    proc.wait()


def resume_sweep(path: Path, env: dict[str, str]) -> None:
    """``autorl sweep path --resume``, which must succeed."""
    done = subprocess.run(
        [*AUTORL, "sweep", str(path), "--resume", "--quiet", "--no-plots"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])  # 2: 5 s, slow
def test_kill_9_then_resume_redoes_only_the_interrupted_trials(make_config, tmp_path, workers):
    log = tmp_path / "starts.jsonl"
    cfg = make_config(
        target=toy("slow"),
        trials=8,
        workers=workers,
        direction="maximize",
        space={"x": {"type": "float", "low": 0.0, "high": 1.0}, "sleep": {"type": "fixed", "value": 0.6}},
    )
    path = _write(tmp_path, cfg)
    env = {**os.environ, "TOY_LOG": str(log)}
    kill_sweep_when(path, env, lambda: len(_starts(log)) >= 3 + workers)
    storage = make_storage(f"journal:{tmp_path / 'run' / 'study.log'}")
    before = optuna.load_study(study_name="slow", storage=storage).get_trials()
    complete_before = {t.number for t in before if t.state.name == "COMPLETE"}
    running = [t for t in before if t.state.name == "RUNNING"]
    assert running, "the kill should have caught a trial mid-run"
    n_before = len(_starts(log))

    resume_sweep(path, env)
    after = optuna.load_study(study_name="slow", storage=storage).get_trials()
    counted = [t for t in after if t.state.name == "COMPLETE"]
    assert len(counted) == 8
    restarted = _starts(log)[n_before:]
    assert not {s["number"] for s in restarted} & complete_before  # no completed trial ran again
    xs = {round(s["x"], 12) for s in restarted}
    for t in running:  # each interrupted config was queued and run again
        assert round(t.params["x"], 12) in xs
        assert next(a for a in after if a.number == t.number).state.name == "FAIL"


@pytest.mark.slow  # ~7 s: keeps the default run under 5 minutes
def test_two_processes_share_one_storage_and_lose_no_trial(make_config, tmp_path):
    log = tmp_path / "starts.jsonl"
    db = tmp_path / "shared.db"
    cfg = make_config(
        target=toy("slow"),
        trials=10,
        direction="maximize",
        name="shared",
        space={"x": {"type": "float", "low": 0.0, "high": 1.0}, "sleep": {"type": "fixed", "value": 0.3}},
    )
    env = {**os.environ, "TOY_LOG": str(log)}
    procs = []
    for i in range(2):
        path = _write(tmp_path, cfg).rename(tmp_path / f"p{i}.yaml")
        procs.append(
            subprocess.Popen(
                [
                    *AUTORL,
                    "sweep",
                    str(path),
                    "--storage",
                    f"sqlite:///{db}",
                    "--quiet",
                    "--no-plots",
                    "--out",
                    str(tmp_path / f"out{i}"),
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    trials = optuna.load_study(study_name="shared", storage=f"sqlite:///{db}").get_trials()
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert 10 <= len(trials) <= 11  # a race at the very end may add one
    assert len(_starts(log)) == len(trials)  # every trial that started was recorded
    assert len({t.number for t in trials}) == len(trials)


def test_ctrl_c_saves_results_and_prints_the_resume_command(make_config, tmp_path):
    log = tmp_path / "starts.jsonl"
    cfg = make_config(
        target=toy("slow"),
        trials=20,
        direction="maximize",
        space={"x": {"type": "float", "low": 0.0, "high": 1.0}, "sleep": {"type": "fixed", "value": 0.3}},
    )
    path = _write(tmp_path, cfg)
    proc = subprocess.Popen(
        [*AUTORL, "sweep", str(path), "--quiet", "--no-plots"],
        env={**os.environ, "TOY_LOG": str(log)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a shell's background job (pytest under `nohup ... &`) ignores SIGINT, and
        # its children inherit that, so the sweep would never see the Ctrl-C
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    _wait_for(lambda: len(_starts(log)) >= 3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "resume with: autorl sweep" in err and "--resume" in err
    assert (tmp_path / "run" / "trials.csv").is_file()


SCRIPT = """
import gymnasium as gym
import numpy as np
from autorl.api import sweep
from autorl.targets import register_target


class Coin(gym.Env):
    observation_space = gym.spaces.Box(0.0, 1.0, (1,))
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        return np.ones(1, np.float32), float(action), True, False, {}


def f(config):
    env = gym.make("Script/Coin-v0")
    env.reset(seed=0)
    return env.step(1)[1] - (config["x"] - 0.3) ** 2


gym.register("Script/Coin-v0", entry_point=Coin)
register_target("script:coin", f, "defined in this script", direction="maximize")
result = sweep({"target": "script:coin", "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
                "method": "random", "trials": 6, "workers": 2}, out="run", plots=False)
print(sorted(set(result.trials["state"])))
"""


def test_a_script_without_a_main_guard_hands_its_registrations_to_the_workers(tmp_path):
    """A target and a gymnasium env defined and registered in the calling script, which has no
    ``if __name__ == "__main__"``: the workers do not run the script again, they take over its
    registrations, and every trial completes."""
    (tmp_path / "script.py").write_text(SCRIPT)
    res = subprocess.run(
        [sys.executable, "script.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().splitlines()[-1] == "['COMPLETE']", res.stdout + res.stderr[-3000:]


def test_registrations_of_importable_objects_travel_as_references(monkeypatch):
    """A worker imports a registered object's module only when the object is used: an importable
    target or gymnasium entry point travels as "module:qualname" (a test module registering an env
    made every worker import torch at start), and only what was registered at run time travels (the
    built-in entries made every worker import the engine's registries, and torch)."""
    import pickle

    import gymnasium as gym

    from autorl.executors.carry import registrations
    from autorl.targets import TARGETS, register_target
    from tests import toy_targets

    monkeypatch.setattr(TARGETS, "_entries", dict(TARGETS._entries))
    register_target("test:quad", toy_targets.quad)
    monkeypatch.setitem(
        gym.envs.registration.registry,
        "Test/Toy-v0",
        gym.envs.registration.EnvSpec("Test/Toy-v0", entry_point=toy_targets.Toy),
    )
    entries, envs = pickle.loads(registrations())
    (quad,) = entries["autorl.targets.base:TARGETS"]  # what the run added, not the built-in targets
    assert quad.name == "test:quad" and quad.target == "tests.toy_targets:quad"
    assert "autorl.methods.base:METHODS" not in entries  # nothing added there: nothing to carry
    assert not [s for s in envs if s.id == "CartPole-v1"]  # gymnasium's own envs stay at home
    (toy,) = [s for s in envs if s.id == "Test/Toy-v0"]
    assert toy.entry_point == "tests.toy_targets:Toy"


@pytest.mark.parametrize("workers", [1, 2])
def test_the_workers_start_before_the_config_is_resolved_and_the_pool_takes_them(
    make_config, monkeypatch, workers
):
    """The workers' imports overlap the orchestrator's config resolution: one spare worker per worker
    exists when the target is resolved, importing the target's module, and the pool runs the trials on
    them."""
    from autorl import config as config_module
    from autorl.executors import process

    seen: dict[str, list] = {"warm": [], "spares while resolving": [], "taken": []}
    resolve, take, start = config_module._resolve, process.take_spare, process.prestart

    def resolving(*args, **kwargs):
        seen["spares while resolving"].append(len(process._SPARES))
        return resolve(*args, **kwargs)

    def prestarting(warm=()):
        seen["warm"].append(list(warm))
        start(warm)

    def taking():
        seen["taken"].append((spare := take()) is not None)
        return spare

    monkeypatch.setattr(config_module, "_resolve", resolving)
    monkeypatch.setattr(process, "prestart", prestarting)
    monkeypatch.setattr("autorl.executors.workers.take_spare", taking)
    df = sweep(make_config(trials=3, workers=workers), plots=False).trials
    assert (df["state"] == "COMPLETE").all() and len(df) == 3
    assert seen["warm"] == [[]] * workers  # a file target: not warmed
    assert seen["spares while resolving"][0] == workers
    assert seen["taken"] == [True] * workers
    assert process._SPARES == []
    assert process._target_module("engine:ppo") == "autorl.engine.target"  # what its worker imports
    assert process._target_module("my_package.targets:train") == "my_package.targets"


def test_a_config_refused_after_the_worker_started_leaves_no_process(make_config, monkeypatch):
    from autorl.executors import process

    started = []
    start = process.prestart

    def prestarting(warm=()):
        start(warm)
        started.append(process._SPARES[-1][0])

    monkeypatch.setattr(process, "prestart", prestarting)
    with pytest.raises(ConfigError):
        sweep(make_config(method={"name": "random", "no_such_option": 1}), plots=False)  # refused resolving
    assert len(started) == 1 and started[0].exitcode is not None  # started, then ended, not left behind
    assert process._SPARES == []


_EARLY = """
import json, sys
from pathlib import Path
from autorl.executors import process
process.warm_start_file(Path(sys.argv[1]), json.loads(sys.argv[2]))
heavy = sorted(m for m in ("optuna", "torch", "autorl.config") if m in sys.modules)
pids = [p.pid for p, _ in process._SPARES]
process.discard_spares()
print(json.dumps({"spares": len(pids), "imported": heavy}))
"""


@pytest.mark.parametrize(
    ("config", "overrides", "spares"),
    [
        ({"target": "engine:ppo", "workers": 2, "method": {"name": "pbt", "population": 8}}, [], 2),
        ({"target": "engine:ppo", "method": {"name": "pbt", "population": 8}}, [], 1),
        ({"target": "engine:ppo", "workers": 2, "method": {"name": "pbt", "population": 1}}, [], 1),
        ({"target": "engine:ppo", "workers": 2}, ["workers=1"], 0),  # warm_start decides
        ({"target": "engine:ppo", "workers": 2}, ["method.population=1"], 0),
        ({"target": "engine:ppo", "workers": 2}, ["method.decide_on=train_return"], 2),
        ({"target": "engine:ppo"}, ["seed=3"], 1),
        ({"target": "engine:ppo", "executor": "ray"}, [], 0),
        ({"target": "engine:ppo", "trial_memory": "2G"}, [], 0),
        ({"target": "engine:ppo", "workers": 10_000}, [], 0),  # the config's checks will refuse it
        ({"workers": 2}, [], 0),
        ("target: [unclosed", [], 0),  # the config's own check reports it
        (None, [], 0),  # no such file
    ],
)
def test_the_command_line_starts_the_workers_from_the_file_before_importing_the_sweeps_machinery(
    tmp_path, config, overrides, spares
):
    """`autorl sweep` starts its workers first thing, from the YAML as written, before optuna, torch
    and autorl's config are imported; where the file or an override leaves the count in doubt it
    starts none, and the validated config's warm_start does as before."""
    path = tmp_path / "sweep.yaml"
    if config is not None:
        path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    if isinstance(config, dict) and config.get("workers", 1) > (os.cpu_count() or 1):
        spares = 0  # more workers than this machine's cores: the config's checks decide
    done = subprocess.run(
        [sys.executable, "-c", _EARLY, str(path), json.dumps(overrides)],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert json.loads(done.stdout) == {"spares": spares, "imported": []}


def test_a_shipped_example_given_by_its_name_starts_its_workers_early(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _EARLY, "examples/engine_pbt_cartpole.yaml", "[]"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert json.loads(done.stdout) == {"spares": 1, "imported": []}


def test_a_warm_entry_naming_a_target_stands_for_that_targets_module() -> None:
    from autorl.executors.process import TARGET, warm_module

    assert warm_module(TARGET + "engine:ppo") == "autorl.engine.target"
    assert warm_module("numpy") == "numpy"
    assert warm_module(TARGET + "tests/toy_targets.py:Toy") is None  # a file: nothing to warm


_CHURN = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from autorl.executors.process import keep_freed_memory
    assert keep_freed_memory()
def churn():
    a = np.ones(1 << 19, dtype=np.float32); b = a * 2; c = b + a  # three 2 MiB arrays, then freed
    return float(c[0])
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc")
def test_a_worker_keeps_freed_memory_instead_of_faulting_it_in_again():
    """With glibc's defaults, arrays of a few MiB freed together go back to the kernel and every new
    one faults its pages in again (what slowed a training step); a worker keeps them."""

    def faults(mode: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", _CHURN, mode], capture_output=True, text=True, check=True
        )
        return int(done.stdout)

    assert faults("default") > 50 * 512  # at least one 2 MiB array's pages per round
    assert faults("keep") < 512


def test_a_worker_never_imports_the_results_tables(make_config):
    """The tables (pandas, 0.3 s) are the orchestrator's: a worker's start-up is on the path to its
    first job, and records trials without them. In a fresh process: a spare worker left by another test
    here may have imported anything."""
    space = {"x": {"type": "float", "low": 0.0, "high": 1.0}, "module": {"type": "fixed", "value": "pandas"}}
    cfg = make_config(target=toy("loaded"), space=space, trials=3, workers=2)
    script = f"from autorl.api import sweep; print(sweep({cfg!r}, plots=False).trials['value'].tolist())"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[0.0, 0.0, 0.0]"
