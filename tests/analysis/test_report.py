"""Tests of autorl.analysis.report: files written, ranking order and normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autorl.analysis import aggregate_table, normalize_frame, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TASKS = {"CartPole-v1": (0.0, 500.0), "Pendulum/v1": (-1500.0, 0.0), "toy": (0.0, 1.0)}


def _results(levels: dict[str, float], runs: int = 5, seed: int = 0) -> pd.DataFrame:
    """One score per (method, task, seed) at ``level`` of each task's reference range, plus small noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for method, level in levels.items():
        for task, (lo, hi) in TASKS.items():
            for s in range(runs):
                rows.append((method, task, s, lo + (hi - lo) * (level + rng.normal(0, 0.02))))
    return pd.DataFrame(rows, columns=["method", "task", "seed", "score"])


def _curves(levels: dict[str, float]) -> pd.DataFrame:
    rows = []
    for method, level in levels.items():
        for task in TASKS:
            for s in range(3):
                for b in range(10, 101, 10):
                    rows.append((method, task, s, b + s, level * b / 100))
    return pd.DataFrame(rows, columns=["method", "task", "seed", "budget", "score"])


def _ranking_rows(report: str) -> list[str]:
    section = report.split("## Ranking", 1)[1].split("##", 1)[0]
    return [
        line.split("|")[2].strip()
        for line in section.splitlines()
        if line.startswith("| ") and "Rank" not in line
    ]


# Inserted neither in rank nor in name order, so a correct ranking must come from the scores.
LEVELS = {"mid": 0.5, "low": 0.1, "high": 0.9}


def test_report_writes_all_files_and_ranks_separated_methods(tmp_path: Path) -> None:
    path = write_report(_results(LEVELS), _curves(LEVELS), tmp_path / "out", TASKS, "Demo", reps=200)
    out = tmp_path / "out"
    assert path == out / "report.md"
    pngs = ["aggregates.png", "profiles.png", "poi.png", "anytime_CartPole-v1.png", "anytime_Pendulum_v1.png"]
    for name in [*pngs, "anytime_toy.png"]:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, name
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Demo\n")
    assert _ranking_rows(text) == ["high", "mid", "low"]
    assert text.index("**high** ranks first") < text.index("## Ranking")
    for section in ("## Probability of improvement", "## Score distributions", "## Per task", "## Anytime"):
        assert section in text
    for png in pngs:
        assert f"({png})" in text

    agg = pd.read_csv(out / "aggregates.csv")
    assert list(dict.fromkeys(agg["method"])) == ["high", "mid", "low"]
    iqm = agg[agg["metric"] == "iqm"].set_index("method")
    assert iqm.loc["high", "point"] == pytest.approx(0.9, abs=0.03)
    assert iqm.loc["high", "low"] > iqm.loc["mid", "high"]
    gap = agg[agg["metric"] == "optimality_gap"].set_index("method")["point"]
    assert gap["high"] < gap["mid"] < gap["low"]


def test_report_results_csv_normalises_by_reference(tmp_path: Path) -> None:
    results = _results(LEVELS).assign(wall_s=1.0)
    write_report(results, None, tmp_path, TASKS, "Ref", reps=50)
    saved = pd.read_csv(tmp_path / "results.csv")
    assert "wall_s" in saved.columns
    lo = saved["task"].map(lambda t: TASKS[t][0])
    hi = saved["task"].map(lambda t: TASKS[t][1])
    np.testing.assert_allclose(saved["normalized"], (saved["score"] - lo) / (hi - lo))


def test_report_without_curves_or_rivals_skips_those_sections(tmp_path: Path) -> None:
    path = write_report(_results({"only": 0.4}), None, tmp_path, None, "Solo", reps=50)
    text = path.read_text(encoding="utf-8")
    assert "## Anytime" not in text and "## Probability of improvement" not in text
    assert not list(tmp_path.glob("anytime_*.png")) and not (tmp_path / "poi.png").exists()
    assert _ranking_rows(text) == ["only"]


def test_ranking_uses_iqm_not_mean(tmp_path: Path) -> None:
    # "spiky" has the higher mean thanks to one outlier run per task; its IQM is lower.
    rows = []
    for task in ("a", "b"):
        for s in range(8):
            rows.append(("steady", task, s, 0.5))
            rows.append(("spiky", task, s, 10.0 if s == 0 else 0.2))
    results = pd.DataFrame(rows, columns=["method", "task", "seed", "score"])
    ref = {"a": (0.0, 1.0), "b": (0.0, 1.0)}
    table = aggregate_table(results, ref, reps=100)
    means = table[table["metric"] == "mean"].set_index("method")["point"]
    assert means["spiky"] > means["steady"]
    text = write_report(results, None, tmp_path, ref, "IQM", reps=100).read_text(encoding="utf-8")
    assert _ranking_rows(text) == ["steady", "spiky"]


def test_normalize_frame_without_reference_uses_observed_range() -> None:
    normed, note = normalize_frame(_results(LEVELS), None)
    assert "observed" in note
    by_task = normed.groupby("task")["normalized"]
    np.testing.assert_allclose(by_task.min(), 0.0, atol=1e-12)
    np.testing.assert_allclose(by_task.max(), 1.0)


def test_normalize_frame_refuses_missing_reference() -> None:
    with pytest.raises(ValueError, match=r"lacks \['toy'\]"):
        normalize_frame(_results(LEVELS), {k: v for k, v in TASKS.items() if k != "toy"})


def test_report_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    results = _results(LEVELS, runs=4)
    write_report(results, None, tmp_path / "a", TASKS, "D", reps=100, seed=3)
    write_report(results, None, tmp_path / "b", TASKS, "D", reps=100, seed=3)
    assert (tmp_path / "a" / "report.md").read_text() == (tmp_path / "b" / "report.md").read_text()
    assert (tmp_path / "a" / "aggregates.csv").read_text() == (tmp_path / "b" / "aggregates.csv").read_text()
