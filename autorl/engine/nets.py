"""The actor-critic networks of k members as one flat parameter tensor ``[k, n_params]``: where each
layer sits in it (:class:`_Layout`), SB3's initialisation, and the forward pass of every member's MLP
at once (:func:`_mlp`, one ``torch.baddbmm`` per layer, one autograd node where differentiated), and the
entropy of a categorical policy."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from autorl.engine.config import EngineConfig


@dataclass(frozen=True)
class _Layout:
    """Where the actor's, the critic's and the log std's parameters sit in one member's flat vector.

    Every layer is a weight ``[in, out]`` then a bias ``[out]``; the actor's layers come first, then
    the critic's, then (continuous actions only) the log std ``[action_dim]``.
    """

    actor: tuple[tuple[int, int], ...]
    critic: tuple[tuple[int, int], ...]
    log_std: int  # 0 for discrete actions

    @classmethod
    def of(cls, config: EngineConfig) -> _Layout:
        spec = config.spec
        sizes = (spec.obs_dim, *config.hidden)
        head = spec.n_actions if spec.n_actions is not None else spec.action_dim
        actor = (*itertools.pairwise(sizes), (sizes[-1], head))
        critic = (*itertools.pairwise(sizes), (sizes[-1], 1))
        return cls(actor, critic, spec.action_dim if spec.n_actions is None else 0)

    @property
    def chunks(self) -> list[int]:
        """The lengths of the flat vector's pieces: each layer's weight and bias, then the log std."""
        out = [n for i, o in (*self.actor, *self.critic) for n in (i * o, o)]
        return [*out, self.log_std] if self.log_std else out

    @property
    def size(self) -> int:
        return sum(self.chunks)

    def split(self, theta: Tensor) -> tuple[list[tuple[Tensor, Tensor]], list[tuple[Tensor, Tensor]], Tensor]:
        """Views of ``theta`` ``[k, size]``: actor and critic layers (``[k, in, out]``, ``[k, 1, out]``) and
        the log std ``[k, action_dim]`` (``[k, 0]`` for discrete actions)."""
        k = theta.shape[0]
        pieces = iter(theta.split(self.chunks, dim=1))

        def layers(shapes: tuple[tuple[int, int], ...]) -> list[tuple[Tensor, Tensor]]:
            return [(next(pieces).view(k, i, o), next(pieces).view(k, 1, o)) for i, o in shapes]

        actor, critic = layers(self.actor), layers(self.critic)
        log_std = next(pieces) if self.log_std else theta[:, :0]
        return actor, critic, log_std

    def init(self, config: EngineConfig, seed: int) -> Tensor:
        """One member's initial flat parameters ``[size]``, from a ``torch.Generator`` seeded by ``seed``.

        Every weight is drawn in ``nn.Linear``'s ``[out, in]`` layout, so the draws are those of SB3's init.
        """
        gen = torch.Generator().manual_seed(seed)
        parts = []
        for shapes, head_gain in ((self.actor, 0.01), (self.critic, 1.0)):
            for n, (i, o) in enumerate(shapes):
                weight = torch.empty(o, i)
                bias = torch.zeros(o)
                if config.ortho_init:
                    gain = head_gain if n == len(shapes) - 1 else math.sqrt(2)
                    torch.nn.init.orthogonal_(weight, gain=gain, generator=gen)
                else:
                    torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=gen)
                    torch.nn.init.uniform_(bias, -1 / math.sqrt(i), 1 / math.sqrt(i), generator=gen)
                parts += [weight.T.reshape(-1), bias]
        if self.log_std:
            parts.append(torch.full((self.log_std,), config.log_std_init))
        return torch.cat(parts).to(device=config.device, dtype=config.torch_dtype)


_PLAIN: dict[str, Callable[[Tensor], Tensor]] = {"tanh": torch.tanh, "relu": torch.relu}
"""The hidden layers' activations, by ``EngineConfig.activation`` (their names:
:data:`autorl.engine.parts.ACTIVATIONS`)."""


Layers = list[tuple[Tensor, Tensor]]
"""An MLP's layers, each a weight ``[k, in, out]`` and a bias ``[k, 1, out]`` (from :meth:`_Layout.split`)."""


def _forward(layers: Layers, x: Tensor, activation: Callable[[Tensor], Tensor]) -> Tensor:
    """``x`` ``[k, n, in]`` through every member's MLP at once, one op at a time: ``[k, n, out]``."""
    for weight, bias in layers[:-1]:
        x = activation(torch.baddbmm(bias, x, weight))
    weight, bias = layers[-1]
    return torch.baddbmm(bias, x, weight)


def _mlp(layers: Layers, x: Tensor, activation: str, *, exact: bool = True) -> Tensor:
    """``x`` ``[k, n, in]`` through every member's MLP at once: ``[k, n, out]``.

    Differentiated (the update, most of the engine's time), the whole MLP is one autograd node
    (:class:`_FusedMLP`) whose tanh is :func:`_hidden`'s ``2 sigmoid(2z) - 1``, within 2e-7 of
    ``torch.tanh`` in float32. Without gradients ``torch.tanh`` itself, so that rollouts and evaluation
    stay SB3's and :func:`~autorl.engine.ppo.load_policy`'s to float32 rounding; ``exact=False`` takes
    the sigmoid form there too (the critic's values for GAE, where no action depends on it).
    """
    params = [p for layer in layers for p in layer]
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
        return _FusedMLP.apply(x, activation, *params)  # type: ignore[no-any-return]
    if exact:
        return _forward(layers, x, _PLAIN[activation])
    for weight, bias in layers[:-1]:
        x = _hidden(x, weight, bias, activation)
    weight, bias = layers[-1]
    return _head(x, weight, bias)


_NARROW = 8
"""Layers with at most this many outputs (the heads: a value, an action's logits or means) run as the
transposed product, which ran 2.3-4.6x faster here for 1-8 outputs and slower from 16 on
(``benchmarks/engine_kernels.py --only-heads``)."""


def _head(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``bias + x @ weight`` ``[k, n, out]``; a narrow layer as ``(bias^T + weight^T x^T)^T``, the
    orientation MKL runs fast (``[8, 256, 64]`` to one output: 111 against 35 us on one thread)."""
    if weight.shape[2] <= _NARROW:
        return torch.baddbmm(bias.transpose(1, 2), weight.transpose(1, 2), x.transpose(1, 2)).transpose(1, 2)
    return torch.baddbmm(bias, x, weight)


def _hidden(x: Tensor, weight: Tensor, bias: Tensor, activation: str) -> Tensor:
    """A hidden layer, its activation written in place; tanh as ``2 sigmoid(2z) - 1``, the first 2
    folded into the layer (on one CPU thread here ``torch.tanh`` took 3.5x as long)."""
    if activation == "tanh":
        return torch.baddbmm(bias, x, weight, beta=2, alpha=2).sigmoid_().mul_(2).sub_(1)
    return torch.baddbmm(bias, x, weight).relu_()


class _FusedMLP(torch.autograd.Function):
    """An MLP of k members (``baddbmm`` layers) as one autograd node, with a hand-written backward.

    On one CPU thread here (benchmarks/engine_kernels.py) a minibatch's loss and gradient took 0.69-0.73x
    the time of autograd over plain ops with ``torch.tanh``: tanh is :func:`_hidden`'s (forward and
    backward 137 against 389 us on ``[8, 256, 64]``), the activations are written in place, the backward
    reads tanh's output (``g (1 - y^2)``) and runs every weight gradient's batched matmul in the
    orientation MKL runs fast (``x^T g`` took 6x as long as ``(g^T x)^T`` for a head of two outputs),
    and autograd keeps one node instead of a dozen.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, activation: str, *params: Tensor) -> Tensor:
        weights, biases = params[0::2], params[1::2]
        inputs = [x]
        for weight, bias in zip(weights[:-1], biases[:-1], strict=True):
            inputs.append(_hidden(inputs[-1], weight, bias, activation))
        ctx.save_for_backward(*inputs, *weights)
        ctx.activation = activation
        return _head(inputs[-1], weights[-1], biases[-1])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        saved = ctx.saved_tensors
        n = len(saved) // 2
        inputs, weights = saved[:n], saved[n:]
        grads: list[Tensor | None] = [None] * (2 * n)
        grad_x = None
        for i in reversed(range(n)):
            h = inputs[i]
            grads[2 * i] = _weight_grad(h, grad)
            grads[2 * i + 1] = grad.sum(1, keepdim=True)
            if i == 0 and not ctx.needs_input_grad[0]:
                break
            weight = weights[i].transpose(1, 2)
            # one output (the value head): a broadcast product, not a matmul of inner size 1 (28 vs 8 us)
            back = grad * weight if weight.shape[1] == 1 else torch.bmm(grad, weight)
            if i == 0:
                grad_x = back
                break
            if ctx.activation == "tanh":  # g (1 - y^2), in place on the fresh tensor
                back.addcmul_(back, h * h, value=-1)
            else:
                back.masked_fill_(h <= 0, 0.0)
            grad = back
        return (grad_x, None, *grads)


def _weight_grad(x: Tensor, grad: Tensor) -> Tensor:
    """``x^T grad`` ``[k, in, out]`` (``x`` ``[k, n, in]``, ``grad`` ``[k, n, out]``), as the batched
    matmul whose right operand is the wider, the orientation that ran fast here."""
    if grad.shape[2] >= x.shape[2]:
        return torch.bmm(x.transpose(1, 2), grad)
    return torch.bmm(grad.transpose(1, 2), x).transpose(1, 2)


def _entropy_categorical(log_probs: Tensor) -> Tensor:
    """The entropies ``[...]`` of categorical distributions given by their log probabilities ``[..., n]``."""
    # clamped as torch.distributions.Categorical does, so that p = 0 gives 0, not 0 * -inf
    return -(log_probs.clamp(min=torch.finfo(log_probs.dtype).min) * log_probs.exp()).sum(-1)
