"""The ``autorl`` command line: sweep, validate, list, show, train, reeval."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from autorl.errors import ConfigError
from autorl.urls import STORAGE_ENV, redact
from autorl.yamlio import load_yaml

if TYPE_CHECKING:
    from autorl.config import Sweep
    from autorl.results.status import SweepStatus

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
    """Progress of a sweep: a live bar on a terminal, else one line per finished trial or interval.

    Both show trials counted (member-intervals for a population) of the total, the best value, the
    states so far and an estimate of the time left from budget units spent per second.
    """

    def __init__(self, total: int, population: bool = False) -> None:
        self.live = console.is_terminal
        self.label = "member-intervals" if population else "trials"
        self.progress = Progress(
            TextColumn(f"[bold]{self.label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("best {task.fields[best]}"),
            TextColumn("{task.fields[states]}"),
            TimeElapsedColumn(),
            TextColumn("eta ~{task.fields[eta]}"),
            console=console,
            transient=False,
            disable=not self.live,
        )
        self.task = self.progress.add_task("sweep", total=total, best="-", states="", eta="-")

    def __call__(self, status: SweepStatus) -> None:
        from autorl.results.status import duration

        best = "-" if status.best is None else f"{status.best:.4g}"
        states = " ".join(f"{k} {v}" for k, v in sorted(status.states.items()) if v)
        eta = duration(status.eta)
        self.progress.update(
            self.task, completed=status.done, total=status.total, best=best, states=states, eta=eta
        )
        if not self.live and status.line:
            console.print(
                f"{status.line}  [{status.done}/{status.total} {self.label}, best {best}, "
                f"elapsed {duration(status.elapsed)}, eta ~{eta}]",
                highlight=False,
                soft_wrap=True,
            )


def _fmt(v: Any) -> str:
    """A table cell: large numbers in full with thousands separators (never ``2.048e+04``), others to
    4 significant digits."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.0f}" if 10_000 <= abs(v) < 1e15 else f"{v:.4g}"
    return f"{int(v):,}" if abs(v) >= 10_000 else str(int(v))


NOT_PARAMS = {
    "race_of",
    "race_block",
    "race_seeds",
    "race_mean",
    "incumbent",
    "_first",
    "trial",
    "state",
    "budget",
    "wall_s",
    "seed",
    "error",
    "failure",
    "exit",
    "log",
    "member",
    "interrupted",
}


def _race_line(best: dict[str, Any]) -> str:
    """The raced incumbent as one line: its mean, IQM and 95% CI on the race's seeds."""
    race = best.get("race")
    if not race:
        return f"incumbent: trial {best['trial']} (no race block finished: judged on its tuning seed)"
    lo, hi = race["ci95"]
    ci = f", 95% CI [{lo:.4g}, {hi:.4g}]" if lo == lo else ""  # nan with one seed
    return (
        f"incumbent: trial {best['trial']}, mean {race['mean']:.4g} (IQM {race['iqm']:.4g}{ci}) on "
        f"{len(race['values'])} race seeds; its tuning value {race['tuning_value']:.4g}; the race took "
        f"{race['raced_trials']} trials"
    )


def _table(df: Any, metrics: list[str], maximize: bool, top: int, searched: set[str] | None = None) -> Table:
    """The best trials: number, value, budget, wall time and the configuration as key=value pairs.

    ``searched`` names the columns of values on a searched scale (``one_minus_gamma``, ``log2_n``):
    the table shows the user's values only; trials.csv keeps both."""
    col = "value" if "value" in df else f"value_{metrics[0]}"
    done = df[df["state"] == "COMPLETE"]
    raced = "race_of" in df
    if raced:  # configurations, not the race blocks that re-ran them; the incumbent first
        done = done[done["race_of"].isna()]
        first = done["incumbent"].eq(True).astype(int) if "incumbent" in done else 0
        done = done.assign(_first=first).sort_values(["_first", col], ascending=[False, not maximize])
    else:
        done = done.sort_values(col, ascending=not maximize)
    done = done.head(top)
    first = " (the race's incumbent first)" if raced else ""
    table = Table(title=f"best {len(done)} {'configurations' if raced else 'trials'} by {metrics[0]}{first}")
    params = [
        c
        for c in df.columns
        if c not in NOT_PARAMS
        and c not in (searched or set())
        and not c.startswith(("value", "metric_"))
        and "_seed" not in c
    ]
    for c in ("trial", col, *(("race mean (seeds)",) if raced else ()), "budget", "wall_s"):
        table.add_column(c, no_wrap=True, justify="right")
    table.add_column("config", overflow="fold")
    for _, row in done.iterrows():
        config = ", ".join(
            f"{c}={_fmt(row[c])}" for c in params if row.get(c) is not None and row[c] == row[c]
        )
        wall = row.get("wall_s")
        cells = [_fmt(row.get("trial")), _fmt(row.get(col))]
        if raced:
            n = row.get("race_seeds")
            cells.append(f"{_fmt(row['race_mean'])} ({int(n)})" if n == n and n is not None else "")
        cells.append(_fmt(row.get("budget")))
        table.add_row(*cells, f"{wall:.2f}" if isinstance(wall, float) else _fmt(wall), config)
    return table


def _searched(space: Any) -> set[str]:
    """Search names of a space's transformed parameters (a SearchSpace or its YAML mapping)."""
    from autorl.space import SearchSpace

    sp = space if isinstance(space, SearchSpace) else SearchSpace.from_dict(space or {})
    return {p.search_name for p in sp.values() if p.transform is not None}


class _RunsBar:
    """A bar over training runs (one per seed), with the last run's value; silent off a terminal but
    for one line per run."""

    def __init__(self, total: int, metric: str) -> None:
        self.metric = metric
        self.progress = Progress(
            TextColumn("[bold]runs"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[last]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self.task = self.progress.add_task("runs", total=total, last="")
        self.done = 0

    def __enter__(self) -> _RunsBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def __call__(self, run: str, metrics: dict[str, float]) -> None:
        self.done += 1
        last = f"{run}: {self.metric}={_fmt(float(metrics.get(self.metric, float('nan'))))}"
        self.progress.update(self.task, advance=1, last=last)
        if not console.is_terminal:
            console.print(f"run {self.done}/{self.progress.tasks[0].total:g}, {last}", highlight=False)


def _seed_table(df: Any, metric: str, title: str) -> Table:
    """One row per seed (the metric, budget and wall time), then their mean and standard deviation."""
    table = Table(title=title)
    cols = [c for c in (metric, "budget", "wall_s") if c in df]
    for c in ("seed", *cols):
        table.add_column(c, justify="right")
    for _, row in df.iterrows():
        table.add_row(str(int(row["seed"])), *(_fmt(float(row[c])) for c in cols))
    if len(df) > 1:
        table.add_section()
        table.add_row("mean", *(_fmt(float(df[c].mean())) for c in cols))
        table.add_row("std", *(_fmt(float(df[c].std())) for c in cols))
    return table


def _metric_of(out_dir: Path) -> str:
    """The first metric of the sweep in ``out_dir`` (``value`` when its config is not there)."""
    cfg = load_yaml(out_dir / "config.yaml") if (out_dir / "config.yaml").is_file() else {}
    metric = cfg.get("metric") or "value"
    return str(metric[0] if isinstance(metric, list) else metric)


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


def _tracking_hints(sw: Sweep) -> str:
    """How to open the sweep's tracked runs (docs/tracking.md)."""
    from autorl.results.tracking import TB_DIR, TRACKING_DB

    cfg, lines = sw.config.tracking, []
    if cfg.tensorboard:
        lines.append(f"tensorboard: tensorboard --logdir {sw.out / TB_DIR}")
    if cfg.mlflow is True:
        lines.append(f"mlflow:   mlflow ui --backend-store-uri sqlite:///{(sw.out / TRACKING_DB).resolve()}")
    if list((sw.out / "wandb").glob("offline-run-*")):
        lines.append(f"wandb:    wandb sync {sw.out / 'wandb'}/offline-run-*   (offline runs)")
    return "".join("\n" + line for line in lines)


def _resume(again: str) -> str:
    command, sep, note = again.partition("  (")
    return f"{command} --resume" + (f"  ({note}" if sep else "")


def _summary(df: Any) -> str:
    """``6 complete, 2 fail (1 diverged, 1 died), 1 interrupted``: failures by kind; a trial the sweep's
    stop cut off is not a failure."""
    if not len(df):
        return "none"
    states = df["state"].str.lower()
    if "interrupted" in df:
        states = states.where(~df["interrupted"].astype(bool), "interrupted")
    counts = states.value_counts().to_dict()
    kinds = {}
    if "failure" in df:
        kinds = df.loc[states == "fail", "failure"].fillna("error").value_counts().to_dict()
    why = f" ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})" if kinds else ""
    return ", ".join(f"{v} {k}" + (why if k == "fail" else "") for k, v in sorted(counts.items()))


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
    from autorl.executors.process import warm_start, warm_start_file

    extra = list(overrides)
    if storage:
        extra.append(f"storage={storage}")
    if ray_address:
        extra += [f"ray_address={ray_address}", "executor=ray"]
    elif executor:
        extra.append(f"executor={executor}")
    warm_start_file(config, extra)  # the workers' imports begin before the sweep's own
    from autorl.api import sweep as run_sweep
    from autorl.config import load_sweep

    sw = load_sweep(config, extra, out, validated=warm_start)  # a refused config ends the spare at exit
    total = sw.population.size if sw.spec.population else sw.config.trials
    bar = None if quiet else SweepProgress(total, population=sw.spec.population)
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
    out_console.print(_table(df, list(sw.metrics), sw.maximize, 5, _searched(sw.space)))
    files = [f for f in ("trials.csv", "best.yaml", "plots/") if (sw.out / f).exists()]
    out_console.print(f"{len(df)} trials: {_summary(df)}. Results in {sw.out}/ ({', '.join(files)})")
    if sw.config.race is not None and (sw.out / "best.yaml").exists():
        out_console.print(_race_line(load_yaml(sw.out / "best.yaml")), highlight=False)
    errors = df[df["error"].notna()] if "error" in df else df.iloc[:0]
    if "interrupted" in errors:  # cut off by the sweep's stop (budget.time, Ctrl-C): not a failure
        errors = errors[~errors["interrupted"].astype(bool)]
    if len(errors):
        out_console.print(
            f"[yellow]{len(errors)} trial(s) failed; first error (trial {errors.iloc[0]['trial']}):[/] "
            f"{errors.iloc[0]['error']}",
            highlight=False,
        )
    dashboard = redact(sw.storage_url).removeprefix("journal:")
    retrain = f"retrain:  autorl train {sw.out}/best.yaml\n" if (sw.out / "best.yaml").exists() else ""
    if sw.spec.population and (sw.out / "best_schedule.yaml").exists():  # its result is a schedule
        retrain = f"replay:   autorl replay {sw.out}   (the best schedule, from scratch)\n"
    out_console.print(
        f"inspect:  autorl show {sw.out}\n{retrain}resume:   {_resume(again)}\n"
        f"dashboard: optuna-dashboard {dashboard}{_tracking_hints(sw)}",
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
    searched = sum(p.type.value != "fixed" for p in sw.space.values())
    what = f"{len(sw.space)} parameter{'s' if len(sw.space) != 1 else ''}" + (
        f" ({searched} searched)" if searched < len(sw.space) else ""
    )
    if not searched:
        what = f"{len(sw.space)} fixed values"
    out_console.print(
        f"{config}: ok: {sw.config.target} with {sw.method}, {what}, {_runs(sw)}, output {sw.out}",
        highlight=False,
    )


def _runs(sw: Any) -> str:
    """``16 trials of up to 20,000 env steps, in whole rollouts of 256 to 2,048 (...)``: what runs and how
    the target rounds its budget."""
    from autorl.targets import TARGETS, TargetKind, target_kind

    n = sw.config.trials
    if sw.spec.population:
        runs = f"a population of {sw.population.size} members"
    else:
        runs = f"{n} trial{'s' if n != 1 else ''}"
    if sw.config.budget.max is None and target_kind(TARGETS.get(sw.config.target)) is TargetKind.FUNCTION:
        return f"{runs} of a plain function (no budget)"
    unit = sw.info.unit.replace("_", " ")
    runs += f"{', each' if sw.spec.population else ''} of up to {sw.config.budget.steps:,} {unit}"
    low, high = sw.granularity
    if high > 1:
        sizes = f"{low:,}" if low == high else f"{low:,} to {high:,}"
        who = "a member" if sw.spec.population else "a trial"
        ends = (
            "every one trains exactly its budget (budget.exact)"
            if sw.config.budget.exact
            else f"{who} may end up to {high - 1:,} past its budget"
        )
        runs += f", in whole pieces of one {sw.info.granule}, {sizes} {unit} each: {ends}"
    return runs


@main.command(name="list")
@click.argument("what", type=click.Choice(["targets", "methods", "examples", "spaces"]))
def list_(what: str) -> None:
    """Show the registered targets or methods, or the shipped example sweeps or search spaces."""
    if what in ("examples", "spaces"):
        _list_files(what)
        return
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


def _list_files(what: str) -> None:
    """The shipped examples (``autorl sweep examples/NAME.yaml`` runs one from anywhere) or spaces
    (``space: sb3/ppo.yaml``), each with the first line of its comment."""
    from autorl.config import SPACES_DIR

    files = sorted(SPACES_DIR.glob("*/*.yaml"))
    files = [f for f in files if (f.parent.name == "examples") == (what == "examples")]
    table = Table(title=f"shipped {what} (in {SPACES_DIR})")
    table.add_column("name", no_wrap=True)
    table.add_column("about")
    for f in files:
        first = next(
            (line.lstrip("# ").strip() for line in f.read_text().splitlines() if line.startswith("#")), ""
        )
        table.add_row(str(f.relative_to(SPACES_DIR)), first)
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
    from autorl.methods import METHODS, method_spec

    counted = f"{len(df)} of {cfg.get('trials', '?')} trials"
    if method in METHODS and method_spec(method).population:  # one trial per member, no trial count
        blocks = int(df["race_of"].notna().sum()) if "race_of" in df else 0
        counted = f"{len(df) - blocks} members" + (f" and {blocks} race blocks" if blocks else "")
    out_console.print(
        f"{out_dir}: {cfg.get('target', '?')} with {method}: {counted} ({_summary(df)})", highlight=False
    )
    out_console.print(_table(df, metrics, maximize, top, _searched(cfg.get("space"))))


def _seed_options(fresh: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--seeds N`` (how many fresh seeds, the same meaning in train, replay and reeval) and ``--seed S``
    (repeatable: these seed numbers instead)."""

    def add(command: Callable[..., Any]) -> Callable[..., Any]:
        command = click.option(
            "--seed",
            "explicit_seeds",
            type=int,
            multiple=True,
            help="Train on this seed number instead of fresh seeds; repeat for several (--seed 7 --seed 8).",
        )(command)
        return click.option(
            "--seeds",
            "n_seeds",
            type=click.IntRange(min=1),
            help=f"How many fresh seeds (default {fresh}); --seed picks seed numbers instead.",
        )(command)

    return add


def _seeds(n_seeds: int | None, explicit: tuple[int, ...]) -> list[int] | None:
    """The explicit seeds, or None for fresh ones; giving both a count and numbers is refused."""
    if explicit and n_seeds is not None:
        raise click.UsageError("give --seeds N (fresh seeds) or --seed S (seed numbers), not both")
    return list(explicit) or None


@main.command()
@click.argument("best", type=click.Path(dir_okay=False, path_type=Path))
@_seed_options(fresh=3)
@click.option("--budget", type=int, help="Budget per run (default: the sweep's budget.max).")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the per-seed table here (CSV)."
)
@click.option(
    "--with",
    "with_target",
    metavar="NAME",
    help="Retrain with another implementation of the same algorithm (sb3: an engine:ppo result as SB3's "
    "PPO, every setting carried over; best.yaml's `with` section shows it).",
)
def train(
    best: Path,
    n_seeds: int | None,
    explicit_seeds: tuple[int, ...],
    budget: int | None,
    out: Path | None,
    with_target: str | None,
) -> None:
    """Retrain the configuration in BEST (a best.yaml) and evaluate it on fresh seeds."""
    from autorl.evaluate import fresh_seeds, train_best
    from autorl.yamlio import load_yaml

    data = load_yaml(best)
    metric = data.get("metric", "value") if isinstance(data, dict) else "value"
    metric = metric[0] if isinstance(metric, list) else metric
    runs = _seeds(n_seeds, explicit_seeds) or fresh_seeds(n_seeds or 3)
    with _RunsBar(len(runs), metric) as bar:
        df = train_best(best, runs, budget, on_seed=bar, with_target=with_target)
    out_console.print(_seed_table(df, metric, f"{best}: retrained on {len(df)} seed(s)"))
    if out:
        df.to_csv(out, index=False)


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@_seed_options(fresh=3)
@click.option("--budget", type=int, help="Budget per run (default: the best member's, as in the sweep).")
def replay(out_dir: Path, n_seeds: int | None, explicit_seeds: tuple[int, ...], budget: int | None) -> None:
    """Retrain one agent from scratch with the best schedule of a pbt/pb2 sweep in OUT_DIR."""
    from autorl.evaluate import fresh_seeds, replay_best

    metric = _metric_of(out_dir)
    runs = _seeds(n_seeds, explicit_seeds) or fresh_seeds(n_seeds or 3)
    try:
        with _RunsBar(len(runs), metric) as bar:
            df = replay_best(out_dir, runs, budget, on_seed=bar)
    except FileNotFoundError as exc:
        _fail(exc)
    out_console.print(_seed_table(df, metric, f"{out_dir}: the best schedule replayed from scratch"))
    out_console.print(f"written: {out_dir / 'replay.csv'}")


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--top", default=3, show_default=True, help="How many of the best configurations.")
@_seed_options(fresh=5)
def reeval(out_dir: Path, top: int, n_seeds: int | None, explicit_seeds: tuple[int, ...]) -> None:
    """Re-evaluate the top configurations of a sweep on fresh seeds (writes reeval.csv)."""
    from autorl.evaluate import reevaluate

    metric = _metric_of(out_dir)
    seeds = _seeds(n_seeds, explicit_seeds)
    n_seeds = len(seeds) if seeds else n_seeds or 5
    try:
        with _RunsBar(top * n_seeds, metric) as bar:
            df = reevaluate(out_dir, top, n_seeds, on_seed=bar, seeds=seeds)
    except FileNotFoundError as exc:
        _fail(exc)
    if not len(df):
        out_console.print(f"{out_dir}: no completed trial to re-evaluate")
        return
    table = Table(
        title=f"top {df['trial'].nunique()} configurations of {out_dir}, each on {n_seeds} "
        + ("fresh seeds" if seeds is None else f"seeds ({', '.join(map(str, seeds))})")
    )
    for c in ("trial", "tuning value", f"{metric} mean", "std", "IQM", "min", "max"):
        table.add_column(c, justify="right")
    for trial, grp in df.groupby("trial", sort=False):
        x = grp[metric]
        from autorl.targets import Aggregate

        table.add_row(
            str(trial),
            _fmt(float(grp["tuning_value"].iloc[0])),
            _fmt(float(x.mean())),
            _fmt(float(x.std())),
            _fmt(Aggregate.IQM(list(x))),
            _fmt(float(x.min())),
            _fmt(float(x.max())),
        )
    out_console.print(table)
    out_console.print(f"written: {out_dir / 'reeval.csv'}, {out_dir / 'reeval_summary.csv'}")


@main.command()
@click.argument("suite", type=click.Path(dir_okay=False, path_type=Path))
@_set_option
@click.option("--out", help="Output directory (default: the suite's `out`, else runs/compare-<name>).")
@click.option("--jobs", type=int, help="Cells to run at once (default: the suite's `jobs`, 1).")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print every cell, the budget it is charged and an estimate of the wall time; run no cell.",
)
@click.option(
    "--only",
    multiple=True,
    metavar="TASK",
    help="Run (or plan) only this task; repeat for several. A long suite runs in parts this way.",
)
@click.option(
    "--publish",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also copy the report to this markdown file, its plots to figures/<name>/ beside it.",
)
@click.option(
    "--calibrate/--no-calibrate",
    default=False,
    help="With --dry-run: also train each task briefly (minutes) to estimate cells nothing measured yet; "
    "by default the estimate comes from finished cells only and nothing trains.",
)
def compare(
    suite: Path,
    overrides: tuple[str, ...],
    out: str | None,
    jobs: int | None,
    dry_run: bool,
    only: tuple[str, ...],
    publish: Path | None,
    calibrate: bool,
) -> None:
    """Run the methods x tasks x seeds of SUITE under equal budgets and write a report."""
    from autorl.compare import load_suite, run_suite

    s = load_suite(suite, list(overrides), out, list(only))
    console.print(
        f"{len(s.cells)} cells ({len({c.task for c in s.cells})} tasks, "
        f"{len({c.method for c in s.cells})} methods) -> {s.out}"
    )
    if dry_run:
        _print_plan(s, jobs or s.config.jobs, calibrate)
        return
    progress = SuiteProgressBar(len(s.cells))
    with progress.progress:
        _, _, report = run_suite(s, jobs, progress)
    out_console.print(f"report: {report}")
    if publish is not None:
        import shlex
        import sys

        from autorl.compare import publish as publish_report

        command = "autorl " + shlex.join(sys.argv[1:])
        out_console.print(f"published: {publish_report(report, publish, command)}")
    headline = next((line for line in report.read_text().splitlines() if line.startswith("**")), None)
    if headline:
        out_console.print(headline, highlight=False)


class SuiteProgressBar:
    """Cells done of a comparison (cached ones included) and the time left: a bar on a terminal, else
    one line per cell."""

    def __init__(self, total: int) -> None:
        self.live = console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]cells"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[cached]}"),
            TimeElapsedColumn(),
            TextColumn("eta ~{task.fields[eta]}"),
            console=console,
            transient=False,
            disable=not self.live,
        )
        self.task = self.progress.add_task("compare", total=total, cached="", eta="-")

    def __call__(self, status: Any) -> None:
        from autorl.results.status import duration

        eta = duration(status.eta)
        cached = f"{status.cached} cached" if status.cached else ""
        self.progress.update(self.task, completed=status.done, cached=cached, eta=eta)
        if not self.live:
            console.print(
                f"{status.line}  [{status.done}/{status.total} cells, elapsed {duration(status.elapsed)}, "
                f"eta ~{eta}]",
                highlight=False,
                soft_wrap=True,
            )


def _print_plan(s: Any, jobs: int, calibrate: bool) -> None:
    """The dry run: one line per cell (task, method, seed, target, budget charged, estimated wall time),
    then the totals."""
    from autorl.compare import plan_suite
    from autorl.results.status import duration

    plans = plan_suite(s, calibrate, say=lambda m: console.print(m, highlight=False))
    for p in plans:
        c = p.cell
        charged = [
            f"{p.steps:,} {c.sweep.info.unit.replace('_', ' ')}" if p.steps else "",
            f"{duration(p.time)} wall" if p.time else "",
        ]
        est = "done" if p.done else f"~{duration(p.seconds)}"
        out_console.print(
            f"{c.task} {c.method} seed {c.seed}: {c.sweep.config.target}, "
            f"{' + '.join(x for x in charged if x)} + test {p.test_steps:,}, {est}",
            highlight=False,
        )
    left = [p.seconds for p in plans if not p.done]
    unknown = sum(x is None for x in left)
    total = sum(x for x in left if x is not None)
    done = sum(p.done for p in plans)
    source = "finished cells and short calibration runs" if calibrate else "finished cells (not calibrated)"
    if not left:
        out_console.print(f"{len(plans)} cells, all done: nothing left to run", highlight=False)
        return
    if unknown == len(left):
        estimate = "no estimate (nothing measured yet"
    else:
        estimate = f"~{duration(total / jobs)} (from {source}" + (
            f"; {unknown} cells with no estimate" if unknown else ""
        )
    if unknown and not calibrate:
        estimate += "; --calibrate trains each task briefly to estimate the rest"
    out_console.print(
        f"{len(plans)} cells, {done} done; estimated wall time of the rest with {jobs} job(s): {estimate})",
        highlight=False,
    )


if __name__ == "__main__":
    main()
