"""Population-based training (PBT) and PB2 as sweep methods ``pbt`` and ``pb2``, run embedded.

PBT: Jaderberg et al. 2017, "Population Based Training of Neural Networks" (arXiv:1711.09846).
PB2: Parker-Holder et al. 2020, "Provably Efficient Online Hyperparameter Optimization with
Population-Based Bandits" (NeurIPS 2020). Members are trained round-robin in one process: Ray's
per-trial overhead (~1 s) would dominate the short intervals used here.

Population size is the method option ``population`` (default 8); ``trials`` is ignored. The interval
(env steps between exploits) is option ``interval`` or else ``budget.report_every``; budget.max is the
per-member budget.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from autorl.methods.base import MethodKind, Plan, register_method
from autorl.space.base import Param, ParamType, SearchSpace

STATE_FILE = "pbt_state.json"


@dataclass
class PBTOptions:
    """Options shared by PBT and PB2 (papers' defaults)."""

    population: int = 8
    interval: int | None = None
    quantile: float = 0.25
    resample_probability: float = 0.25
    factors: tuple[float, float] = (0.8, 1.2)
    pb2: bool = False
    exploit: bool = True  # False: the same population with fixed hyperparameters (the baseline)

    def check(self) -> None:
        if not isinstance(self.population, int) or self.population < 2:
            raise ValueError(f"population must be an int >= 2, got {self.population!r}")
        if self.interval is not None and (not isinstance(self.interval, int) or self.interval < 1):
            raise ValueError(f"interval must be a positive int (env steps), got {self.interval!r}")
        if not 0 < self.quantile <= 0.5:
            raise ValueError(f"quantile must be in (0, 0.5], got {self.quantile!r}")
        if not 0 <= self.resample_probability <= 1:
            raise ValueError(f"resample_probability must be in [0, 1], got {self.resample_probability!r}")
        if len(self.factors) != 2 or min(self.factors) <= 0:
            raise ValueError(f"factors must be two positive numbers, got {self.factors!r}")


@dataclass
class Member:
    """One member's persisted state (everything needed to resume)."""

    index: int
    config: dict[str, Any]
    steps: int = 0
    score: float | None = None
    last_delta: float = 0.0
    checkpoint: str | None = None
    curve: dict[int, float] = field(default_factory=dict)
    schedule: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0  # wall time this member spent training


def _sample(p: Param, rng: np.random.Generator, initial: bool = False) -> Any:
    """A value of ``p``; ``initial`` draws from ``p.init`` (the first population) where it is set."""
    if p.type is ParamType.FIXED:
        return p.value  # type: ignore[attr-defined]
    if p.type is ParamType.CATEGORICAL:
        return p.choices[int(rng.integers(len(p.choices)))]  # type: ignore[attr-defined]
    lo, hi = p.init if initial and p.init else (float(p.low), float(p.high))  # type: ignore[arg-type]
    x = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if p.log else float(rng.uniform(lo, hi))
    return _clip(p, x)


def _clip(p: Param, x: float) -> Any:
    x = min(max(x, float(p.low)), float(p.high))  # type: ignore[arg-type]
    if p.step:
        x = float(p.low) + round((x - float(p.low)) / p.step) * p.step  # type: ignore[arg-type]
    return round(x) if p.type is ParamType.INT else x


def sample_config(space: SearchSpace, rng: np.random.Generator) -> dict[str, Any]:
    """Draw an initial member's config (from ``init`` ranges where set; in the user's units)."""
    out: dict[str, Any] = {}
    for p in space.values():
        if p.active(out):
            out[p.name] = _sample(p, rng, initial=True)
    return out


def explore(
    space: SearchSpace, config: dict[str, Any], rng: np.random.Generator, opts: PBTOptions
) -> dict[str, Any]:
    """PBT's explore: resample a mutable param with probability, else multiply by a factor."""
    new = dict(config)
    for p in space.values():
        if not p.mutable or p.name not in new or p.type is ParamType.FIXED:
            continue
        if rng.random() < opts.resample_probability:
            new[p.name] = _sample(p, rng)
        elif p.type is ParamType.CATEGORICAL:
            choices = list(p.choices)  # type: ignore[attr-defined]
            i = choices.index(new[p.name]) + int(rng.choice([-1, 1]))
            new[p.name] = choices[min(max(i, 0), len(choices) - 1)]
        else:
            new[p.name] = _clip(p, float(new[p.name]) * float(rng.choice(opts.factors)))
    return new


def _unit(p: Param, x: float) -> float:
    lo, hi = float(p.low), float(p.high)  # type: ignore[arg-type]
    if p.log:
        return (np.log(x) - np.log(lo)) / (np.log(hi) - np.log(lo))
    return (x - lo) / (hi - lo) if hi > lo else 0.0


def _from_unit(p: Param, u: float) -> Any:
    lo, hi = float(p.low), float(p.high)  # type: ignore[arg-type]
    x = float(np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))) if p.log else lo + u * (hi - lo)
    return _clip(p, x)


def pb2_explore(
    space: SearchSpace,
    config: dict[str, Any],
    history: list[tuple[int, dict[str, Any], float]],
    rng: np.random.Generator,
    kappa: float = 2.0,
    candidates: int = 256,
) -> dict[str, Any]:
    """PB2's explore: GP on (time, mutable numeric params) -> reward change; maximise UCB.

    Categorical mutable params fall back to PBT's resampling (PB2's paper handles only continuous ones).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, WhiteKernel

    params = [p for p in space.values() if p.mutable and p.type in (ParamType.FLOAT, ParamType.INT)]
    new = dict(config)
    if not params or len(history) < 2:
        return explore(space, config, rng, PBTOptions())
    tmax = max(h[0] for h in history) or 1
    X = np.array([[t / tmax] + [_unit(p, c[p.name]) for p in params] for t, c, _ in history])
    y = np.array([d for _, _, d in history], dtype=float)
    y = (y - y.mean()) / (y.std() + 1e-8)
    gp = GaussianProcessRegressor(RBF(length_scale=np.ones(X.shape[1])) + WhiteKernel(0.1), normalize_y=False)
    with warnings.catch_warnings():  # few, noisy points: length scales at their bounds are expected
        warnings.simplefilter("ignore", ConvergenceWarning)
        gp.fit(X, y)
    U = rng.random((candidates, len(params)))
    Xc = np.hstack([np.ones((candidates, 1)), U])  # the next interval starts at the latest time
    mu, sd = gp.predict(Xc, return_std=True)
    best = U[int(np.argmax(mu + kappa * sd))]
    for p, u in zip(params, best, strict=True):
        if p.name in new:
            new[p.name] = _from_unit(p, float(u))
    return new


def _options(sweep: Any, worker: int, **kw: Any) -> Plan:
    opts = PBTOptions(**kw)
    opts.check()
    total = sweep.config.budget.total
    if total is not None and total // opts.population < 1:
        raise ValueError(f"budget.total={total} leaves no env steps for {opts.population} members")
    return Plan(optuna.samplers.RandomSampler(seed=sweep.config.seed + worker), optuna.pruners.NopPruner())


@register_method(
    "pbt",
    "population-based training (Jaderberg et al. 2017), embedded",
    MethodKind.POPULATION,
    runner="autorl.methods.pbt:run_pbt",
)
def build_pbt(
    sweep: Any,
    worker: int = 0,
    *,
    population: int = PBTOptions.population,
    interval: int | None = None,
    quantile: float = PBTOptions.quantile,
    resample_probability: float = PBTOptions.resample_probability,
    factors: tuple[float, float] = PBTOptions.factors,
    exploit: bool = True,
) -> Plan:
    return _options(
        sweep,
        worker,
        population=population,
        interval=interval,
        quantile=quantile,
        resample_probability=resample_probability,
        factors=tuple(factors),
        exploit=exploit,
    )


@register_method(
    "pb2",
    "population-based bandits (Parker-Holder et al. 2020), embedded",
    MethodKind.POPULATION,
    runner="autorl.methods.pbt:run_pbt",
)
def build_pb2(
    sweep: Any,
    worker: int = 0,
    *,
    population: int = PBTOptions.population,
    interval: int | None = None,
    quantile: float = PBTOptions.quantile,
) -> Plan:
    return _options(sweep, worker, population=population, interval=interval, quantile=quantile)


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def run_population(
    cls: type,
    space: SearchSpace,
    args: dict[str, Any],
    out: Path,
    *,
    budget: int,
    interval: int,
    metric: str,
    maximize: bool = True,
    seed: int = 0,
    opts: PBTOptions | None = None,
    resume: bool = False,
) -> tuple[list[Member], dict[str, Any]]:
    """Run PBT/PB2 round-robin; return members and a summary. Usable without a Sweep (tests)."""
    from autorl.targets import TrialContext

    opts = opts or PBTOptions()
    out = Path(out)
    ckdir = out / "pbt_checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE_FILE
    rng = np.random.default_rng(seed)
    sign = 1.0 if maximize else -1.0
    if resume and state_path.is_file():
        st = json.loads(state_path.read_text())
        members = [
            Member(**{**m, "curve": {int(k): v for k, v in m["curve"].items()}}) for m in st["members"]
        ]
        lineage, history = st["lineage"], [tuple(h) for h in st["history"]]
        rng.bit_generator.state = st["rng"]
        total, exploits, exploit_bytes = st["total_steps"], st["exploits"], st["exploit_bytes"]
        exploit_seconds = st.get("exploit_seconds", 0.0)
    else:
        members = [Member(i, sample_config(space, rng)) for i in range(opts.population)]
        for m in members:
            m.schedule.append({"step": 0, **m.config})
        lineage, history, total, exploits, exploit_bytes, exploit_seconds = [], [], 0, 0, 0, 0.0
    max_disk = 0

    def build(m: Member, config: dict[str, Any]) -> Any:
        return cls({**args, **config}, TrialContext(seed=seed * 1000 + m.index, budget=budget, metric=metric))

    live: dict[int, Any] = {}
    for m in members:  # on resume, rebuild from the last checkpoint
        obj = build(m, m.config)
        if m.checkpoint:
            obj.load(Path(m.checkpoint))
        live[m.index] = obj
    while min(m.steps for m in members) < budget:
        stale: list[Path] = []  # deleted only once the state no longer names them
        for m in members:
            obj = live[m.index]
            n = min(interval, budget - m.steps)
            before = m.steps
            t_train = time.perf_counter()
            res = obj.train(n)
            m.seconds += time.perf_counter() - t_train
            m.steps = int(res.get("budget", before + n)) if "budget" in res else before + n
            total += m.steps - before
            score = float(res[metric])
            m.last_delta = score - (m.score if m.score is not None else score)
            m.score = score
            m.curve[m.steps] = score
            history.append((m.steps, {k: m.config[k] for k in m.config}, m.last_delta * sign))
            path = ckdir / f"member{m.index}_{m.steps}"
            obj.save(path)
            old = m.checkpoint
            m.checkpoint = str(path)
            if old and Path(old) != path:
                stale.append(Path(old))
        max_disk = max(max_disk, _dir_bytes(ckdir))
        # exploit/explore: only members with a checkpoint are donors (ray#27170)
        ranked = sorted([m for m in members if m.checkpoint], key=lambda m: sign * m.score)
        k = max(1, round(len(ranked) * opts.quantile))
        bottom, top = ranked[:k], ranked[-k:]
        t_exploit = time.perf_counter()
        if opts.exploit and min(m.steps for m in members) < budget:
            for m in bottom:
                donor = top[int(rng.integers(len(top)))]
                if donor is m:
                    continue
                if opts.pb2:
                    new = pb2_explore(space, donor.config, history[-len(members) * 4 :], rng)
                else:
                    new = explore(space, donor.config, rng, opts)
                # fresh object built with the donor's config, loaded, then reconfigured with the NEW
                # values, so the restore cannot overwrite the explored ones (ray#62173)
                obj = build(m, donor.config)
                obj.load(Path(donor.checkpoint))
                if hasattr(obj, "reconfigure"):
                    obj.reconfigure(new)
                live[m.index] = obj
                # the member's checkpoint must hold its new state, or a resume would undo the exploit
                own = ckdir / f"member{m.index}_{donor.steps}"
                shutil.rmtree(own, ignore_errors=True)
                obj.save(own)
                if m.checkpoint and Path(m.checkpoint) != own:
                    stale.append(Path(m.checkpoint))
                m.checkpoint = str(own)
                exploit_bytes += _dir_bytes(Path(donor.checkpoint))
                exploits += 1
                lineage.append(
                    {
                        "step": m.steps,
                        "member": m.index,
                        "donor": donor.index,
                        "donor_score": donor.score,
                        "member_score": m.score,
                    }
                )
                m.config, m.steps, m.score = new, donor.steps, donor.score
                # the weights carry the donor's past: so does the schedule (what a replay must follow)
                m.schedule = [dict(s) for s in donor.schedule] + [{"step": m.steps, **new}]
        exploit_seconds += time.perf_counter() - t_exploit
        state = {
            "members": [asdict(m) for m in members],
            "lineage": lineage,
            "history": history,
            "rng": rng.bit_generator.state,
            "total_steps": total,
            "exploits": exploits,
            "exploit_bytes": exploit_bytes,
            "exploit_seconds": exploit_seconds,
        }
        tmp = state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, default=float))
        tmp.replace(state_path)
        for old in stale:  # keep only the latest checkpoint per member (ray#4287)
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
    _write_outputs(out, members, lineage, maximize, {p.name for p in space.values() if p.log})
    summary = {
        "total_steps": total,
        "exploits": exploits,
        "exploit_bytes": exploit_bytes,
        "exploit_seconds": round(exploit_seconds, 3),
        "max_checkpoint_bytes": max_disk,
        "final_checkpoint_bytes": _dir_bytes(ckdir),
    }
    (out / "pbt_summary.json").write_text(json.dumps(summary, indent=2))
    return members, summary


def _write_outputs(
    out: Path, members: list[Member], lineage: list[dict[str, Any]], maximize: bool, log_scale: set[str]
) -> None:
    import yaml

    keys = sorted({k for m in members for s in m.schedule for k in s if k != "step"})
    with open(out / "pbt_schedule.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["member", "step", *keys])
        for m in members:
            for s in m.schedule:
                w.writerow([m.index, s["step"], *[s.get(k, "") for k in keys]])
    with open(out / "pbt_lineage.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["step", "member", "donor", "donor_score", "member_score"])
        w.writeheader()
        w.writerows(lineage)
    best = max(members, key=lambda m: (1 if maximize else -1) * (m.score or 0.0))
    (out / "best_schedule.yaml").write_text(
        yaml.safe_dump(
            {"member": best.index, "score": best.score, "steps": best.steps, "schedule": best.schedule},
            sort_keys=False,
        )
    )
    _plot_schedules(members, keys, log_scale, out / "plots" / "pbt_schedules.png")


def _plot_schedules(members: list[Member], keys: list[str], log_scale: set[str], path: Path) -> None:
    """Each numeric parameter over env steps, one line per member (log axes for log-scale ones)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from autorl.results.plots import save_figure

    numeric = [
        k
        for k in keys
        if all(isinstance(s.get(k), int | float) for m in members for s in m.schedule if k in s)
    ]
    if not numeric:
        return
    fig, axes = plt.subplots(len(numeric), 1, figsize=(6, 2.2 * len(numeric)), squeeze=False)
    for ax, k in zip(axes[:, 0], numeric, strict=True):
        for m in members:
            xs = [s["step"] for s in m.schedule] + [m.steps]
            ys = [s[k] for s in m.schedule] + [m.schedule[-1][k]]
            ax.step(xs, ys, where="post", label=f"m{m.index}")
        ax.set_ylabel(k)
        if k in log_scale:
            ax.set_yscale("log")
    axes[-1, 0].set_xlabel("env steps")
    save_figure(fig, path)


def run_pbt(sweep: Any, resume: bool = False, progress: Any = None) -> optuna.Study:
    """Runner for methods ``pbt``/``pb2``: one Optuna trial per member is recorded at the end."""
    from autorl.executors.storage import open_study
    from autorl.space.optuna import to_distribution
    from autorl.targets import TARGETS

    mo = dict(sweep.method_options)
    opts = PBTOptions(**{**mo, "factors": tuple(mo.get("factors", (0.8, 1.2)))}, pb2=sweep.method == "pb2")
    opts.check()
    b = sweep.config.budget
    # budget.total is the whole population's budget (as in a comparison): split evenly, so PBT spends
    # what the other methods spend, even if a member then trains longer than one trial's budget.max
    per_member = b.total // opts.population if b.total is not None else b.max
    interval = min(opts.interval or b.report_every or max(1, b.max // 10), per_member)
    cls = TARGETS.get(sweep.config.target)
    members, summary = run_population(
        cls,
        sweep.space,
        dict(sweep.config.args),
        sweep.out,
        budget=per_member,
        interval=interval,
        metric=sweep.metrics[0],
        maximize="max" in str(sweep.directions[0]).lower(),
        seed=sweep.config.seed,
        opts=opts,
        resume=resume,
    )
    study = open_study(sweep)
    for m in members:
        params = {
            p.search_name: (p.transform.to_search(m.config[p.name]) if p.transform else m.config[p.name])
            for p in sweep.space.values()
            if p.name in m.config and p.type is not ParamType.FIXED
        }
        dists = {
            p.search_name: d
            for p in sweep.space.values()
            if p.search_name in params and (d := to_distribution(p)) is not None
        }
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=dists,
                values=[m.score],
                state=optuna.trial.TrialState.COMPLETE,
                user_attrs={
                    "autorl": {
                        "config": sweep.space.record(m.config),
                        "metrics": {
                            sweep.metrics[0]: m.score,
                            "budget": m.steps,
                            "population_steps": summary["total_steps"],
                            "wall_s": round(m.seconds, 3),
                        },
                        "schedule": m.schedule,
                    }
                },
                intermediate_values=m.curve,
            )
        )
        if progress:
            progress(study.get_trials(deepcopy=False))
    return study


def replay_schedule(
    schedule_file: str | Path,
    seed: int,
    out: str | Path,
    *,
    target: str,
    args: dict[str, Any] | None = None,
    budget: int,
    metric: str = "eval_return",
    mutable: set[str] | None = None,
) -> dict[str, float]:
    """Retrain one agent from scratch following ``best_schedule.yaml``; returns the final metrics.

    With ``mutable`` given, every other parameter takes its value from the schedule's last entry from
    the start: an exploit hands over the donor's immutable values with its weights, so the last entry
    holds those the final agent was built with."""
    import yaml

    from autorl.targets import TARGETS, TrialContext

    sched = yaml.safe_load(Path(schedule_file).read_text())["schedule"]
    sched = sorted(sched, key=lambda s: s["step"])
    cls = TARGETS.get(target)
    first = {k: v for k, v in sched[0].items() if k != "step"}
    if mutable is not None:
        first.update({k: v for k, v in sched[-1].items() if k != "step" and k not in mutable})
    obj = cls({**(args or {}), **first}, TrialContext(seed=seed, budget=budget, metric=metric))
    steps, res = 0, {}
    ends = [int(s["step"]) for s in sched[1:]] + [budget]
    for s, end in zip(sched, ends, strict=True):
        cfg = {k: v for k, v in s.items() if k != "step" and (mutable is None or k in mutable)}
        if hasattr(obj, "reconfigure"):
            obj.reconfigure(cfg)
        if end > steps:
            res = obj.train(end - steps)
            steps = int(res.get("budget", end))
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "replay_metrics.json").write_text(json.dumps(res))
    return res


def replay_best(out_dir: str | Path, seeds: list[int] | None = None, budget: int | None = None) -> Any:
    """Retrain the best member's schedule of a finished ``pbt``/``pb2`` sweep from scratch on ``seeds``
    (default: 3 fresh seeds); returns one row of final metrics per seed and writes ``replay.csv``."""
    import pandas as pd

    from autorl.evaluate import fresh_seeds
    from autorl.yamlio import load_yaml

    out = Path(out_dir)
    sched = out / "best_schedule.yaml"
    if not sched.is_file():
        raise FileNotFoundError(
            f"{sched} is missing: replay needs the output directory of a pbt or pb2 sweep"
        )
    cfg = load_yaml(out / "config.yaml")
    space = SearchSpace.from_yaml(out / "space.yaml")
    metric = cfg.get("metric") or "value"
    metric = metric[0] if isinstance(metric, list) else metric
    rows = []
    for seed in seeds or fresh_seeds(3):
        res = replay_schedule(
            sched,
            seed,
            out / "replay" / f"seed{seed}",
            target=cfg["target"],
            args=cfg.get("args") or {},
            budget=budget or int(load_yaml(sched).get("steps") or cfg["budget"]["max"]),
            metric=metric,
            mutable={p.name for p in space.values() if p.mutable},
        )
        rows.append({"seed": seed, **res})
    df = pd.DataFrame(rows)
    df.to_csv(out / "replay.csv", index=False)
    return df
