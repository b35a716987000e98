import re
import subprocess
import sys

import pandas as pd
import yaml
from click.testing import CliRunner

from autorl.cli import main
from autorl.yamlio import load_yaml


def _write(tmp_path, cfg, name="sweep.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_bad_config_is_one_line_on_stderr_exit_2(make_config, tmp_path):
    path = _write(tmp_path, make_config(space={"x": {"type": "float", "low": 5, "high": 1}}))
    proc = subprocess.run(
        [sys.executable, "-m", "autorl.cli", "validate", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0] == f"error: {path}: space.x: low <= high must hold, but got (low=5, high=1)"


def test_validate_ok_and_set_overrides(make_config, tmp_path):
    path = _write(tmp_path, make_config())
    res = CliRunner().invoke(main, ["validate", str(path), "--set", "method=tpe", "--set", "trials=50"])
    assert res.exit_code == 0 and "with tpe" in res.output and "50 trials" in res.output
    res = CliRunner().invoke(main, ["validate", str(path), "--set", "method=bogus"])
    assert res.exit_code == 2


def test_validate_names_how_the_target_rounds_its_budget(make_config, tmp_path):
    """validate says what one trial may train: a plain function has no budget (it said "of up to 1
    steps"), SB3's PPO trains whole rollouts whose sizes it names."""
    cfg = make_config(trials=40)
    del cfg["budget"]
    path = _write(tmp_path, cfg)
    res = CliRunner().invoke(main, ["validate", str(path)])
    assert res.exit_code == 0 and "40 trials of a plain function (no budget)" in res.output, res.output
    res = CliRunner().invoke(main, ["validate", "examples/ppo_cartpole.yaml"])
    assert res.exit_code == 0, res.output
    assert (
        "16 trials of up to 20,000 env steps, in whole pieces of one rollout (n_steps x n_envs), 256 to "
        "2,048 env steps each: a trial may end up to 2,047 past its budget" in " ".join(res.output.split())
    )


def test_list(tmp_path):
    res = CliRunner().invoke(main, ["list", "targets"])
    assert "sb3:ppo" in res.output and "models:hashgrid" in res.output
    res = CliRunner().invoke(main, ["list", "methods"])
    assert "bohb" in res.output and "multi_fidelity" in res.output


def test_sweep_show_train_end_to_end(make_config, tmp_path):
    out = tmp_path / "cli_run"
    path = _write(tmp_path, make_config(trials=5))
    res = CliRunner().invoke(main, ["sweep", str(path), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "best 5 trials by value" in res.output and f"autorl show {out}" in res.output
    assert "--resume" in res.output
    df = pd.read_csv(out / "trials.csv")
    assert {"trial", "state", "value", "budget", "wall_s", "x", "y"} <= set(df.columns) and len(df) == 5
    for f in ("config.yaml", "space.yaml", "run.json", "curves.csv", "best.yaml", "plots/history.png"):
        assert (out / f).is_file(), f
    best = load_yaml(out / "best.yaml")
    assert best["value"] == df["value"].min()
    res = CliRunner().invoke(main, ["show", str(out)])
    assert res.exit_code == 0 and "5 of 5 trials (5 complete)" in res.output
    res = CliRunner().invoke(main, ["train", str(out / "best.yaml"), "--seed", "1", "--seed", "2"])
    assert res.exit_code == 0, res.output
    assert f"{best['value']:.6g}"[:5] in res.output.replace(
        " ", ""
    )  # a deterministic function trains back to its value


def test_seeds_counts_fresh_seeds_and_seed_names_them_in_train_replay_and_reeval(make_config, tmp_path):
    """One meaning: ``--seeds N`` is how many fresh seeds, ``--seed S`` (repeatable) a seed number."""
    out = tmp_path / "run"
    assert CliRunner().invoke(main, ["sweep", str(_write(tmp_path, make_config(trials=2))), "--out", str(out),
                                     "--quiet", "--no-plots"]).exit_code == 0  # fmt: skip
    written = tmp_path / "seeds.csv"
    res = CliRunner().invoke(main, ["train", str(out / "best.yaml"), "--seeds", "2", "--out", str(written)])
    assert res.exit_code == 0, res.output
    seeds = pd.read_csv(written)["seed"].tolist()
    assert len(seeds) == 2 and min(seeds) >= 900_000_000  # two fresh seeds, not seed number 2
    res = CliRunner().invoke(main, ["train", str(out / "best.yaml"), "--seed", "7", "--out", str(written)])
    assert res.exit_code == 0 and pd.read_csv(written)["seed"].tolist() == [7]
    res = CliRunner().invoke(main, ["reeval", str(out), "--top", "1", "--seed", "4", "--seed", "5"])
    assert res.exit_code == 0 and pd.read_csv(out / "reeval.csv")["seed"].tolist() == [4, 5]
    for command in (["train", str(out / "best.yaml")], ["replay", str(out)], ["reeval", str(out)]):
        res = CliRunner().invoke(main, [*command, "--seeds", "2", "--seed", "1"])
        assert res.exit_code == 2 and "not both" in res.output, command


def test_reeval_retrains_the_top_configs_on_fresh_seeds(make_config, tmp_path):
    from tests.conftest import toy

    out = tmp_path / "noisy"
    cfg = make_config(
        target=toy("noisy"),
        direction="maximize",
        trials=4,
        out=str(out),
        space={"x": {"type": "float", "low": 0.0, "high": 1.0}},
    )
    assert (
        CliRunner().invoke(main, ["sweep", str(_write(tmp_path, cfg)), "--quiet", "--no-plots"]).exit_code
        == 0
    )
    res = CliRunner().invoke(main, ["reeval", str(out), "--top", "2", "--seeds", "3"])
    assert res.exit_code == 0, res.output
    runs = [line for line in res.output.splitlines() if line.startswith("run ")]
    assert len(runs) == 6 and all(re.match(r"run \d/6, trial \d+, seed 9\d+: value=", r) for r in runs), runs
    df = pd.read_csv(out / "reeval.csv")
    assert len(df) == 6 and df["seed"].nunique() == 3 and df["trial"].nunique() == 2
    assert df["seed"].min() >= 900_000_000  # seeds the sweep never used
    summary = pd.read_csv(out / "reeval_summary.csv")
    assert {"tuning_value", "mean", "std", "iqm"} <= set(summary.columns)


HEAVY = ("torch", "stable_baselines3", "scipy", "pandas", "matplotlib", "ray", "sklearn")


def test_help_list_and_validate_of_a_plain_function_import_no_heavy_package(tmp_path):
    """The first commands a user types start in a fraction of a second: none imports torch, SB3, scipy,
    pandas, matplotlib or Ray (benchmarks/startup.py prints their times)."""
    (tmp_path / "f.py").write_text("def f(config):\n    return config['x']\n")
    (tmp_path / "quad.yaml").write_text("target: f.py:f\nspace:\n  x: {type: float, low: 0.0, high: 1.0}\n")
    code = """
import sys
from click.testing import CliRunner
from autorl.cli import main
for args in (["--help"], ["list", "targets"], ["list", "methods"], ["validate", "quad.yaml"]):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, (args, result.output)
print(sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1:])))
"""
    done = subprocess.run([sys.executable, "-c", code, *HEAVY], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
