"""Retrain a configuration on fresh seeds: ``autorl train best.yaml`` and ``autorl reeval DIR``.

The best of many noisy trials is optimistically biased (Eimer et al. 2023), so a sweep's incumbents
are judged again on seeds that tuning never used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from autorl.config import Budget
from autorl.errors import ConfigError
from autorl.targets import TARGETS, TrialContext, run_target, target_info
from autorl.yamlio import load_yaml

FRESH_SEED_BASE = 900_000_000  # far above the seeds a sweep gives its trials


def fresh_seeds(n: int) -> list[int]:
    return [FRESH_SEED_BASE + i for i in range(n)]


def evaluate_config(
    target: str, args: dict[str, Any], params: dict[str, Any], seeds: list[int], budget: Budget, metric: str
) -> pd.DataFrame:
    """Train ``params`` once per seed for ``budget.max`` units; one row of metrics per seed."""
    fn = TARGETS.get(target)
    rows = []
    for seed in seeds:
        ctx = TrialContext(seed=seed, budget=budget.max, report_every=budget.interval, metric=metric)
        result = run_target(fn, {**args, **params}, ctx)
        rows.append({"seed": seed, **result.metrics})
    return pd.DataFrame(rows)


def train_best(
    best_file: str | Path, seeds: list[int] | None = None, budget: int | None = None
) -> pd.DataFrame:
    """Retrain the configuration in a ``best.yaml`` on ``seeds`` (default: 3 fresh seeds)."""
    data = load_yaml(best_file)
    for key in ("target", "params", "budget"):
        if not isinstance(data, dict) or key not in data:
            raise ConfigError(
                f"missing key {key!r}: not a best.yaml written by autorl sweep", key, str(best_file)
            )
    metric = data.get("metric") or target_info(data["target"]).metric
    metric = metric[0] if isinstance(metric, list) else metric
    b = dict(data["budget"])
    if budget is not None:
        b = {"max": budget, "report_every": min(int(b.get("report_every", budget)), budget)}
    return evaluate_config(
        data["target"], data.get("args", {}), data["params"], seeds or fresh_seeds(3), Budget(**b), metric
    )


def reevaluate(out_dir: str | Path, top: int = 3, n_seeds: int = 5) -> pd.DataFrame:
    """Re-run the ``top`` configurations of a finished sweep on ``n_seeds`` fresh seeds each.

    Returns one row per (trial, seed) and writes ``reeval.csv`` plus ``reeval_summary.csv`` (mean,
    std and IQM per trial next to its tuning value) in the sweep's directory.
    """
    from autorl.executors.objective import ATTR
    from autorl.results import open_run
    from autorl.targets import Aggregate

    out = Path(out_dir)
    study, cfg = open_run(out)
    maximize = cfg["direction"][0] == "maximize"
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    done = sorted(done, key=lambda t: t.values[0], reverse=maximize)[:top]
    budget = Budget(**{k: v for k, v in cfg["budget"].items() if v is not None})
    frames = []
    for t in done:
        config = t.user_attrs.get(ATTR, {}).get("config", t.params)
        params = {k: v for k, v in config.items() if k in cfg["space"]}
        res = evaluate_config(
            cfg["target"], cfg.get("args", {}), params, fresh_seeds(n_seeds), budget, cfg["metric"][0]
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
