"""The actor-critic networks of k members as one flat parameter tensor ``[k, n_params]``: where each
layer sits in it (:class:`_Layout`), SB3's initialisation, and the forward pass of every member's MLP
at once (:func:`_mlp`, one ``torch.baddbmm`` per layer), and the entropy of a categorical policy."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:  # config names this module's tanh among its activations
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
        return torch.cat(parts).to(device=config.device, dtype=config.dtype)


class _SigmoidTanh(torch.autograd.Function):
    """tanh whose backward reads its output (``g * (1 - y^2)``), both written in cheap ops."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor) -> Tensor:
        y = _tanh_value(x)
        ctx.save_for_backward(y)  # type: ignore[attr-defined]
        return y

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return torch.addcmul(grad, grad, y * y, value=-1)


def _tanh_value(x: Tensor) -> Tensor:
    return torch.sigmoid(x * 2).mul_(2).sub_(1)


def tanh(x: Tensor) -> Tensor:
    """``tanh(x)``; where it is differentiated (the update's forward and backward, most of its cost)
    as ``2 sigmoid(2x) - 1`` with a backward ``g (1 - y^2)``: on one CPU thread here torch.tanh and its
    backward took 3.5x and 1.9-2.1x as long (benchmarks/engine_kernels.py). Within 2e-7 of torch.tanh in
    float32 (absolute); rollouts and evaluation keep torch.tanh, so they stay SB3's to 1e-5."""
    return _SigmoidTanh.apply(x) if x.requires_grad else torch.tanh(x)  # type: ignore[no-any-return]


def _mlp(layers: list[tuple[Tensor, Tensor]], x: Tensor, activation: Callable[[Tensor], Tensor]) -> Tensor:
    """``x`` ``[k, n, in]`` through every member's MLP at once: ``[k, n, out]``."""
    for weight, bias in layers[:-1]:
        x = activation(torch.baddbmm(bias, x, weight))
    weight, bias = layers[-1]
    return torch.baddbmm(bias, x, weight)


def _entropy_categorical(log_probs: Tensor) -> Tensor:
    """The entropies ``[...]`` of categorical distributions given by their log probabilities ``[..., n]``."""
    # clamped as torch.distributions.Categorical does, so that p = 0 gives 0, not 0 * -inf
    return -(log_probs.clamp(min=torch.finfo(log_probs.dtype).min) * log_probs.exp()).sum(-1)
