"""The engine's batched MLP: the fused forward and hand-written backward equal autograd over plain ops."""

from __future__ import annotations

import itertools

import pytest
import torch

from autorl.engine.nets import _forward, _mlp

_PLAIN = {"tanh": torch.tanh, "relu": torch.relu}


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("head", [1, 2, 64])
@pytest.mark.parametrize("input_grad", [False, True])
def test_the_fused_mlp_equals_autograd_over_plain_ops(activation: str, head: int, input_grad: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    k, n, sizes = 3, 40, (4, 16, 16, head)

    def draw(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    layers = [
        (draw(k, i, o).requires_grad_(), draw(k, 1, o).requires_grad_()) for i, o in itertools.pairwise(sizes)
    ]
    params = [p for layer in layers for p in layer]
    x = draw(k, n, sizes[0]).requires_grad_(input_grad)
    upstream = draw(k, n, head)
    wrt = [*params, x] if input_grad else params

    fused = _mlp(layers, x, activation)
    plain = _forward(layers, x, _PLAIN[activation])
    assert fused.grad_fn is not None and "Fused" in type(fused.grad_fn).__name__
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-12)
    for got, want in zip(
        torch.autograd.grad(fused, wrt, upstream), torch.autograd.grad(plain, wrt, upstream), strict=True
    ):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_without_gradients_tanh_is_torch_tanh_unless_exact_is_off() -> None:
    """Rollouts and evaluation keep torch.tanh; the critic's values for GAE take the sigmoid form."""
    gen = torch.Generator().manual_seed(1)
    layers = [(torch.randn(2, 3, 8, generator=gen), torch.randn(2, 1, 8, generator=gen))]
    layers.append((torch.randn(2, 8, 2, generator=gen), torch.randn(2, 1, 2, generator=gen)))
    x = torch.randn(2, 5, 3, generator=gen)
    plain = _forward(layers, x, torch.tanh)
    assert torch.equal(_mlp(layers, x, "tanh"), plain)
    torch.testing.assert_close(_mlp(layers, x, "tanh", exact=False), plain, rtol=0, atol=2e-6)
    assert torch.equal(_mlp(layers, x, "relu", exact=False), _forward(layers, x, torch.relu))
