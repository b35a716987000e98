"""What a population run leaves in its run directory: schedules, lineage, the best schedule, a plot.

``population_schedule.csv`` (one row per member and change), ``population_lineage.csv`` (every
exploit, change in place and failure), ``best_schedule.yaml`` (the best member's schedule, which
``autorl replay`` retrains from scratch), ``population_summary.json`` (steps, exploits, copy costs)
and ``plots/population_schedules.png``, whatever the population method. Run directories written
before these names (``pbt_*``) are read as well (:func:`read_summary`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from autorl.config import Sweep
from autorl.plotting import pyplot, save_figure
from autorl.targets import select_value

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class MemberLike(Protocol):
    index: int
    steps: int
    score: float | None
    failed: bool
    curve: dict[int, float]
    schedule: list[dict[str, Any]]


def member_value(sweep: Sweep, m: MemberLike) -> float | None:
    """A member's value as for any trial (``value.select`` over its evaluations); None if it failed."""
    values = [v for _, v in sorted(m.curve.items())]
    if m.failed or not values:
        return None
    return select_value(values, sweep.value_spec.select, sweep.value_spec.k, sweep.maximize)


def best_member(sweep: Sweep, members: Sequence[MemberLike]) -> MemberLike | None:
    scored = [(v, m) for m in members if (v := member_value(sweep, m)) is not None]
    if not scored:
        return None
    sign = 1.0 if sweep.maximize else -1.0
    return max(scored, key=lambda vm: sign * vm[0])[1]


SCHEDULE_FILE = "population_schedule.csv"
LINEAGE_FILE = "population_lineage.csv"
SUMMARY_FILE = "population_summary.json"
PLOT_FILE = "plots/population_schedules.png"
LEGACY_SUMMARY_FILE = "pbt_summary.json"  # what runs before the population_* names wrote


def read_summary(out: Path) -> dict[str, Any]:
    """A population run's summary (``{}`` where it has none, or an unreadable one)."""
    for name in (SUMMARY_FILE, LEGACY_SUMMARY_FILE):
        try:
            return dict(json.loads((out / name).read_text()))
        except (OSError, json.JSONDecodeError, TypeError, ValueError):
            continue
    return {}


def write_population_outputs(
    out: Path,
    sweep: Sweep,
    members: Sequence[MemberLike],
    lineage: list[dict[str, Any]],
    summary: dict[str, Any],
    plots: bool = True,
    best: int | None = None,
) -> None:
    """population_schedule.csv, population_lineage.csv, best_schedule.yaml, population_summary.json and,
    with ``plots``, plots/population_schedules.png. The best member is ``best`` where given (a race's
    incumbent), else the one with the best value."""
    keys = sorted({k for m in members for s in m.schedule for k in s if k != "step"})
    with open(out / SCHEDULE_FILE, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["member", "step", *keys])
        for m in members:
            for s in m.schedule:
                w.writerow([m.index, s["step"], *[s.get(k, "") for k in keys]])
    fields = ["step", "member", "event", "donor", "donor_score", "member_score", "failure", "error", *keys]
    with open(out / LINEAGE_FILE, "w", newline="") as f:
        dw = csv.DictWriter(f, fields, extrasaction="ignore")
        dw.writeheader()
        dw.writerows({**e, **e.get("config", {})} for e in lineage)  # the explored values as columns
    chosen = next((m for m in members if m.index == best), None) or best_member(sweep, members)
    if chosen is not None:
        (out / "best_schedule.yaml").write_text(
            yaml.safe_dump(
                {
                    "member": chosen.index,
                    "score": member_value(sweep, chosen),
                    "steps": chosen.steps,
                    "schedule": chosen.schedule,
                },
                sort_keys=False,
            )
        )
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    if plots:
        plot_schedules(members, keys, out / PLOT_FILE, sweep, chosen)


def plot_schedules(
    members: Sequence[MemberLike],
    keys: list[str],
    path: Path,
    sweep: Sweep,
    best: MemberLike | None,
) -> Path | None:
    """Write :func:`schedules_figure` to ``path``."""
    return save_figure(schedules_figure(members, keys, sweep, best), path)


def schedules_figure(
    members: Sequence[MemberLike], keys: list[str], sweep: Sweep, best: MemberLike | None
) -> Figure:
    """Each numeric hyperparameter over budget units, one line per member (the best one bold), plus the
    members' scores; log axes for log-scale parameters."""
    plt = pyplot()
    numeric = [
        k
        for k in keys
        if all(
            isinstance(s.get(k), int | float) and not isinstance(s.get(k), bool)
            for m in members
            for s in m.schedule
            if k in s
        )
        and len({s.get(k) for m in members for s in m.schedule}) > 1
    ]
    rows = len(numeric) + 1
    fig, axes = plt.subplots(rows, 1, figsize=(7, 2.1 * rows + 0.6), squeeze=False, sharex=True)
    colours = plt.get_cmap("tab10" if len(members) <= 10 else "tab20")
    for m in members:
        lw, alpha = (2.6, 1.0) if best is not None and m.index == best.index else (1.0, 0.65)
        colour = colours(m.index % colours.N)
        label = f"member {m.index}" + (" (best)" if best is not None and m.index == best.index else "")
        for ax, k in zip(axes[:-1, 0], numeric, strict=True):
            xs = [s["step"] for s in m.schedule] + [m.steps]
            ys = [s.get(k) for s in m.schedule] + [m.schedule[-1].get(k)]
            ax.step(xs, ys, where="post", color=colour, lw=lw, alpha=alpha)
        curve = sorted(m.curve.items())
        if curve:  # a member evaluated once (deciding on training returns) is a point, not a line
            marker = "o" if len(curve) < 2 else None
            axes[-1, 0].plot(
                [c[0] for c in curve], [c[1] for c in curve], color=colour, lw=lw, alpha=alpha, label=label,
                marker=marker,
            )  # fmt: skip
    for ax, k in zip(axes[:-1, 0], numeric, strict=True):
        ax.set_ylabel(k)
        p = sweep.space.get(k)
        if p is not None and p.transform is not None and p.transform.value == "pow2":
            ax.set_yscale("log", base=2)
        elif p is not None and p.log and p.transform is None:
            ax.set_yscale("log")
    axes[-1, 0].set_ylabel(sweep.metrics[0])
    axes[-1, 0].set_xlabel(f"budget per member ({sweep.info.unit})")
    if len(members) <= 16:
        axes[-1, 0].legend(fontsize=7, ncol=min(4, len(members)), loc="best")
    fig.suptitle(
        f"{sweep.study_name}: {sweep.method} schedules of {len(members)} members (bold: best)", fontsize=10
    )
    return fig
