"""Running mean and variance per member, and normalisation by them: VecNormalize's arithmetic."""

from __future__ import annotations

import torch
from torch import Tensor

CLIP = 10.0  # VecNormalize's clip_obs and clip_reward
EPS = 1e-8  # VecNormalize's epsilon


def update_moments(mean: Tensor, var: Tensor, count: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Running mean, variance ``[k, ...]`` and count ``[k]`` after batch ``x[i]`` ``[n, ...]`` of member i
    (VecNormalize's RunningMeanStd, per member)."""
    n = x.shape[1]
    batch_var, batch_mean = torch.var_mean(x, dim=1, correction=0)
    total = count + n
    c = count.view(-1, *([1] * (mean.dim() - 1)))
    t = total.view_as(c)
    delta = batch_mean - mean
    new_mean = mean + delta * (n / t)
    new_var = (var * c + batch_var * n + delta.square() * (c * n / t)) / t
    return new_mean, new_var, total


def normalize(x: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """``x`` standardised by ``mean`` and ``var`` (broadcast against it) and clipped to +-``CLIP``."""
    return ((x - mean) / torch.sqrt(var + EPS)).clamp(-CLIP, CLIP)


def scale(x: Tensor, var: Tensor) -> Tensor:
    """``x`` divided by the std of ``var`` and clipped to +-``CLIP``, not centred (VecNormalize's rewards)."""
    return (x / torch.sqrt(var + EPS)).clamp(-CLIP, CLIP)
