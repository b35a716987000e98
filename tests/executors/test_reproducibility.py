"""What a seed promises (docs/config.md, "Reproducibility"): the same trials with one worker; the same
configurations with several workers for the samplers that do not learn from results; the same
continuation of the same interrupted run."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from autorl.api import sweep
from tests.conftest import toy


def _trials(out: Path) -> list[tuple[int, dict[str, Any], float | None]]:
    import pandas as pd

    df = pd.read_csv(out / "trials.csv").sort_values("trial")
    cols = [c for c in ("x", "y") if c in df]
    return [(int(r["trial"]), {c: r[c] for c in cols}, r["value"]) for _, r in df.iterrows()]


SPACE = {"x": {"type": "float", "low": -1.0, "high": 1.0}, "y": {"type": "int", "low": 0, "high": 3}}


def _config(make_config: Any, tmp_path: Path, name: str, **over: Any) -> dict[str, Any]:
    cfg = make_config(target=toy("noisy"), direction="minimize", out=str(tmp_path / name), **over)
    cfg["space"] = dict(SPACE)
    return cfg


def _run(
    make_config: Any, tmp_path: Path, name: str, **over: Any
) -> list[tuple[int, dict[str, Any], float | None]]:
    sweep(_config(make_config, tmp_path, name, **over), plots=False)
    return _trials(tmp_path / name)


@pytest.mark.parametrize("method", ["tpe", "cmaes", "gp"])
def test_one_worker_and_one_seed_give_the_same_trials(make_config: Any, tmp_path: Path, method: str) -> None:
    first = _run(make_config, tmp_path, "a", method=method, trials=8)
    second = _run(make_config, tmp_path, "b", method=method, trials=8)
    assert first == second
    assert len({str(c) for _, c, _ in first}) == 8  # and the sampler did propose 8 different points


def test_one_worker_and_one_seed_give_the_same_pruning(tmp_path: Path) -> None:
    def run(name: str) -> list[tuple[int, str, float]]:
        import pandas as pd

        sweep(
            {
                "target": "synthetic:curve",
                "args": {"noise": 0.05},
                "budget": {"max": 900, "min": 100, "report_every": 100},
                "method": {"name": "asha", "reduction_factor": 3},
                "trials": 12,
                "out": str(tmp_path / name),
            },
            plots=False,
        )
        df = pd.read_csv(tmp_path / name / "trials.csv").sort_values("trial")
        return list(zip(df["trial"], df["state"], df["budget"], strict=True))

    first = run("a")
    assert first == run("b")
    assert {s for _, s, _ in first} == {"COMPLETE", "PRUNED"}


@pytest.mark.parametrize("method", ["random", "qmc", {"name": "grid", "points": 3}])
def test_samplers_that_ignore_results_give_the_same_configs_on_two_workers(
    make_config: Any, tmp_path: Path, method: Any
) -> None:
    one = _run(make_config, tmp_path, "one", method=method, trials=6, workers=1)
    two = _run(make_config, tmp_path, "two", method=method, trials=6, workers=2)
    assert [(n, c) for n, c, _ in one] == [(n, c) for n, c, _ in two]
    # each trial's seed comes from the sweep's seed and its number: the noisy values agree too
    assert [v for _, _, v in one] == [v for _, _, v in two]


def test_the_same_interrupted_run_continues_the_same_way(make_config: Any, tmp_path: Path) -> None:
    """A resume draws from a fresh stream numbered after the trials so far: two copies of one run
    directory, resumed with the same config, end with the same trials (not those of a run that was
    never stopped: a resumed TPE has seen other results when it proposes)."""
    base = _run(make_config, tmp_path, "base", method="tpe", trials=4)
    assert len(base) == 4
    for copy in ("c1", "c2"):
        shutil.copytree(tmp_path / "base", tmp_path / copy)
        sweep(_config(make_config, tmp_path, copy, method="tpe", trials=8), resume=True, plots=False)
    c1, c2 = _trials(tmp_path / "c1"), _trials(tmp_path / "c2")
    assert c1 == c2 and len(c1) == 8 and c1[:4] == base
