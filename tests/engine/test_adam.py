"""The engine's batched Adam step against torch.optim.Adam with gradient clipping, member by member."""

from __future__ import annotations

import torch

from autorl.engine.adam import adam_step


def test_each_member_steps_as_torch_adam_with_clipping_and_a_failure_keeps_its_parameters() -> None:
    gen = torch.Generator().manual_seed(0)
    k, n = 3, 50
    theta = torch.randn(k, n, generator=gen, dtype=torch.float64)
    lr = torch.tensor([1e-3, 3e-2, 1e-1], dtype=torch.float64)
    max_norm = torch.tensor([0.5, 10.0, 1.0], dtype=torch.float64)
    eps = torch.tensor([1e-5, 1e-8, 1e-3], dtype=torch.float64)
    params = [torch.nn.Parameter(row.clone()) for row in theta]
    optims = [
        torch.optim.Adam([p], lr=float(r), eps=float(e)) for p, r, e in zip(params, lr, eps, strict=True)
    ]
    exp_avg, exp_avg_sq = torch.zeros_like(theta), torch.zeros_like(theta)
    step, failed = torch.zeros(k, dtype=torch.int64), torch.zeros(k, dtype=torch.bool)
    for i in range(6):
        grad = torch.randn(k, n, generator=gen, dtype=torch.float64) * 3
        loss = torch.zeros(k, dtype=torch.float64)
        if i == 4:  # member 2's loss goes non-finite: it keeps its parameters and moments, and fails
            loss[2], grad[2, 0] = float("nan"), float("inf")
        theta, step, failed = adam_step(
            theta,
            grad,
            loss,
            lr,
            max_norm,
            eps,
            exp_avg=exp_avg,
            exp_avg_sq=exp_avg_sq,
            step=step,
            failed=failed,
        )
        for member, (p, opt) in enumerate(zip(params, optims, strict=True)):
            if member == 2 and i >= 4:
                continue
            p.grad = grad[member].clone()
            torch.nn.utils.clip_grad_norm_([p], float(max_norm[member]))
            opt.step()
    for member, (p, opt) in enumerate(zip(params, optims, strict=True)):  # member 2 as after 4 steps
        torch.testing.assert_close(theta[member], p.detach(), rtol=1e-8, atol=1e-12)
        torch.testing.assert_close(exp_avg[member], opt.state[p]["exp_avg"], rtol=1e-8, atol=1e-12)
        torch.testing.assert_close(exp_avg_sq[member], opt.state[p]["exp_avg_sq"], rtol=1e-8, atol=1e-12)
    assert step.tolist() == [6, 6, 4] and failed.tolist() == [False, False, True]


def test_a_member_whose_step_is_not_finite_keeps_its_parameters_and_fails() -> None:
    theta = torch.ones(2, 4)
    theta_before = theta.clone()
    new, _, failed = adam_step(
        theta,
        torch.ones(2, 4),
        torch.zeros(2),
        torch.tensor([1e-3, float("inf")]),  # member 1's step overflows
        torch.full((2,), 0.5),
        torch.full((2,), 1e-5),
        exp_avg=torch.zeros(2, 4),
        exp_avg_sq=torch.zeros(2, 4),
        step=torch.zeros(2, dtype=torch.int64),
        failed=torch.zeros(2, dtype=torch.bool),
    )
    assert failed.tolist() == [False, True]
    assert torch.equal(new[1], theta_before[1]) and bool((new[0] < 1).all())
