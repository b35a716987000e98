"""RELICv2 (Tomasev et al., 2022): contrastive learning with an explicit invariance term, on sklearn digits.

Two augmented views of each image pass through an online network (small ResNet encoder, projector,
predictor) and an EMA target network (encoder, projector). The loss per view pair is InfoNCE between online
and target projections, with the other images of the batch as negatives, plus ``invariance_weight`` times the
KL divergence between the two views' softmax similarity distributions over the batch's targets. The metric is
a linear probe: logistic regression on frozen encoder features of a few labelled training images, scored on
the validation split.

Config keys (defaults in :class:`RelicConfig`): ``learning_rate``, ``weight_decay``, ``batch_size``,
``temperature``, ``invariance_weight``, ``ema_decay``, ``aug_strength``, ``width``, ``proj_dim``,
``probe_per_class``, ``data_seed``, ``val_fraction``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autorl.errors import ConfigError
from autorl.targets.base import TrialContext
from autorl.targets.models._data import ModelTarget, check_fraction, check_range, load_digits_split

IMAGE_SIZE = 16
# Keys reconfigure() may change mid-run; the others fix the networks or the data.
MUTABLE = ("learning_rate", "temperature", "invariance_weight", "ema_decay", "aug_strength")


@dataclass(frozen=True)
class RelicConfig:
    """Hyperparameters of :class:`RelicV2Target`; every field is a config key.

    Attributes:
        invariance_weight: weight of the KL invariance term (the paper's alpha).
        ema_decay: decay of the target network's exponential moving average.
        aug_strength: scales every augmentation (crop scale and shift, intensity jitter, noise); 0 is none.
        width: channels of the encoder's first stage (the second has twice as many).
        probe_per_class: labelled training images per class the linear probe is fitted on (0: all).
        data_seed: seed of the train/validation split (kept fixed across trials so they compare).
    """

    learning_rate: float = 2.0e-3
    weight_decay: float = 1.0e-4
    batch_size: int = 128
    temperature: float = 0.2
    invariance_weight: float = 1.0
    ema_decay: float = 0.99
    aug_strength: float = 1.0
    width: int = 16
    proj_dim: int = 64
    probe_per_class: int = 10
    data_seed: int = 0
    val_fraction: float = 0.2

    def __post_init__(self) -> None:
        for key in ("learning_rate", "weight_decay", "invariance_weight"):
            check_range(key, getattr(self, key), 0.0)
        if self.temperature <= 0:
            raise ConfigError(f"must be > 0, got {self.temperature}", "temperature")
        if not 0.0 <= self.ema_decay <= 1.0:
            raise ConfigError(f"must lie in [0, 1], got {self.ema_decay}", "ema_decay")
        if self.aug_strength < 0:
            raise ConfigError(f"must be >= 0, got {self.aug_strength}", "aug_strength")
        if self.batch_size < 2:
            raise ConfigError(
                f"must be >= 2 (the batch supplies the negatives), got {self.batch_size}", "batch_size"
            )
        if self.width < 4 or self.width % 4:
            raise ConfigError(
                f"must be a positive multiple of 4 (GroupNorm's groups), got {self.width}", "width"
            )
        check_range("proj_dim", self.proj_dim, 1)
        check_range("probe_per_class", self.probe_per_class, 0)
        check_fraction("val_fraction", self.val_fraction)


def augment(images: torch.Tensor, strength: float, rng: torch.Generator) -> torch.Tensor:
    """A random view of each ``(B, 1, H, W)`` image: resized crop with shift, intensity jitter, noise."""
    b = images.shape[0]

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(b, *shape, generator=rng)

    # An affine grid is a random resized crop: zoom in by up to 1 / (1 - 0.35 s), shift by up to 0.2 s.
    scale = uniform(1.0 - 0.35 * strength, 1.0)
    shift = uniform(-0.2 * strength, 0.2 * strength, 2)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    views = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    gain = uniform(1.0 - 0.4 * strength, 1.0 + 0.4 * strength, 1, 1, 1)
    offset = uniform(-0.1 * strength, 0.1 * strength, 1, 1, 1)
    noise = 0.1 * strength * torch.randn(views.shape, generator=rng)
    return (views * gain + offset + noise).clamp(0.0, 1.0)


class BasicBlock(nn.Module):
    """ResNet basic block with GroupNorm (no batch statistics, so online and EMA networks behave alike)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(4, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(4, cout)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.GroupNorm(4, cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(out)) + self.skip(x))


def make_encoder(width: int) -> nn.Sequential:
    """Stem plus three basic blocks, 16x16 -> 4x4, globally pooled to ``2 * width`` features."""
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1, bias=False),
        nn.GroupNorm(4, width),
        nn.ReLU(),
        BasicBlock(width, width, 1),
        BasicBlock(width, 2 * width, 2),
        BasicBlock(2 * width, 2 * width, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def mlp(cin: int, hidden: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, cout))


@dataclass
class RelicLoss:
    """The loss of one step and its parts (tensors, so ``total`` can be back-propagated)."""

    total: torch.Tensor
    contrastive: torch.Tensor
    invariance: torch.Tensor


def relic_loss(
    online: tuple[torch.Tensor, torch.Tensor],
    target: tuple[torch.Tensor, torch.Tensor],
    temperature: float,
    invariance_weight: float,
) -> RelicLoss:
    """RELIC loss of two views.

    Args:
        online: online predictions of view 1 and view 2, each ``(B, D)``.
        target: target projections of view 1 and view 2 (gradients are not taken through them).

    For each target view ``a``, the online view ``b != a`` is scored against all of ``a``'s targets: InfoNCE
    with the same image as positive. The invariance term is ``KL(p(view 1) || p(view 2))``, where ``p(view
    b)`` is the softmax over the batch of the online view ``b``'s similarities to ``a``'s targets, averaged
    over ``a``; it vanishes when the views are identical.
    """
    z = [F.normalize(o, dim=1) for o in online]
    t = [F.normalize(x.detach(), dim=1) for x in target]
    labels = torch.arange(z[0].shape[0])
    contrastive = z[0].new_zeros(())
    invariance = z[0].new_zeros(())
    for a in (0, 1):
        logits = [z[b] @ t[a].T / temperature for b in (0, 1)]
        contrastive = contrastive + F.cross_entropy(logits[1 - a], labels) / 2
        log_p1, log_p2 = F.log_softmax(logits[0], dim=1), F.log_softmax(logits[1], dim=1)
        invariance = invariance + F.kl_div(log_p2, log_p1, log_target=True, reduction="batchmean") / 2
    return RelicLoss(contrastive + invariance_weight * invariance, contrastive, invariance)


def _probe_indices(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """The first ``per_class`` images of each class in a seeded order (all of them for 0)."""
    if per_class <= 0:
        return np.arange(len(labels))
    order = np.random.default_rng(seed).permutation(len(labels))
    chosen = [order[labels[order] == c][:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(chosen))


class RelicV2Target(ModelTarget):
    """Trainable RELICv2: one budget unit is one Adam step on a batch of view pairs; reports ``probe_acc``."""

    name = "models:relicv2"
    config_class = RelicConfig
    mutable = MUTABLE
    checkpoint = "relicv2.pt"
    checkpointed = ("online", "target", "optimizer", "rng", "last")
    steps_key = "steps"
    cfg: RelicConfig

    def load_data(self, seed: int) -> None:
        x_train, y_train, x_val, y_val = load_digits_split(self.cfg.data_seed, self.cfg.val_fraction)
        self.x_train = _upsample(x_train)
        self.x_val, self.y_val = _upsample(x_val), y_val.numpy()
        probe = _probe_indices(y_train.numpy(), self.cfg.probe_per_class, self.cfg.data_seed)
        self.x_probe, self.y_probe = self.x_train[probe], y_train.numpy()[probe]

    def build(self, ctx: TrialContext) -> None:
        c = self.cfg
        self.online = nn.ModuleDict(
            {
                "encoder": make_encoder(c.width),
                "projector": mlp(2 * c.width, 128, c.proj_dim),
                "predictor": mlp(c.proj_dim, 128, c.proj_dim),
            }
        )
        self.target = nn.ModuleDict(
            {
                "encoder": copy.deepcopy(self.online["encoder"]),
                "projector": copy.deepcopy(self.online["projector"]),
            }
        )
        self.target.requires_grad_(False)
        self.optimizer = torch.optim.AdamW(
            self.online.parameters(), lr=c.learning_rate, weight_decay=c.weight_decay
        )
        self.rng = torch.Generator().manual_seed(ctx.seed)
        self.last = {"loss": math.nan, "contrastive": math.nan, "invariance": math.nan}

    def _online(self, x: torch.Tensor) -> torch.Tensor:
        return self.online["predictor"](self.online["projector"](self.online["encoder"](x)))

    @torch.no_grad()
    def _target(self, x: torch.Tensor) -> torch.Tensor:
        return self.target["projector"](self.target["encoder"](x))

    @torch.no_grad()
    def _ema_update(self) -> None:
        for name in ("encoder", "projector"):
            for pt, po in zip(self.target[name].parameters(), self.online[name].parameters(), strict=True):
                pt.lerp_(po, 1.0 - self.cfg.ema_decay)

    def step(self) -> float:
        n = len(self.x_train)
        idx = torch.randint(n, (min(self.cfg.batch_size, n),), generator=self.rng)
        x = self.x_train[idx]
        v1, v2 = augment(x, self.cfg.aug_strength, self.rng), augment(x, self.cfg.aug_strength, self.rng)
        loss = relic_loss(
            (self._online(v1), self._online(v2)),
            (self._target(v1), self._target(v2)),
            self.cfg.temperature,
            self.cfg.invariance_weight,
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        self.optimizer.step()
        self._ema_update()
        self.last = {
            "loss": loss.total.item(),
            "contrastive": loss.contrastive.item(),
            "invariance": loss.invariance.item(),
        }
        return self.last["loss"]

    def report(self, train_loss: float) -> dict[str, float]:
        """``probe_acc`` and the last step's losses."""
        return {**self.evaluate(), **self.last}

    def evaluate(self) -> dict[str, float]:
        """``probe_acc``: see :meth:`probe_accuracy`."""
        return {"probe_acc": self.probe_accuracy()}

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> np.ndarray:
        """Frozen online-encoder features of ``(N, 1, 16, 16)`` images."""
        return self.online["encoder"](x).numpy().astype(np.float64)

    def probe_accuracy(self) -> float:
        """Accuracy on the validation split of a logistic regression fitted on frozen probe features."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(self.features(self.x_probe))
        clf = LogisticRegression(max_iter=1000, C=1.0)
        clf.fit(scaler.transform(self.features(self.x_probe)), self.y_probe)
        return float(clf.score(scaler.transform(self.features(self.x_val)), self.y_val))


def _upsample(images: torch.Tensor) -> torch.Tensor:
    return F.interpolate(
        images.unsqueeze(1), size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False
    )


check_args = RelicV2Target.check
