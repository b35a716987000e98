"""The run directory: a used one takes only the same sweep back, refused before anything is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from autorl.api import sweep
from autorl.errors import ConfigError
from tests.conftest import toy


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.suffix in (".yaml", ".json")}


@pytest.mark.parametrize(
    "change, named",
    [
        ({"target": toy("noisy")}, "target"),
        ({"args": {"extra": 1}}, "args"),
        ({"space": {"x": {"type": "float", "low": -2.0, "high": 1.0}}}, "space"),
        ({"method": "tpe"}, "method"),
        ({"metric": "other"}, "metric"),
        ({"direction": "maximize"}, "direction"),
        ({"budget": {"max": 2}}, "budget.max"),
        ({"seed": 1}, "seed"),
    ],
)
@pytest.mark.parametrize("resume", [False, True])
def test_a_different_sweep_into_a_used_directory_is_refused_and_nothing_is_overwritten(
    make_config: Any, change: dict[str, Any], named: str, resume: bool
) -> None:
    cfg = make_config(trials=2)
    out = sweep(cfg, plots=False).out
    before = _files(out)
    with pytest.raises(ConfigError, match=f"holds a different sweep: {named} ") as err:
        sweep({**cfg, **change}, plots=False, resume=resume)
    assert err.value.key == "out"
    assert _files(out) == before


def test_a_resume_may_extend_trials_workers_and_time(make_config: Any) -> None:
    cfg = make_config(trials=2)
    sweep(cfg, plots=False)
    df = sweep(
        {**cfg, "trials": 4, "workers": 2, "trial_timeout": "1m", "budget": {"max": 1, "time": "1h"}},
        plots=False,
        resume=True,
    ).trials
    assert len(df) == 4


def test_an_unrelated_non_empty_directory_is_refused(make_config: Any, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(ConfigError, match=r"is not empty and holds no autorl run \(thesis.tex\)"):
        sweep(make_config(out=str(out)), plots=False)
    assert (out / "thesis.tex").read_text() == "precious" and sorted(p.name for p in out.iterdir()) == [
        "thesis.tex"
    ]
    with pytest.raises(ConfigError, match="holds no autorl run"):
        sweep(make_config(out="/"), plots=False)


def test_a_tilde_is_expanded(make_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    result = sweep(make_config(out="~/runs/x", trials=1), plots=False)
    assert result.out == tmp_path / "runs" / "x" and (tmp_path / "runs" / "x" / "trials.csv").is_file()


def test_a_run_of_an_older_format_is_shown_but_not_resumed(make_config: Any, tmp_path: Path) -> None:
    cfg = make_config(trials=2)
    out = sweep(cfg, plots=False).out
    run = json.loads((out / "run.json").read_text())
    del run["format"]  # what autorl 0.1 wrote
    (out / "run.json").write_text(json.dumps(run))
    with pytest.raises(
        ConfigError, match=r"run format 1\); this autorl writes format 2 and cannot continue it"
    ):
        sweep(cfg, plots=False, resume=True)
    from autorl.results import load_results

    assert len(load_results(out)) == 2


def test_the_resolved_config_round_trips_so_an_unchanged_resume_is_accepted(
    make_config: Any, tmp_path: Path
) -> None:
    cfg = make_config(
        trials=2,
        space={
            "x": {"type": "float", "low": 1e-5, "high": 1.0, "log": True},
            "g": {"type": "float", "low": 0.9, "high": 0.9999, "transform": "one_minus", "log": True},
            "c": {"type": "categorical", "choices": [1, "a", None]},
        },
        budget={"max": 1, "total": 10},
        value={"select": "mean_last", "k": 2},
    )
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    sweep(path, plots=False)
    assert len(sweep(path, plots=False, resume=True).trials) == 2


def test_a_run_killed_while_writing_its_run_files_starts_again(
    make_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import autorl.results.rundir as rundir

    real = rundir.dump_yaml
    calls: list[Path] = []

    def killed_after_the_first_file(data: Any, path: Path) -> None:
        calls.append(path)
        real(data, path)
        if len(calls) == 1:
            raise KeyboardInterrupt("killed")  # as a kill between config.yaml and space.yaml

    for resume in (True, False):  # `--resume`, or the same command again: both take it up
        calls.clear()
        monkeypatch.setattr(rundir, "dump_yaml", killed_after_the_first_file)
        cfg = make_config(out=str(tmp_path / f"run-{resume}"), trials=2)
        with pytest.raises(KeyboardInterrupt):
            sweep(cfg, plots=False)
        out = tmp_path / f"run-{resume}"
        assert (out / "config.yaml").is_file() and not (out / "trials.csv").exists()
        (out / ".space.yaml.4242.tmp").write_text("half")  # an atomic write killed halfway
        monkeypatch.setattr(rundir, "dump_yaml", real)
        assert len(sweep(cfg, plots=False, resume=resume).trials) == 2
        assert "incomplete" not in json.loads((out / "run.json").read_text())
