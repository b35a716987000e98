"""Every method has a shipped example sweep, and every example runs end to end as shipped, with the small
budget its own ``# smoke:`` line gives (run with ``-m slow``: about ten minutes)."""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from autorl.config import SPACES_DIR, load_sweep
from autorl.methods import METHODS

EXAMPLES = sorted((SPACES_DIR / "examples").glob("*.yaml"))
AUTORL = [sys.executable, "-m", "autorl.cli"]


def _smoke(path: Path) -> list[str]:
    line = next((x for x in path.read_text().splitlines() if x.startswith("# smoke:")), None)
    assert line is not None, f"{path.name} has no '# smoke:' line (the overrides of its end-to-end test)"
    return shlex.split(line.removeprefix("# smoke:"))


def test_every_method_has_an_example() -> None:
    used = set()
    for path in EXAMPLES:
        method = yaml.safe_load(path.read_text()).get("method", "tpe")
        used.add(method["name"] if isinstance(method, dict) else method)
    assert set(METHODS.names()) <= used, f"methods without an example: {sorted(set(METHODS.names()) - used)}"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_validates_with_and_without_its_smoke_budget(path: Path) -> None:
    load_sweep(path)
    words = _smoke(path)
    load_sweep(path, [value for flag, value in itertools.pairwise(words) if flag == "--set"])


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_runs_end_to_end(path: Path, tmp_path: Path) -> None:
    res = subprocess.run(
        [*AUTORL, "sweep", str(path), *_smoke(path), "--out", str(tmp_path / "run"), "--quiet", "--no-plots"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:] + res.stdout[-2000:]
    assert (tmp_path / "run" / "trials.csv").is_file() and (tmp_path / "run" / "best.yaml").is_file()


def test_the_getting_started_guide_shows_the_main_example_as_it_ships() -> None:
    guide = (Path(__file__).parents[1] / "docs" / "getting-started.md").read_text()
    shown = guide.split("The file, in full:\n\n```yaml\n", 1)[1].split("```", 1)[0]
    assert shown == (SPACES_DIR / "examples" / "ppo_cartpole.yaml").read_text()


def _readme_python_example(tmp_path: Path, workers: int) -> list[str]:
    """The README's target file and API snippet, written as files into ``tmp_path``; the command that
    runs the snippet as a script (with ``workers`` set in its config when not 1)."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    target = next(b for b in blocks if b.startswith("# my_target.py"))
    snippet = next(b for b in blocks if "autorl.api.sweep" in b)
    if workers != 1:
        more = snippet.replace('"trials": 20,', f'"trials": 20, "workers": {workers},')
        assert more != snippet, 'the README\'s snippet no longer says "trials": 20,'
        snippet = more
    (tmp_path / "my_target.py").write_text(target)
    (tmp_path / "api_example.py").write_text(snippet)
    return [sys.executable, "api_example.py"]


@pytest.mark.parametrize("workers", [1, 2])
def test_the_readmes_python_example_runs_as_a_script_and_a_second_run_names_the_python_fix(
    tmp_path: Path, workers: int
) -> None:
    """Saved as a file and run as ``python api_example.py`` (no ``__main__`` guard): the worker
    processes never re-run the script, so every trial completes."""
    cmd = _readme_python_example(tmp_path, workers)
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    trials = pd.read_csv(tmp_path / "runs" / "sweep" / "trials.csv")
    assert len(trials) == 20 and set(trials["state"]) == {"COMPLETE"}, trials
    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode != 0 and re.search(r"resume=True in Python.*out=DIR", again.stderr), again.stderr


def test_the_readmes_tour_validates_and_only_resumes_or_reads_what_it_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every sweep of the README's tour is valid as written (on the config it says to save), and every
    ``--resume``, ``show``, ``train``, ``reeval``, ``replay`` and dashboard line reads a run directory
    an earlier line of the tour wrote (the tour's ``--resume`` pointed at another example's directory)."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    tour = readme.split("## A short tour", 1)[1].split("\n## ", 1)[0]
    config = tour.split("```yaml\n", 1)[1].split("```", 1)[0]
    commands = tour.split("```bash\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_sweep.yaml").write_text(config)
    made: set[Path] = set()
    for line in commands.splitlines():
        words = shlex.split(line.split(" #", 1)[0])
        if words[:2] in (["autorl", "sweep"], ["autorl", "validate"]):
            sets = [value for flag, value in itertools.pairwise(words) if flag == "--set"]
            outs = [value for flag, value in itertools.pairwise(words) if flag == "--out"]
            sw = load_sweep(words[2], sets, outs[0] if outs else None)
            if "--resume" in words:
                assert sw.out in made, f"{line!r} resumes {sw.out}, which no earlier line wrote"
            if words[1] == "sweep":
                made.add(sw.out)
        elif words[:2] in (["autorl", "show"], ["autorl", "reeval"], ["autorl", "replay"]):
            assert Path(words[2]) in made, line
        elif words[:2] == ["autorl", "train"] or words[0] == "optuna-dashboard":
            assert Path(words[-1]).parent in made, line
    assert Path("runs/my_sweep") in made and Path("runs/try2") in made
