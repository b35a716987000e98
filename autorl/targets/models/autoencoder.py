"""Autoencoders on the 8x8 digits (Michelucci 2022, "An Introduction to Autoencoders").

An encoder maps an image to a latent code, a decoder maps the code back; both are trained to minimise
the reconstruction error. Three variants from the tutorial are implemented:

- ``plain``: reconstruct the input.
- ``denoising``: reconstruct the clean image from a copy corrupted with Gaussian noise (``noise_std``).
- ``sparse``: add an L1 penalty on the code's activations (``sparsity_weight``) to the loss.

The budget unit is one optimiser step. The metric ``val_mse`` is the mean squared reconstruction error
per pixel on clean validation images (lower is better).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from autorl.targets.base import TrialContext
from autorl.targets.models._data import (
    BatchSampler,
    ModelTarget,
    check_choice,
    check_fraction,
    check_range,
    load_digits_split,
)

ARCHS = ("mlp", "conv")
VARIANTS = ("plain", "denoising", "sparse")
# Keys reconfigure() may change mid-run; the others fix the architecture or the data.
MUTABLE = ("learning_rate", "noise_std", "sparsity_weight")


@dataclass(frozen=True)
class AutoencoderConfig:
    """Hyperparameters of :class:`AutoencoderTarget`; every field is a config key.

    Attributes:
        arch: ``mlp`` (fully connected on the 64 pixels) or ``conv`` (3x3 convolutions).
        latent_dim: size of the code.
        depth: hidden layers in the encoder (the decoder mirrors it).
        width: units per hidden layer of the ``mlp`` encoder and decoder.
        channels: feature maps per convolution of the ``conv`` encoder and decoder.
        variant: ``plain``, ``denoising`` or ``sparse``.
        noise_std: standard deviation of the input noise (``denoising`` only).
        sparsity_weight: weight of the mean absolute code activation in the loss (``sparse`` only).
        learning_rate: Adam's step size.
        batch_size: images per optimiser step.
        val_fraction: share of the 1797 digits held out for ``val_mse``; the split follows the seed.
        num_threads: torch CPU threads (1 keeps parallel trials from competing for cores).
    """

    arch: str = "mlp"
    latent_dim: int = 16
    depth: int = 2
    width: int = 128
    channels: int = 16
    variant: str = "plain"
    noise_std: float = 0.2
    sparsity_weight: float = 1.0e-3
    learning_rate: float = 1.0e-3
    batch_size: int = 64
    val_fraction: float = 0.2
    num_threads: int = 1

    def __post_init__(self) -> None:
        check_choice("arch", self.arch, ARCHS)
        check_choice("variant", self.variant, VARIANTS)
        check_range("latent_dim", self.latent_dim, 1)
        check_range("depth", self.depth, 1)
        check_range("width", self.width, 1)
        check_range("channels", self.channels, 1)
        check_range("noise_std", self.noise_std, 0.0)
        check_range("sparsity_weight", self.sparsity_weight, 0.0)
        check_range("learning_rate", self.learning_rate, 0.0)
        check_range("batch_size", self.batch_size, 1)
        check_fraction("val_fraction", self.val_fraction)
        check_range("num_threads", self.num_threads, 1)


def _mlp(sizes: list[int]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return layers


class Autoencoder(nn.Module):
    """Encoder and decoder for ``(B, 8, 8)`` images in ``[0, 1]``; the decoder ends in a sigmoid."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        if cfg.arch == "mlp":
            hidden = [cfg.width] * cfg.depth
            self.encoder = nn.Sequential(nn.Flatten(), *_mlp([64, *hidden, cfg.latent_dim]))
            self.decoder = nn.Sequential(*_mlp([cfg.latent_dim, *hidden, 64]), nn.Unflatten(1, (8, 8)))
        else:
            c = cfg.channels
            # The first convolution halves the 8x8 grid to 4x4, the rest keep it; the decoder mirrors
            # this with one transposed convolution back to 8x8.
            enc: list[nn.Module] = [
                nn.Unflatten(1, (1, 8)),
                nn.Conv2d(1, c, 3, stride=2, padding=1),
                nn.ReLU(),
            ]
            for _ in range(cfg.depth - 1):
                enc += [nn.Conv2d(c, c, 3, padding=1), nn.ReLU()]
            enc += [nn.Flatten(), nn.Linear(c * 16, cfg.latent_dim)]
            self.encoder = nn.Sequential(*enc)
            dec: list[nn.Module] = [nn.Linear(cfg.latent_dim, c * 16), nn.ReLU(), nn.Unflatten(1, (c, 4, 4))]
            for _ in range(cfg.depth - 1):
                dec += [nn.Conv2d(c, c, 3, padding=1), nn.ReLU()]
            dec += [nn.ConvTranspose2d(c, 1, 4, stride=2, padding=1), nn.Flatten(1, 2)]
            self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(reconstruction, code)``."""
        code = self.encoder(x)
        return torch.sigmoid(self.decoder(code)), code


class AutoencoderTarget(ModelTarget):
    """Trainable autoencoder on the digits; ``train(n)`` takes ``n`` Adam steps, then evaluates."""

    name = "models:autoencoder"
    config_class = AutoencoderConfig
    mutable = MUTABLE
    checkpoint = "autoencoder.pt"
    checkpointed = ("model", "optimizer", "sampler", "noise")
    train_modules = ("model",)
    cfg: AutoencoderConfig

    def load_data(self, seed: int) -> None:
        self.x_train, _, self.x_val, _ = load_digits_split(seed, self.cfg.val_fraction)

    def build(self, ctx: TrialContext) -> None:
        self.model = Autoencoder(self.cfg)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.learning_rate)
        self.sampler = BatchSampler(len(self.x_train), self.cfg.batch_size, seed=ctx.seed + 1)
        self.noise = torch.Generator().manual_seed(ctx.seed + 2)

    def step(self) -> float:
        x = self.x_train[self.sampler.next()]
        inputs = x
        if self.cfg.variant == "denoising":
            inputs = x + self.cfg.noise_std * torch.randn(x.shape, generator=self.noise)
        recon, code = self.model(inputs)
        loss = F.mse_loss(recon, x)
        if self.cfg.variant == "sparse":
            loss = loss + self.cfg.sparsity_weight * code.abs().mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """``val_mse`` on clean validation images and the mean absolute code activation."""
        self.model.eval()
        recon, code = self.model(self.x_val)
        return {"val_mse": F.mse_loss(recon, self.x_val).item(), "code_l1": code.abs().mean().item()}


check_args = AutoencoderTarget.check
