"""Retrain on fresh seeds: ``autorl train best.yaml``, ``autorl reeval DIR`` and ``autorl replay DIR``.

The best of many noisy trials is optimistically biased (Eimer et al. 2023), so a sweep's incumbents
are judged again on seeds that tuning never used.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from autorl.config import Budget
from autorl.errors import ConfigError
from autorl.results import open_run, record_of
from autorl.results.race import incumbent, race_key
from autorl.space import SearchSpace
from autorl.targets import TARGETS, Aggregate, TrialContext, run_target, target_info
from autorl.yamlio import load_yaml

FRESH_SEED_BASE = 900_000_000  # far above the seeds a sweep gives its trials


def fresh_seeds(n: int, start: int = 0) -> list[int]:
    """``n`` seeds no sweep gives its trials, from ``FRESH_SEED_BASE + start`` on."""
    return [FRESH_SEED_BASE + start + i for i in range(n)]


# told (which run: "seed 900000001", or "trial 12, seed 900000001"; its final metrics) as each run ends
OnSeed = Callable[[str, dict[str, float]], None]


def evaluate_config(
    target: str,
    args: dict[str, Any],
    params: dict[str, Any],
    seeds: list[int],
    budget: Budget,
    metric: str,
    on_seed: OnSeed | None = None,
) -> pd.DataFrame:
    """Train ``params`` once per seed for ``budget.max`` units; one row of metrics per seed.

    A target that trains many configurations as one computation (``target.batch``, the engine) trains
    every seed at once, as one batch: the same runs, several times faster than one after another."""
    fn, info = TARGETS.get(target), target_info(target)
    if info.batch is not None and len(seeds) > 1:
        return _evaluate_batched(info.batch_class(), {**args, **params}, seeds, budget, on_seed)
    rows = []
    for seed in seeds:
        ctx = TrialContext(seed=seed, budget=budget.steps, report_every=budget.interval, metric=metric)
        result = run_target(fn, {**args, **params}, ctx)
        rows.append({"seed": seed, **result.metrics})
        if on_seed:
            on_seed(f"seed {seed}", result.metrics)
    return pd.DataFrame(rows)


def _evaluate_batched(
    batch_class: Any, config: dict[str, Any], seeds: list[int], budget: Budget, on_seed: OnSeed | None
) -> pd.DataFrame:
    batch = batch_class([config] * len(seeds), seeds, budget.steps)
    results = batch.train(budget.steps)  # one call: only the final evaluation is needed
    rows = []
    for member, seed in enumerate(seeds):
        metrics = {k: float(v) for k, v in results[member].items()}
        rows.append({"seed": seed, **metrics})
        if on_seed:
            on_seed(f"seed {seed}", metrics)
    return pd.DataFrame(rows)


def train_best(
    best_file: str | Path,
    seeds: list[int] | None = None,
    budget: int | None = None,
    on_seed: OnSeed | None = None,
    with_target: str | None = None,
) -> pd.DataFrame:
    """Retrain the configuration in a ``best.yaml`` on ``seeds`` (default: 3 fresh seeds); with
    ``with_target`` (``"sb3"``), as that target trains the same configuration (the target's declared
    :attr:`~autorl.targets.base.TargetInfo.handover`; ConfigError for a setting it cannot take)."""
    data = load_yaml(best_file)
    for key in ("target", "params", "budget"):
        if not isinstance(data, dict) or key not in data:
            raise ConfigError(
                f"missing key {key!r}: not a best.yaml written by autorl sweep", key, str(best_file)
            )
    target, args, params = data["target"], data.get("args", {}), data["params"]
    metric = data.get("metric") or target_info(target).metric
    metric = metric[0] if isinstance(metric, list) else metric
    if with_target is not None:
        try:
            handed = target_info(target).hand_over(with_target, {**args, **params})
        except ConfigError as exc:
            raise (exc if exc.file else exc.at(file=str(best_file))) from None
        target, args, params = handed["target"], handed["args"], handed["params"]
    b = dict(data["budget"])
    if budget is not None:
        b = {"max": budget, "report_every": min(int(b.get("report_every", budget)), budget)}
    return evaluate_config(
        target,
        args,
        params,
        seeds or fresh_seeds(3),
        Budget(**b),
        metric,
        on_seed,
    )


def _named(on_seed: OnSeed | None, name: str) -> OnSeed | None:
    """``on_seed`` told which configuration each run trained (``trial 12, seed 900000001``)."""
    if on_seed is None:
        return None
    return lambda run, metrics: on_seed(f"{name}, {run}", metrics)


def reevaluate(
    out_dir: str | Path,
    top: int = 3,
    n_seeds: int = 5,
    on_seed: OnSeed | None = None,
    seeds: list[int] | None = None,
) -> pd.DataFrame:
    """Re-run the ``top`` configurations of a finished sweep on ``n_seeds`` fresh seeds each (or on
    ``seeds``, when given).

    Returns one row per (trial, seed) and writes ``reeval.csv`` plus ``reeval_summary.csv`` (mean,
    std and IQM per trial next to its tuning value) in the sweep's directory.
    """
    out = Path(out_dir)
    study, cfg = open_run(out)
    maximize = cfg["direction"][0] == "maximize"
    trials = study.get_trials(deepcopy=False)
    # configurations, not race blocks (trials that re-ran one); a racing sweep's incumbent comes first
    done = [t for t in trials if t.state.name == "COMPLETE" and race_key(t) is None]
    first, _ = incumbent(trials, maximize, raced=bool(cfg.get("race")))
    done = sorted(done, key=lambda t: (t is not first, -t.values[0] if maximize else t.values[0]))[:top]
    budget = Budget(**{k: v for k, v in cfg["budget"].items() if v is not None})
    # best.yaml holds the args every trial got (the method's too: a level sampler, meta-gradients)
    best = out / "best.yaml"
    args = load_yaml(best).get("args", cfg.get("args", {})) if best.is_file() else cfg.get("args", {})
    frames = []
    for t in done:
        config = record_of(t).config or t.params
        params = {k: v for k, v in config.items() if k in cfg["space"]}
        res = evaluate_config(
            cfg["target"],
            args,
            params,
            seeds or fresh_seeds(n_seeds),
            budget,
            cfg["metric"][0],
            _named(on_seed, f"trial {t.number}"),
        )
        res.insert(0, "trial", t.number)
        res.insert(1, "tuning_value", t.values[0])
        frames.append(res)
    result = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(result):
        metric = cfg["metric"][0]
        summary = (
            result.groupby("trial")
            .agg(
                tuning_value=("tuning_value", "first"),
                mean=(metric, "mean"),
                std=(metric, "std"),
                iqm=(metric, lambda x: Aggregate.IQM(list(x))),
            )
            .reset_index()
        )
        result.to_csv(out / "reeval.csv", index=False)
        summary.to_csv(out / "reeval_summary.csv", index=False)
    return result


def replay_schedule(
    schedule: list[dict[str, Any]],
    seed: int,
    *,
    target: str,
    args: dict[str, Any] | None = None,
    budget: int,
    metric: str = "eval_return",
    mutable: set[str] | None = None,
) -> dict[str, float]:
    """Retrain one agent from scratch following ``schedule`` (``[{"step": 0, ...}, ...]``); returns its
    final metrics.

    With ``mutable`` given, every other parameter takes its value from the schedule's last entry from
    the start: an exploit hands over the donor's immutable values with its weights, so the last entry
    holds those the final agent was built with."""
    sched = sorted(schedule, key=lambda s: s["step"])
    first = {k: v for k, v in sched[0].items() if k != "step"}
    if mutable is not None:
        first.update({k: v for k, v in sched[-1].items() if k != "step" and k not in mutable})
    obj = TARGETS.get(target)(
        {**(args or {}), **first}, TrialContext(seed=seed, budget=budget, metric=metric)
    )
    reconfigurable = target_info(target).reconfigurable
    steps, res = 0, {}
    ends = [int(s["step"]) for s in sched[1:]] + [budget]
    for s, end in zip(sched, ends, strict=True):
        cfg = {k: v for k, v in s.items() if k != "step" and (mutable is None or k in mutable)}
        if reconfigurable:
            obj.reconfigure(cfg)
        if end > steps:
            res = dict(obj.train(end - steps))
            steps = int(res.get("budget", end))
    return {k: float(v) for k, v in res.items()}


def replay_best(
    out_dir: str | Path,
    seeds: list[int] | None = None,
    budget: int | None = None,
    on_seed: OnSeed | None = None,
) -> pd.DataFrame:
    """Retrain the best member's schedule of a finished population sweep from scratch on ``seeds``
    (default: 3 fresh seeds); one row of final metrics per seed, also written to ``replay.csv``."""
    out = Path(out_dir)
    sched_file = out / "best_schedule.yaml"
    if not sched_file.is_file():
        raise FileNotFoundError(
            f"{sched_file} is missing: replay needs the output directory of a pbt or pb2 sweep"
        )
    cfg = load_yaml(out / "config.yaml")
    best = load_yaml(sched_file)
    space = SearchSpace.from_yaml(out / "space.yaml")
    metric = cfg.get("metric") or "value"
    metric = metric[0] if isinstance(metric, list) else metric
    rows = []
    for seed in seeds or fresh_seeds(3):
        res = replay_schedule(
            best["schedule"],
            seed,
            target=cfg["target"],
            args=cfg.get("args") or {},
            budget=budget or int(best.get("steps") or cfg["budget"]["max"]),
            metric=metric,
            mutable={p.name for p in space.values() if p.mutable},
        )
        rows.append({"seed": seed, **res})
        if on_seed:
            on_seed(f"seed {seed}", res)
    df = pd.DataFrame(rows)
    df.to_csv(out / "replay.csv", index=False)
    (out / "replay_summary.json").write_text(
        json.dumps(df.drop(columns=["seed"]).agg(["mean", "std"]).to_dict())
    )
    return df
