"""What the plots show, read off their matplotlib figures before they are saved: every trial of a sweep
(a pruned one with a single report included), the best PBT member marked, no "pruned" note where nothing
prunes, and compare's overlapping methods and CI bands kept apart."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.colors import to_rgb
from matplotlib.lines import Line2D

from autorl.analysis import stats
from autorl.analysis.report import _anytime_figure
from autorl.config import Sweep, parse_sweep
from autorl.plotting import pyplot
from autorl.results.plots import curves_figure, history_figure, importances_figure
from autorl.results.population import best_member, schedules_figure


@pytest.fixture(autouse=True)
def _close_figures() -> Any:
    yield
    pyplot().close("all")


def _sweep(tmp_path: Path, method: str | dict[str, Any]) -> Sweep:
    """A sweep of the built-in synthetic target (parsing writes nothing; ``out`` is never created)."""
    cfg = {
        "target": "synthetic:curve",
        "budget": {"max": 27, "min": 3, "report_every": 3},
        "method": method,
        "out": str(tmp_path / "run"),
    }
    return parse_sweep(cfg, "s.yaml")


def _marked(line: Line2D) -> bool:
    return line.get_marker() not in (None, "", " ", "None") and line.get_markersize() > 0


def _visible(line: Line2D) -> bool:
    """Whether the line shows on the canvas: a segment needs two points, a lone point needs a marker."""
    return _marked(line) or (len(line.get_xdata()) > 1 and line.get_linestyle() not in ("None", ""))


def _grey(color: Any) -> bool:
    r, g, b = to_rgb(color)
    return r == g == b


# An ASHA sweep as issue reports saw it: most pruned trials stopped at the first rung (one report each).
ASHA_TRIALS = pd.DataFrame(
    {
        "trial": [0, 1, 2, 3, 4, 5],
        "state": ["COMPLETE", "PRUNED", "PRUNED", "PRUNED", "COMPLETE", "FAIL"],
        "value": [0.50, np.nan, np.nan, np.nan, 0.70, np.nan],
    }
)
ASHA_CURVES = pd.DataFrame(
    [
        (0, 3, 0.20),
        (0, 9, 0.35),
        (0, 27, 0.50),
        (1, 3, 0.91),  # pruned at the first rung, higher than any complete trial ever reached
        (2, 3, 0.12),
        (3, 3, 0.25),
        (3, 9, 0.30),
        (4, 3, 0.40),
        (4, 9, 0.55),
        (4, 27, 0.70),
    ],
    columns=["trial", "step", "value"],
)


def _lines_by_trial(ax: Any, curves: pd.DataFrame) -> dict[int, Line2D]:
    """Each trial's line, found by its data (every trial's values are distinct)."""
    found: dict[int, Line2D] = {}
    for trial, grp in curves.groupby("trial"):
        for line in ax.get_lines():
            if list(line.get_xdata()) == list(grp["step"]) and list(line.get_ydata()) == list(grp["value"]):
                found[int(trial)] = line
    return found


def test_curves_draw_every_trial_and_a_pruned_one_with_a_single_report_as_a_marker(tmp_path: Path) -> None:
    fig = curves_figure(ASHA_CURVES, ASHA_TRIALS, _sweep(tmp_path, "asha"))
    ax = fig.axes[0]
    lines = _lines_by_trial(ax, ASHA_CURVES)
    assert sorted(lines) == [0, 1, 2, 3, 4]
    assert len(ax.get_lines()) == 5
    invisible = [t for t, line in lines.items() if not _visible(line)]
    assert invisible == [], f"trials {invisible} leave nothing on the canvas"
    for t in (1, 2):  # a single report each: only a marker shows it
        assert _marked(lines[t]), f"pruned trial {t} with one report has no marker"
    pruned, complete = [lines[t] for t in (1, 2, 3)], [lines[t] for t in (0, 4)]
    assert all(_grey(line.get_color()) for line in pruned)
    assert not any(_grey(line.get_color()) for line in complete)
    # Pruned trials end where the others begin (the first rung): drawn on top, or they are hidden.
    assert min(line.get_zorder() for line in pruned) > max(line.get_zorder() for line in complete)
    assert "grey: pruned (3)" in ax.get_title()


def test_curves_name_the_best_trial_and_colour_the_others_by_their_value(tmp_path: Path) -> None:
    """The best trial stands out (bold, named in the legend); the others differ by colour as their
    values differ (every complete trial was the same blue)."""
    trials = pd.concat(
        [ASHA_TRIALS, pd.DataFrame({"trial": [6], "state": ["COMPLETE"], "value": [0.6]})], ignore_index=True
    )
    curves = pd.concat(
        [ASHA_CURVES, pd.DataFrame([(6, 3, 0.3), (6, 9, 0.5), (6, 27, 0.6)], columns=ASHA_CURVES.columns)]
    )
    fig = curves_figure(curves, trials, _sweep(tmp_path, "asha"))
    ax = fig.axes[0]
    lines = _lines_by_trial(ax, curves)
    widest = max(line.get_linewidth() for line in lines.values())
    assert [t for t, line in lines.items() if line.get_linewidth() == widest] == [4]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["best: trial 4, score 0.7"]
    assert to_rgb(lines[0].get_color()) != to_rgb(lines[6].get_color())
    assert len(fig.axes) == 2 and "its last report" in fig.axes[1].get_ylabel()  # the colour bar


def _study(values: list[float]) -> Any:
    import optuna

    study = optuna.create_study(direction="maximize")
    rng = np.random.default_rng(0)
    dist = {
        "x": optuna.distributions.FloatDistribution(-1.0, 1.0),
        "lr": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True),
    }
    for v in values:
        params = {"x": float(rng.uniform(-1, 1)), "lr": float(10 ** rng.uniform(-4, 0))}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dist, value=v))
    return study


def _texts(fig: Any) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in [ax.title, *ax.texts])


def test_importances_only_where_they_mean_something_else_a_note(tmp_path: Path) -> None:
    """fANOVA on 9 trials, on members that all scored 500, or on a population's final values: a note
    saying why there is no importance plot. With enough trials of differing values: the bars."""
    asha = _sweep(tmp_path, "asha")
    fig = importances_figure(_study([float(i) for i in range(9)]), asha)
    assert "no parameter importances" in _texts(fig) and "9 complete trials" in _texts(fig)
    assert not [p for ax in fig.axes for p in ax.patches]
    fig = importances_figure(_study([500.0] * 12), asha)
    assert "took 1 distinct value(s)" in _texts(fig)
    fig = importances_figure(_study([float(i) for i in range(12)]), _sweep(tmp_path, "pb2"))
    assert "population members change their hyperparameters" in _texts(fig)
    fig = importances_figure(_study([float(i % 5) for i in range(12)]), asha)
    assert "importances from 12 complete trials" in _texts(fig)
    assert len(fig.axes[0].patches) == 2  # one bar per searched parameter


def test_curves_title_notes_pruning_only_when_a_trial_was_pruned(tmp_path: Path) -> None:
    trials = pd.DataFrame({"trial": [0, 1], "state": ["COMPLETE", "COMPLETE"], "value": [0.5, 0.7]})
    curves = ASHA_CURVES[ASHA_CURVES["trial"].isin([0, 4])].replace({"trial": {4: 1}})
    fig = curves_figure(curves, trials, _sweep(tmp_path, {"name": "pb2", "population": 2}))
    title = fig.axes[0].get_title()
    assert "pruned" not in title and "grey" not in title
    assert "population members of 2 trials" in title


def _scatter_points(ax: Any) -> dict[str, list[tuple[float, float]]]:
    """The points of each scatter on ``ax``, by legend label."""
    return {
        c.get_label(): [tuple(map(float, p)) for p in c.get_offsets()]
        for c in ax.collections
        if isinstance(c, PathCollection)
    }


def test_history_shows_pruned_trials_at_their_last_report_and_failed_ones(tmp_path: Path) -> None:
    fig = history_figure(ASHA_TRIALS, _sweep(tmp_path, "asha"), ASHA_CURVES)
    ax = fig.axes[0]
    points = _scatter_points(ax)
    by_state = {label.split(" ")[0].rstrip(","): pts for label, pts in points.items()}
    assert sorted(by_state) == ["complete", "failed", "pruned"], points
    assert by_state["complete"] == [(0.0, 0.50), (4.0, 0.70)]
    assert by_state["pruned"] == [(1.0, 0.91), (2.0, 0.12), (3.0, 0.30)]
    assert by_state["failed"] == [(5.0, 0.12)]  # at the bottom: a failed trial has no value
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "pruned, last report (3)" in labels and "failed (1)" in labels
    # The best so far is over complete trials: a pruned trial's high first report is no result.
    (best,) = [line for line in ax.get_lines() if line.get_label() == "best so far"]
    assert max(best.get_ydata()) == pytest.approx(0.70)


@dataclass
class _Member:
    index: int
    steps: int
    curve: dict[int, float]
    schedule: list[dict[str, Any]]
    failed: bool = False
    score: float | None = None


def _members() -> list[_Member]:
    """Four PB2 members; the failed one reached the highest score, so the best is member 2."""
    finals = {0: 0.4, 1: 0.6, 2: 0.8, 3: 0.95}
    return [
        _Member(
            index=i,
            steps=30,
            curve={10: final / 2, 20: final * 0.8, 30: final},
            schedule=[
                {"step": 0, "lr": 10.0 ** -(i + 1), "x": 0.1},
                {"step": 10, "lr": 10.0 ** -(i + 2), "x": 0.1},
            ],
            failed=i == 3,
        )
        for i, final in finals.items()
    ]


def _schedules(tmp_path: Path) -> tuple[Any, _Member]:
    sweep = _sweep(tmp_path, {"name": "pb2", "population": 4})
    members = _members()
    best = best_member(sweep, members)
    assert best is not None and best.index == 2
    return schedules_figure(members, ["lr", "x"], sweep, best), best


def test_pbt_schedules_have_a_title_and_a_legend_naming_the_best_member(tmp_path: Path) -> None:
    fig, best = _schedules(tmp_path)
    suptitle = fig._suptitle  # Figure.get_suptitle is matplotlib 3.8+, the floor is 3.7
    title = suptitle.get_text() if suptitle is not None else ""
    assert "pb2 schedules of 4 members" in title and "best" in title
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert len(legends) == 1
    labels = [t.get_text() for t in legends[0].get_texts()]
    assert labels == ["member 0", "member 1", f"member {best.index} (best)", "member 3"]


def test_pbt_schedules_draw_the_best_member_bold_in_every_panel(tmp_path: Path) -> None:
    fig, best = _schedules(tmp_path)
    lr_ax, score_ax = fig.axes  # x never changes: no panel of its own
    assert lr_ax.get_ylabel() == "lr" and score_ax.get_ylabel() == "score"
    (bold,) = [line for line in score_ax.get_lines() if line.get_label() == f"member {best.index} (best)"]
    for ax in fig.axes:
        lines = ax.get_lines()
        assert len(lines) == 4
        widest = max(line.get_linewidth() for line in lines)
        thick = [line for line in lines if line.get_linewidth() == widest]
        assert len(thick) == 1, f"{ax.get_ylabel()}: {len(thick)} lines at the widest width"
        assert thick[0].get_color() == bold.get_color()
        assert widest > max(line.get_linewidth() for line in lines if line is not thick[0])


def _anytime() -> pd.DataFrame:
    """Incumbent traces of three methods on one task; ``random`` and ``tpe`` are identical."""
    rows = []
    for method, level in {"tpe": 0.8, "random": 0.8, "bo": 0.5}.items():
        for seed in range(3):
            for b in range(10, 101, 10):
                rows.append((method, "toy", seed, b, level * b / 100 + 0.01 * seed))
    curves = pd.DataFrame(rows, columns=["method", "task", "seed", "budget", "score"])
    return stats.anytime_curve(curves, reps=50, seed=0)


def test_anytime_methods_have_distinct_styles_and_light_edged_bands() -> None:
    tdf = _anytime()
    order = ["tpe", "random", "bo"]
    fig = _anytime_figure(tdf, tdf, "toy", order, "95%", "steps")  # both panels: budget and wall time
    assert len(fig.axes) == 2
    for ax in fig.axes:
        main = {line.get_label(): line for line in ax.get_lines() if line.get_label() in order}
        assert sorted(main) == sorted(order)
        styles = {m: (line.get_linestyle(), line.get_marker()) for m, line in main.items()}
        assert len(set(styles.values())) == len(order), f"methods share a style: {styles}"
        assert all(_marked(line) for line in main.values())
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(bands) == len(order)
        assert all(band.get_alpha() is not None and band.get_alpha() <= 0.15 for band in bands)
        for m, line in main.items():
            colour = to_rgb(line.get_color())
            edges = [e for e in ax.get_lines() if e is not line and to_rgb(e.get_color()) == colour]
            assert len(edges) == 2, f"{m}: its band has {len(edges)} edge lines"
            assert all(e.get_linewidth() < line.get_linewidth() for e in edges)
