"""A functional Adam step for k members at once, with per-member gradient clipping, learning rates and
eps, that leaves a member with a non-finite loss, gradient or step untouched and marks it failed."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

BETAS = (0.9, 0.999)  # Adam's defaults


class AdamStep(NamedTuple):
    """What :func:`adam_step` returns (the moments it updates in place)."""

    theta: Tensor  # [k, n_params]: the new parameters
    step: Tensor  # [k] int64: the new step counts
    failed: Tensor  # [k] bool: the members failed before or by this step


def adam_step(
    theta: Tensor,
    grad: Tensor,
    loss: Tensor,
    lr: Tensor,
    max_grad_norm: Tensor,
    eps: Tensor,
    *,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    step: Tensor,
    failed: Tensor,
) -> AdamStep:
    """Clip each member's gradient ``[k, n_params]`` to its ``max_grad_norm``, then take an Adam step
    (torch.optim.Adam's arithmetic) with its learning rate and eps (each ``[k]``).

    ``exp_avg`` and ``exp_avg_sq`` (the moments, ``[k, n_params]``) are updated in place. A member whose
    loss or gradient is not finite (or that ``failed`` already) keeps its parameters, moments and step
    count, and one whose new parameters are not finite keeps its parameters; both come back failed.
    The first is done by arithmetic (a zero gradient, moment weights that keep the moments, a zero step
    size) because ``torch.where`` over ``[k, n_params]`` costs several times more; the passes over
    ``[k, n_params]`` that only a failure needs (clearing non-finite gradients, keeping the old
    parameters) run on a CPU only when a member fails.
    """
    norm = torch.linalg.vector_norm(grad, dim=1)
    ok = torch.isfinite(loss) & torch.isfinite(norm) & ~failed
    scale = torch.where(ok, (max_grad_norm / (norm + 1e-6)).clamp(max=1), 0.0)
    cpu = theta.device.type == "cpu"  # elsewhere no host sync: the failure passes always run
    if not cpu or not bool(ok.all()):  # a zero gradient for the others; 0 * nan would be nan
        grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
    grad = grad * scale[:, None]
    beta1, beta2 = BETAS
    step = step + ok.to(torch.int64)
    betas = torch.tensor(BETAS, dtype=theta.dtype, device=theta.device)  # a Python float would be float32
    exp_avg.lerp_(grad, torch.where(ok, 1 - betas[0], 0.0)[:, None])
    decay = torch.where(ok, betas[1], 1.0)[:, None]
    exp_avg_sq.mul_(decay).addcmul_(grad, grad, value=1 - beta2)
    stepf = step.clamp(min=1).to(theta.dtype)
    bias1, bias2 = 1 - beta1**stepf, 1 - beta2**stepf
    step_size = torch.where(ok, lr / bias1, 0.0)
    denom = exp_avg_sq.sqrt().div_(bias2.sqrt()[:, None]).add_(eps[:, None])
    new = torch.addcdiv(theta, exp_avg * step_size[:, None], denom, value=-1)
    finite = torch.isfinite(new.sum(1))  # any non-finite entry makes the sum non-finite
    if not cpu or not bool(finite.all()):
        new = torch.where(finite[:, None], new, theta)
    return AdamStep(new, step, failed | ~(ok & finite))
