"""Figures for environment design: a return heatmap over two context dimensions and level history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def generalisation_gap(train_return: float, heldout_return: float) -> float:
    """Train minus held-out return: positive when the agent does worse on unseen levels."""
    return train_return - heldout_return


def heatmap(
    df: pd.DataFrame, x: str, y: str, path: str | Path, value: str = "return", bins: int = 6, title: str = ""
) -> Path:
    """Mean ``value`` of per-level rows binned over context columns ``x`` and ``y``, saved as PNG."""
    from autorl.plotting import pyplot, save_figure

    plt = pyplot()

    for key in (x, y, value):
        if key not in df.columns:
            raise ValueError(f"column {key!r} not in the level table; columns: {', '.join(df.columns)}")
    xb = pd.cut(df[x], bins)
    yb = pd.cut(df[y], bins)
    grid = df.groupby([yb, xb], observed=False)[value].mean().unstack()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    im = ax.imshow(grid.to_numpy(dtype=float), origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(grid.columns)), [f"{iv.mid:.2g}" for iv in grid.columns], rotation=45)
    ax.set_yticks(range(len(grid.index)), [f"{iv.mid:.2g}" for iv in grid.index])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title or f"mean {value}")
    fig.colorbar(im, ax=ax, label=value)
    return save_figure(fig, path)


def plot_level_history(log: list[dict[str, Any]], path: str | Path, x: str | None = None) -> Path:
    """The level buffer's scores and sampling distribution over env steps.

    Top: mean and max buffered score (PLR), the widening curriculum's width, or ALP-GMM's highest
    component ALP. Bottom (PLR, ALP-GMM): buffered levels or mixture components over context dimension
    ``x`` (first context key by default) at each logged step, coloured by their sampling probability.
    """
    from autorl.plotting import pyplot, save_figure

    plt = pyplot()

    pts = [(e["step"], lv, lv["p"]) for e in log for lv in e.get("levels", [])]
    fig, axes = plt.subplots(2 if pts else 1, 1, figsize=(6, 6 if pts else 3.2), sharex=True, squeeze=False)
    a1 = axes[0, 0]
    steps = [e["step"] for e in log]
    for key in ("score_mean", "score_max", "p_max", "width", "alp_max"):
        vals = [e.get(key, np.nan) for e in log]
        if not all(np.isnan(vals)):
            a1.plot(steps, vals, label=key)
    a1.legend()
    a1.set_ylabel("scores / width / ALP")
    if pts:
        a2 = axes[1, 0]
        key = x or next(k for k in pts[0][1] if k not in ("score", "p"))
        sc = a2.scatter(
            [p[0] for p in pts], [p[1][key] for p in pts], c=[p[2] for p in pts], s=6, cmap="magma"
        )
        fig.colorbar(sc, ax=a2, label="replay probability")
        a2.set_ylabel(key)
        a2.set_xlabel("env steps")
    else:  # a sampler with no per-level state (the widening curriculum): one panel
        a1.set_xlabel("env steps")
    return save_figure(fig, path)
