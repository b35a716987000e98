"""The comparison's report: runs.csv, one report per group of tasks that share their methods, and
``--publish``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from autorl.compare.suite import Suite
from autorl.results import write_atomic
from autorl.results.status import duration


def write_reports(suite: Suite, payloads: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """runs.csv and the report (one per group of tasks that share their methods, and an index) from the
    cells' payloads; returns the runs, the anytime curves and the report's path."""
    from autorl.analysis import write_report

    rows = [p["row"] for p in payloads]
    curves = [
        {"method": p["row"]["method"], "task": p["row"]["task"], "seed": p["row"]["seed"], **c}
        for p in payloads
        for c in p["curve"]
    ]
    results = pd.DataFrame(rows)
    for col in ("tuning_score", "optimism"):
        if col not in results:  # no cell had an incumbent
            results[col] = float("nan")
    curves_df = pd.DataFrame(curves, columns=["method", "task", "seed", "budget", "time", "score"])
    results.to_csv(suite.out / "runs.csv", index=False)
    scored = results.dropna(subset=["score"])
    missing = len(results) - len(scored)
    if missing:  # a cell with no completed trial has no incumbent: it scores the task's worst reference
        worst = {c.task: (-1 if not c.maximize else 1) * c.ref[0] for c in suite.cells if c.ref}
        results["score"] = [
            s if pd.notna(s) else worst.get(t) for s, t in zip(results["score"], results["task"], strict=True)
        ]
        scored = results.dropna(subset=["score"])
    title = f"autorl compare: {suite.config.name or Path(suite.source).stem}"
    groups = _groups(suite)
    reports = []
    columns = [
        "method",
        "task",
        "seed",
        "score",
        "tuning_score",
        "optimism",
        "budget_used",
        "trials",
        "wall_s",
    ]
    for i, tasks in enumerate(groups):
        out = suite.out if len(groups) == 1 else suite.out / f"group{i + 1}"
        part = scored[scored["task"].isin(tasks)]
        part_curves = curves_df[curves_df["task"].isin(tasks)]
        reports.append(
            write_report(
                part[columns],
                part_curves if len(part_curves) else None,
                out,
                _refs(suite, tasks),
                title if len(groups) == 1 else f"{title}: {', '.join(tasks)}",
                notes=_budget_notes(suite, tasks, results),
                unit=units.pop() if len(units := {_unit(suite, t) for t in tasks}) == 1 else "budget",
            )
        )
    preface = _preface(suite)
    if len(groups) == 1:
        if preface:
            title_line, _, rest = reports[0].read_text(encoding="utf-8").partition("\n")
            write_atomic(reports[0], "\n".join([title_line, "", *preface]) + "\n" + rest)
        return results, curves_df, reports[0]
    index = suite.out / "report.md"
    total = float(results["wall_s"].sum())
    parts = [
        f"# {title}",
        "",
        *preface,
        f"{len(results)} cells, {duration(total)} (h:mm:ss) of cell wall time in all. Tasks that share a "
        "set of methods are compared together; each part has its own report:",
        "",
        *(
            f"- [{', '.join(tasks)}]({r.relative_to(suite.out)})"
            for tasks, r in zip(groups, reports, strict=True)
        ),
    ]
    for tasks, r in zip(groups, reports, strict=True):
        parts += ["", f"## {', '.join(tasks)}", "", *_nested(r, suite.out)]
    index.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return results, curves_df, index


def _preface(suite: Suite) -> list[str]:
    """The suite's own ``notes`` and the tasks a partial run (``--only``) leaves out of its report."""
    lines = [suite.config.notes.strip(), ""] if suite.config.notes else []
    ran = {c.task for c in suite.cells}
    if left := [t for t in suite.config.tasks if t not in ran]:
        lines += [f"Not in this report (tasks of the suite that this run left out): {', '.join(left)}.", ""]
    return lines


def _nested(report: Path, root: Path) -> list[str]:
    """A part's report inside the whole one: its title dropped, headings one level down, images and
    links relative to ``root``."""
    prefix = report.parent.relative_to(root).as_posix()
    lines = []
    for line in report.read_text(encoding="utf-8").splitlines()[1:]:
        if line.startswith("#"):
            line = "#" + line
        lines.append(re.sub(r"\]\((?!https?:|/)([^)]+)\)", lambda m: f"]({prefix}/{m.group(1)})", line))
    while lines and not lines[0].strip():
        lines.pop(0)
    return lines


def publish(report: Path, dest: Path, command: str | None = None) -> Path:
    """Copy a comparison's report to ``dest`` (a markdown file) with the images it shows, which go to
    ``figures/<dest's stem>/`` next to it; links are rewritten to match, and ``command`` (the one that
    regenerates it) is stated under the title. Returns ``dest``."""
    import shutil

    dest = Path(dest)
    figures = dest.parent / "figures" / dest.stem
    figures.mkdir(parents=True, exist_ok=True)
    root = report.parent

    def move(m: re.Match[str]) -> str:
        src = root / m.group(2)
        if not src.is_file():
            return m.group(0)
        name = m.group(2).replace("/", "_")
        shutil.copyfile(src, figures / name)
        return f"{m.group(1)}(figures/{dest.stem}/{name})"

    text = re.sub(r"(!\[[^\]]*\])\((?!https?:|/)([^)]+)\)", move, report.read_text(encoding="utf-8"))
    # A part's own report is inline in the whole one, and the run directory is not published: the link
    # to it becomes plain text.
    text = re.sub(r"\[([^\]]*)\]\((?!https?:|/|figures/)([^)#]+\.md)\)", r"\1", text)
    if command:
        title, _, rest = text.partition("\n")
        text = (
            f"{title}\n\nRegenerated by `{command}` (finished cells are read back from "
            f"`{root}`; a missing one is run).\n{rest}"
        )
    write_atomic(dest, text)
    return dest


def _budget_notes(suite: Suite, tasks: list[str], results: pd.DataFrame) -> list[str]:
    """What every method was charged on each task, and the compute the cells took."""

    lines = []
    for name in tasks:
        task = suite.config.tasks[name]
        b = task.budget
        charged = [
            f"{b.total:,} {_unit(suite, name)}" if b.total else "",
            f"{duration(b.time)} (h:mm:ss) of wall clock" if b.time else "",
        ]
        baselines = sorted({c.method for c in suite.cells if c.task == name and c.sweep.spec.baseline})
        lines.append(
            f"- `{name}` ({task.target}): every method is charged {' and '.join(x for x in charged if x)} "
            f"of tuning per seed, trials of at most {b.steps:,}"
            + (f"; the baselines ({', '.join(baselines)}) train once, at {b.steps:,}." if baselines else ".")
        )
    part = results[results["task"].isin(tasks)]
    kinds = [c for c in part.columns if c.startswith("failed_")]  # none in cells run before they were typed
    if kinds:
        sums = part.groupby("method")[kinds].sum()
        shown = [
            f"{method}: " + ", ".join(f"{int(n)} {k.removeprefix('failed_')}" for k, n in row.items() if n)
            for method, row in sums.iterrows()
            if row.sum()
        ]
        if shown:
            lines.append(f"- Failed trials over all seeds, by method and kind: {'; '.join(shown)}.")
    lines.append(
        f"- Compute: {duration(float(part['wall_s'].sum()))} of cell wall time ({len(part)} cells, tuning "
        f"{duration(float(part['tuning_s'].sum()))}, test retraining the rest)."
        if "tuning_s" in part
        else f"- Compute: {duration(float(part['wall_s'].sum()))} of cell wall time ({len(part)} cells)."
    )
    return lines


def _unit(suite: Suite, task: str) -> str:
    cell = next(c for c in suite.cells if c.task == task)
    return cell.sweep.info.unit.replace("_", " ")


def _groups(suite: Suite) -> list[list[str]]:
    """Tasks grouped by the set of methods run on them, in suite order."""
    by_methods: dict[frozenset[str], list[str]] = {}
    for c in suite.cells:
        methods = frozenset(x.method for x in suite.cells if x.task == c.task)
        tasks = by_methods.setdefault(methods, [])
        if c.task not in tasks:
            tasks.append(c.task)
    return list(by_methods.values())


def _refs(suite: Suite, tasks: list[str]) -> dict[str, tuple[float, float]] | None:
    """Reference (min, max) per task on the higher-is-better score scale, if every task has one."""
    refs = {}
    for c in suite.cells:
        if c.task not in tasks:
            continue
        if c.ref is None:
            return None
        worst, best = c.ref
        refs[c.task] = (worst, best) if c.maximize else (-worst, -best)
    return refs
