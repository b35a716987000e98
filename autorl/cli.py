"""The ``autorl`` command line: sweep, validate, list, show, train, reeval."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from autorl.errors import ConfigError
from autorl.urls import STORAGE_ENV, redact

console = Console(stderr=True, soft_wrap=True)
out_console = Console(soft_wrap=True)  # long paths and commands stay on one line


def _fail(exc: Exception, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    sys.exit(code)


class _Group(click.Group):
    """Turns ConfigError anywhere below into one line on stderr and exit status 2 (no traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            _fail(exc)


@click.group(cls=_Group)
@click.version_option(package_name="autorl")
def main() -> None:
    """autorl: automated reinforcement learning on Optuna, Ray and stable-baselines3."""


_set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config field (dotted keys reach inside, e.g. budget.max=1000).",
)


class SweepProgress:
    """A live bar: trials done of total, best value so far, elapsed time and an estimate."""

    def __init__(self, total: int, maximize: bool) -> None:
        self.maximize = maximize
        self.progress = Progress(
            TextColumn("[bold]trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("best {task.fields[best]}"),
            TextColumn("{task.fields[states]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("sweep", total=total, best="-", states="")

    def __call__(self, trials: list[Any]) -> None:
        from autorl.results import counted

        values = [t.values[0] for t in trials if t.state.name == "COMPLETE"]
        best = (max(values) if self.maximize else min(values)) if values else None
        states: dict[str, int] = {}
        for t in trials:
            if t.state.name in ("PRUNED", "FAIL", "RUNNING"):
                states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
        self.progress.update(
            self.task,
            completed=counted(trials),
            best="-" if best is None else f"{best:.4g}",
            states=" ".join(f"{k} {v}" for k, v in sorted(states.items())),
        )


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _table(df: Any, metrics: list[str], maximize: bool, top: int) -> Table:
    """The best trials: number, value, budget, wall time and the configuration as key=value pairs."""
    col = "value" if "value" in df else f"value_{metrics[0]}"
    done = df[df["state"] == "COMPLETE"].sort_values(col, ascending=not maximize).head(top)
    table = Table(title=f"best {len(done)} trials by {metrics[0]}")
    params = [
        c
        for c in df.columns
        if c
        not in {"trial", "state", "budget", "wall_s", "seed", "error", "exit", "log", "member", "interrupted"}
        and not c.startswith(("value", "metric_"))
        and "_seed" not in c
    ]
    for c in ("trial", col, "budget", "wall_s"):
        table.add_column(c, no_wrap=True)
    table.add_column("config", overflow="fold")
    for _, row in done.iterrows():
        config = ", ".join(
            f"{c}={_fmt(row[c])}" for c in params if row.get(c) is not None and row[c] == row[c]
        )
        table.add_row(*(_fmt(row.get(c)) for c in ("trial", col, "budget", "wall_s")), config)
    return table


def _again(config: Path, overrides: tuple[str, ...], out: str | None, storage: str | None) -> str:
    """The command that resumes this sweep, with no storage password in it: a URL with one is left to
    ``$AUTORL_STORAGE`` (autorl never writes or prints a password)."""
    secret = storage is not None and redact(storage) != storage
    words = [
        "autorl sweep",
        shlex.quote(str(config)),
        *(f"--set {shlex.quote(o)}" for o in overrides),
        *([f"--out {shlex.quote(out)}"] if out else []),
        *([f"--storage {shlex.quote(storage)}"] if storage and not secret else []),
    ]
    return " ".join(words) + (f"  (with {STORAGE_ENV} set to the storage URL)" if secret else "")


def _resume(again: str) -> str:
    command, sep, note = again.partition("  (")
    return f"{command} --resume" + (f"  ({note}" if sep else "")


def _summary(df: Any) -> str:
    counts = df["state"].value_counts().to_dict() if len(df) else {}
    return ", ".join(f"{v} {k.lower()}" for k, v in sorted(counts.items()))


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@_set_option
@click.option("--out", help="Output directory (default: the config's `out`, else runs/<name>).")
@click.option("--resume", is_flag=True, help="Continue the sweep already in the output directory.")
@click.option("--storage", help="Optuna storage URL shared by several processes (e.g. postgresql://...).")
@click.option(
    "--executor", type=click.Choice(["embedded", "ray"]), help="Where trials run (default embedded)."
)
@click.option("--ray-address", envvar="RAY_ADDRESS", help="Ray cluster address (implies --executor ray).")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots at the end.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sweep(
    config: Path,
    overrides: tuple[str, ...],
    out: str | None,
    resume: bool,
    storage: str | None,
    executor: str | None,
    ray_address: str | None,
    no_plots: bool,
    quiet: bool,
) -> None:
    """Search the hyperparameters described in CONFIG."""
    from autorl.api import sweep as run_sweep
    from autorl.config import load_sweep

    extra = list(overrides)
    if storage:
        extra.append(f"storage={storage}")
    if ray_address:
        extra += [f"ray_address={ray_address}", "executor=ray"]
    elif executor:
        extra.append(f"executor={executor}")
    sw = load_sweep(config, extra, out)
    bar = None if quiet else SweepProgress(sw.config.trials, sw.directions[0] == "maximize")
    again = _again(config, overrides, out, storage)
    try:
        if bar:
            with bar.progress:
                result = run_sweep(sw, resume=resume, progress=bar, plots=not no_plots)
        else:
            result = run_sweep(sw, resume=resume, plots=not no_plots)
    except KeyboardInterrupt:
        console.print(f"\ninterrupted: results so far are in {sw.out}\nresume with: {_resume(again)}")
        sys.exit(130)
    df = result.trials
    out_console.print(_table(df, list(sw.metrics), sw.directions[0] == "maximize", 5))
    files = [f for f in ("trials.csv", "best.yaml", "plots/") if (sw.out / f).exists()]
    out_console.print(f"{len(df)} trials: {_summary(df)}. Results in {sw.out}/ ({', '.join(files)})")
    errors = df[df["error"].notna()] if "error" in df else df.iloc[:0]
    if len(errors):
        out_console.print(
            f"[yellow]{len(errors)} trial(s) failed; first error (trial {errors.iloc[0]['trial']}):[/] "
            f"{errors.iloc[0]['error']}",
            highlight=False,
        )
    dashboard = redact(sw.storage_url).removeprefix("journal:")
    retrain = f"retrain:  autorl train {sw.out}/best.yaml\n" if (sw.out / "best.yaml").exists() else ""
    if (sw.out / "best_schedule.yaml").exists():  # a population's result is a schedule
        retrain = f"replay:   autorl replay {sw.out}   (the best schedule, from scratch)\n"
    out_console.print(
        f"inspect:  autorl show {sw.out}\n{retrain}resume:   {_resume(again)}\n"
        f"dashboard: optuna-dashboard {dashboard}",
        highlight=False,
    )
    if result.best_value is None:
        sys.exit(1)


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@_set_option
def validate(config: Path, overrides: tuple[str, ...]) -> None:
    """Check CONFIG without running anything."""
    from autorl.config import load_sweep

    sw = load_sweep(config, list(overrides))
    runs = f"{sw.config.trials} trials of up to"
    if sw.spec.population:
        runs = f"a population of {sw.population.size} members, each up to"
    out_console.print(
        f"{config}: ok: {sw.config.target} with {sw.method}, {len(sw.space)} parameters, "
        f"{runs} {sw.config.budget.steps} {sw.info.unit}, output {sw.out}",
        highlight=False,
    )


@main.command(name="list")
@click.argument("what", type=click.Choice(["targets", "methods"]))
def list_(what: str) -> None:
    """Show the registered targets or methods."""
    if what == "targets":
        from autorl.targets import TARGETS

        registry: Any = TARGETS
    else:
        from autorl.methods import METHODS

        registry = METHODS
    table = Table(title=f"registered {what}")
    table.add_column("name")
    if what == "methods":
        table.add_column("kind")
    table.add_column("description")
    for entry in registry.entries():
        if what == "methods":
            spec = entry.extra.get("spec")
            table.add_row(entry.name, spec.kind.value if spec else "", entry.description)
        else:
            table.add_row(entry.name, entry.description)
    out_console.print(table)


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--top", default=5, show_default=True, help="How many of the best trials to list.")
def show(out_dir: Path, top: int) -> None:
    """Summarise a finished or running sweep in OUT_DIR."""
    from autorl.results import load_results
    from autorl.yamlio import load_yaml

    try:
        df = load_results(out_dir)
    except FileNotFoundError as exc:
        _fail(exc)
    cfg = load_yaml(out_dir / "config.yaml") if (out_dir / "config.yaml").is_file() else {}
    metrics = cfg.get("metric", ["value"])
    maximize = cfg.get("direction", ["maximize"])[0] == "maximize"
    method = cfg.get("method", "?")
    method = method.get("name", "?") if isinstance(method, dict) else method
    out_console.print(
        f"{out_dir}: {cfg.get('target', '?')} with {method}: {len(df)} of "
        f"{cfg.get('trials', '?')} trials ({_summary(df)})",
        highlight=False,
    )
    out_console.print(_table(df, metrics, maximize, top))


@main.command()
@click.argument("best", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--seeds", type=int, multiple=True, help="Seeds to train on (default: 3 fresh seeds).")
@click.option("--budget", type=int, help="Budget per run (default: the sweep's budget.max).")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the per-seed table here (CSV)."
)
def train(best: Path, seeds: tuple[int, ...], budget: int | None, out: Path | None) -> None:
    """Retrain the configuration in BEST (a best.yaml) and evaluate it on fresh seeds."""
    from autorl.evaluate import train_best

    df = train_best(best, list(seeds) or None, budget)
    out_console.print(df.to_string(index=False))
    out_console.print(df.drop(columns=["seed"]).agg(["mean", "std"]).to_string())
    if out:
        df.to_csv(out, index=False)


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seeds", type=int, multiple=True, help="Seeds to train on (default: 3 fresh seeds).")
@click.option("--budget", type=int, help="Budget per run (default: the best member's, as in the sweep).")
def replay(out_dir: Path, seeds: tuple[int, ...], budget: int | None) -> None:
    """Retrain one agent from scratch with the best schedule of a pbt/pb2 sweep in OUT_DIR."""
    from autorl.evaluate import replay_best

    try:
        df = replay_best(out_dir, list(seeds) or None, budget)
    except FileNotFoundError as exc:
        _fail(exc)
    out_console.print(df.to_string(index=False))
    out_console.print(f"written: {out_dir / 'replay.csv'}")


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--top", default=3, show_default=True, help="How many of the best configurations.")
@click.option("--seeds", "n_seeds", default=5, show_default=True, help="Fresh seeds per configuration.")
def reeval(out_dir: Path, top: int, n_seeds: int) -> None:
    """Re-evaluate the top configurations of a sweep on fresh seeds (writes reeval.csv)."""
    from autorl.evaluate import reevaluate

    try:
        df = reevaluate(out_dir, top, n_seeds)
    except FileNotFoundError as exc:
        _fail(exc)
    summary = out_dir / "reeval_summary.csv"
    out_console.print(summary.read_text() if summary.is_file() else df.to_string(index=False))


@main.command()
@click.argument("suite", type=click.Path(dir_okay=False, path_type=Path))
@_set_option
@click.option("--out", help="Output directory (default: the suite's `out`, else runs/compare-<name>).")
@click.option("--jobs", type=int, help="Cells to run at once (default: the suite's `jobs`, 1).")
@click.option("--dry-run", is_flag=True, help="Validate every cell and print the plan; run nothing.")
def compare(
    suite: Path, overrides: tuple[str, ...], out: str | None, jobs: int | None, dry_run: bool
) -> None:
    """Run the methods x tasks x seeds of SUITE under equal budgets and write a report."""
    from autorl.compare import load_suite, run_suite

    s = load_suite(suite, list(overrides), out)
    console.print(
        f"{len(s.cells)} cells ({len(s.config.tasks)} tasks, {len(s.config.methods)} methods) -> {s.out}"
    )
    if dry_run:
        for c in s.cells:
            out_console.print(f"{c.task} {c.method} seed {c.seed}: {c.sweep.config.target}", highlight=False)
        return
    _, _, report = run_suite(s, jobs)
    out_console.print(f"report: {report}")
    headline = next((line for line in report.read_text().splitlines() if line.startswith("**")), None)
    if headline:
        out_console.print(headline, highlight=False)


if __name__ == "__main__":
    main()
