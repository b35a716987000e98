"""What an attacker or an accident could do with autorl's inputs: a module planted in the working
directory, a YAML alias bomb, a checkpoint path that leaves the run directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from autorl.errors import ConfigError
from autorl.executors.trial import checkpoint_path
from autorl.yamlio import MAX_NODES, loads

AUTORL = str(Path(sys.executable).parent / "autorl")  # the console script, as a user runs it


def test_a_module_in_the_working_directory_is_never_imported_by_autorl(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    for name in ("optuna", "yaml", "rich", "autorl_helpers"):
        (tmp_path / f"{name}.py").write_text(f"open({str(marker)!r}, 'a').write({name!r})\n")
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump({"target": "synthetic:branin", "trials": 2, "method": "random"}))
    for args in (["list", "methods"], ["validate", str(cfg)], ["show", str(tmp_path)]):
        subprocess.run([AUTORL, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert not marker.exists(), marker.read_text()


def test_a_module_target_next_to_the_config_works_from_any_directory(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "my_target.py").write_text(
        "from helper import square\n\ndef f(config):\n    return square(config['x'])\n"
    )
    (project / "helper.py").write_text("def square(x):\n    return (x - 0.3) ** 2\n")
    cfg = {
        "target": "my_target:f",
        "space": {"x": {"type": "float", "low": -1.0, "high": 1.0}},
        "direction": "minimize",
        "trials": 3,
        "method": "random",
        "out": str(tmp_path / "run"),
    }
    (project / "s.yaml").write_text(yaml.safe_dump(cfg))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = subprocess.run(
        [AUTORL, "sweep", str(project / "s.yaml"), "--quiet", "--no-plots"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "3 complete" in res.stdout
    recorded = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["target"]
    assert recorded == f"{project / 'my_target.py'}:f"  # the run directory works from anywhere later


def test_a_yaml_alias_bomb_is_refused_before_it_expands() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefg", "bcdefgh", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
    bomb = "\n".join(lines) + "\n"
    assert len(bomb) < 1000
    with pytest.raises(ConfigError, match=rf"expands to \d{{9}} nodes .* at most {MAX_NODES}"):
        loads(bomb, "bomb.yaml")
    assert loads("a: &a [1, 2]\nb: *a\n", "ok.yaml") == {"a": [1, 2], "b": [1, 2]}  # aliases still work


def test_a_yaml_document_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("x: " + "a" * 2_000_000 + "\n")
    from autorl.yamlio import load_yaml

    with pytest.raises(ConfigError, match="at most 1000000 bytes"):
        load_yaml(big)


@pytest.mark.parametrize(
    "relative", ["../elsewhere", "/etc", "checkpoints/../../x", "checkpoints/../../../etc/passwd"]
)
def test_a_checkpoint_outside_the_run_directory_is_refused(tmp_path: Path, relative: str) -> None:
    with pytest.raises(ValueError, match="outside the run directory"):
        checkpoint_path(tmp_path / "run", relative)
    assert (
        checkpoint_path(tmp_path / "run", "checkpoints/member0/40")
        == (tmp_path / "run" / "checkpoints" / "member0" / "40").resolve()
    )


def test_a_symlink_out_of_the_run_directory_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run" / "checkpoints"
    run.mkdir(parents=True)
    (run / "member0").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="outside the run directory"):
        checkpoint_path(tmp_path / "run", "checkpoints/member0/x")
