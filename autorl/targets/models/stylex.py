"""StylEx (Lang et al., 2021, "Explaining in Style") on sklearn digits, with AttFind.

A fixed digit classifier is trained first (deterministically, once per process). Then an encoder and a
small StyleGAN2-like generator are trained together: the encoder and a mapping MLP give ``w``; the
classifier's logits are concatenated to ``w``; per-layer affine maps turn that into style vectors that
modulate (and demodulate) the generator's convolutions. The concatenated style vectors are the StyleSpace.
The losses are pixel reconstruction, the KL between the classifier's outputs on the image and on its
reconstruction, and optionally a non-saturating adversarial term against a tiny discriminator.

AttFind then searches the StyleSpace: every coordinate is shifted by ``+/- attfind_shift`` standard
deviations on a set of training images, and the top ``top_k`` distinct coordinates that most lower the
classifier's probability of its original class are chosen greedily (each choice drops the images it already
flips, as in the paper). ``flip_rate`` is the fraction of validation images whose predicted class changes when
all ``top_k`` shifts are applied together.

Config keys (defaults in :class:`StylExConfig`): ``learning_rate``, ``batch_size``, ``style_dim``,
``channels``, ``recon_loss``, ``recon_weight``, ``kl_weight``, ``adv_weight``, ``attfind_shift``,
``top_k``, ``attfind_images``, ``data_seed``, ``val_fraction``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from autorl.errors import ConfigError
from autorl.targets.base import TrialContext
from autorl.targets.models._data import ModelTarget, check_fraction, check_range, load_digits_split

NUM_CLASSES = 10
# Keys reconfigure() may change mid-run: the learning rate and the loss weights.
MUTABLE = ("learning_rate", "recon_weight", "kl_weight", "adv_weight")
_CLASSIFIERS: dict[tuple[int, float], nn.Module] = {}


@dataclass(frozen=True)
class StylExConfig:
    """Hyperparameters of :class:`StylExTarget`; every field is a config key.

    Attributes:
        style_dim: size of ``w`` (the encoder's and mapping network's output).
        channels: feature channels of every generator layer; the StyleSpace has ``4 * channels`` coordinates.
        recon_loss: ``"l1"`` or ``"l2"`` pixel reconstruction.
        adv_weight: weight of the adversarial term; 0 (default) skips the discriminator entirely.
        attfind_shift: AttFind moves a style coordinate by this many of its standard deviations.
        top_k: how many StyleSpace coordinates AttFind selects and applies.
        attfind_images: training images AttFind selects the coordinates on.
        data_seed: seed of the train/validation split; also picks which classifier is used.
    """

    learning_rate: float = 1.0e-3
    batch_size: int = 64
    style_dim: int = 32
    channels: int = 16
    recon_loss: str = "l1"
    recon_weight: float = 1.0
    kl_weight: float = 1.0
    adv_weight: float = 0.0
    attfind_shift: float = 3.0
    top_k: int = 4
    attfind_images: int = 32
    data_seed: int = 0
    val_fraction: float = 0.2

    def __post_init__(self) -> None:
        for key in ("batch_size", "style_dim", "channels"):
            check_range(key, getattr(self, key), 1)
        check_range("learning_rate", self.learning_rate, 0.0)
        if self.recon_loss not in ("l1", "l2"):
            raise ConfigError(f"must be 'l1' or 'l2', got {self.recon_loss!r}", "recon_loss")
        if not 1 <= self.top_k <= 4 * self.channels:
            raise ConfigError(
                f"1 <= top_k <= 4 * channels must hold, "
                f"but got (top_k={self.top_k}, channels={self.channels})",
                "top_k",
            )
        for key in ("recon_weight", "kl_weight", "adv_weight", "attfind_shift"):
            if getattr(self, key) < 0:
                raise ConfigError(f"must be >= 0, got {getattr(self, key)}", key)
        # AttFind scales each shift by a standard deviation over these images: one has none.
        check_range("attfind_images", self.attfind_images, 2)
        check_fraction("val_fraction", self.val_fraction)


def _classifier_net() -> nn.Sequential:
    # An MLP: it trains in well under a second on one core, and digits need no more.
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, NUM_CLASSES))


def fixed_classifier(data_seed: int = 0, val_fraction: float = 0.2) -> nn.Module:
    """The frozen digit classifier that StylEx explains: trained once per process and split, always alike.

    It is trained with its own seed inside a forked RNG, so building it neither depends on nor disturbs the
    trial's random state.
    """
    key = (data_seed, val_fraction)
    if key not in _CLASSIFIERS:
        x, y, _, _ = load_digits_split(data_seed, val_fraction)
        x = x.unsqueeze(1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(12345)
            net = _classifier_net()
            opt = torch.optim.Adam(net.parameters(), lr=1.0e-2)
            for _ in range(150):  # full-batch steps; about 98% validation accuracy
                loss = F.cross_entropy(net(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        net.eval().requires_grad_(False)
        _CLASSIFIERS[key] = net
    return _CLASSIFIERS[key]


class ModulatedConv2d(nn.Module):
    """StyleGAN2 convolution whose weights are scaled per input channel by a style, then demodulated.

    Computed in the equivalent unfused form: scale the input channels by the style, convolve with the shared
    weight, and scale each output channel by ``1 / sqrt(sum_{i,k} (w_oik s_i)^2 + eps)``.
    """

    def __init__(self, cin: int, cout: int, kernel: int, demodulate: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel) / math.sqrt(cin * kernel * kernel))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.demodulate = demodulate
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x * style[:, :, None, None], self.weight, padding=self.padding)
        if self.demodulate:
            sq = self.weight.pow(2).sum(dim=(2, 3))  # (cout, cin)
            out = out * torch.rsqrt(style.pow(2) @ sq.T + 1e-8)[:, :, None, None]
        return out + self.bias[None, :, None, None]


class Generator(nn.Module):
    """Learnt 4x4 constant, three modulated 3x3 convs (one after a 2x upsample), modulated 1x1 to pixels."""

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        self.const = nn.Parameter(torch.randn(1, channels, 4, 4))
        self.convs = nn.ModuleList(
            [
                ModulatedConv2d(channels, channels, 3),
                ModulatedConv2d(channels, channels, 3),
                ModulatedConv2d(channels, channels, 3),
                ModulatedConv2d(channels, 1, 1, demodulate=False),
            ]
        )
        affines = [nn.Linear(cond_dim, channels) for _ in self.convs]
        for affine in affines:
            nn.init.ones_(affine.bias)  # styles start near 1, as in StyleGAN2
        self.affines = nn.ModuleList(affines)
        self.channels = channels

    @property
    def stylespace_dim(self) -> int:
        return self.channels * len(self.convs)

    def styles(self, cond: torch.Tensor) -> torch.Tensor:
        """StyleSpace coordinates ``(B, stylespace_dim)``: every layer's style, concatenated."""
        return torch.cat([affine(cond) for affine in self.affines], dim=1)

    def synthesize(self, styles: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 1, 8, 8)`` in ``[0, 1]`` from StyleSpace coordinates."""
        per_layer = styles.split(self.channels, dim=1)
        x = self.const.expand(styles.shape[0], -1, -1, -1)
        for i, (conv, style) in enumerate(zip(self.convs[:-1], per_layer[:-1], strict=True)):
            if i == 1:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = F.leaky_relu(conv(x, style), 0.2)
        return torch.sigmoid(self.convs[-1](x, per_layer[-1]))


class Encoder(nn.Module):
    """Image to ``w``: a small conv net, then the mapping MLP (which also maps random codes for the GAN)."""

    def __init__(self, style_dim: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, style_dim),
        )
        self.mapping = nn.Sequential(
            nn.Linear(style_dim, style_dim), nn.LeakyReLU(0.2), nn.Linear(style_dim, style_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mapping(self.conv(x))


@dataclass(frozen=True)
class Attribute:
    """One StyleSpace direction found by AttFind: shift ``coordinate`` by ``sign`` * shift * std."""

    coordinate: int
    sign: int
    effect: float  # mean drop of the original class's probability on the images still unexplained


def attfind(
    synthesize: Callable[[torch.Tensor], torch.Tensor],
    classifier: nn.Module,
    styles: torch.Tensor,
    shift: float,
    top_k: int,
    chunk: int = 8,
) -> list[Attribute]:
    """Greedily select ``top_k`` distinct StyleSpace coordinates that most flip the classifier.

    Args:
        synthesize: StyleSpace coordinates ``(N, D)`` to images.
        styles: coordinates of the images to search on, ``(N, D)``; their std sets each step size.
        shift: step in standard deviations; both signs are tried.
        chunk: coordinates evaluated per batched generator call.
    """
    n, dim = styles.shape
    if not 1 <= top_k <= dim:
        raise ValueError(f"1 <= top_k <= stylespace dim must hold, but got (top_k={top_k}, dim={dim})")
    with torch.no_grad():
        probs0 = classifier(synthesize(styles)).softmax(dim=1)
        y0 = probs0.argmax(dim=1)
        p0 = probs0.gather(1, y0[:, None]).squeeze(1)
        std = styles.std(dim=0)
        drop = torch.empty(dim, 2, n)
        flipped = torch.empty(dim, 2, n, dtype=torch.bool)
        for start in range(0, dim, chunk):
            coords = torch.arange(start, min(start + chunk, dim))
            steps = torch.zeros(len(coords), 2, dim)
            for j, c in enumerate(coords.tolist()):
                steps[j, 0, c], steps[j, 1, c] = shift * std[c], -shift * std[c]
            moved = (styles[None, None] + steps[:, :, None]).reshape(-1, dim)
            probs = classifier(synthesize(moved)).softmax(dim=1).reshape(len(coords), 2, n, -1)
            target = y0[None, None, :, None].expand(len(coords), 2, n, 1)
            drop[coords] = p0 - probs.gather(3, target).squeeze(3)
            flipped[coords] = probs.argmax(dim=3) != y0
    chosen: list[Attribute] = []
    remaining = torch.ones(n, dtype=torch.bool)
    for _ in range(top_k):
        score = (drop * remaining).sum(dim=2) / remaining.sum()
        for attr in chosen:
            score[attr.coordinate] = -math.inf
        best = int(score.argmax())
        coord, sign_idx = divmod(best, 2)
        chosen.append(Attribute(coord, 1 if sign_idx == 0 else -1, float(score[coord, sign_idx])))
        remaining &= ~flipped[coord, sign_idx]
        if not remaining.any():  # every image is explained: keep choosing on all of them
            remaining[:] = True
    return chosen


def apply_attributes(
    styles: torch.Tensor, attributes: list[Attribute], std: torch.Tensor, shift: float
) -> torch.Tensor:
    """``styles`` with every attribute's shift applied together."""
    out = styles.clone()
    for attr in attributes:
        out[:, attr.coordinate] += attr.sign * shift * std[attr.coordinate]
    return out


def _kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """Mean ``KL(p || q)`` between the softmax distributions of two batches of logits."""
    return F.kl_div(
        q_logits.log_softmax(dim=1), p_logits.log_softmax(dim=1), log_target=True, reduction="batchmean"
    )


class StylExTarget(ModelTarget):
    """Trainable StylEx: one budget unit is one Adam step of encoder and generator (and discriminator).

    Reports ``flip_rate`` (AttFind's top-k attributes, validation images), ``recon_mse`` and
    ``label_consistency`` (fraction of validation images whose reconstruction keeps the classifier's label).
    """

    name = "models:stylex"
    config_class = StylExConfig
    mutable = MUTABLE
    checkpoint = "stylex.pt"
    checkpointed = ("encoder", "generator", "discriminator", "optimizer", "d_optimizer", "rng", "last")
    steps_key = "steps"
    cfg: StylExConfig

    def load_data(self, seed: int) -> None:
        c = self.cfg
        x_train, _, x_val, _ = load_digits_split(c.data_seed, c.val_fraction)
        self.x_train, self.x_val = x_train.unsqueeze(1), x_val.unsqueeze(1)
        self.classifier = fixed_classifier(c.data_seed, c.val_fraction)
        with torch.no_grad():
            self.logits_train, self.logits_val = self.classifier(self.x_train), self.classifier(self.x_val)
        # AttFind searches on a fixed set of training images, chosen by the split seed.
        order = torch.randperm(len(self.x_train), generator=torch.Generator().manual_seed(c.data_seed))
        self.attfind_idx = order[: c.attfind_images]

    def build(self, ctx: TrialContext) -> None:
        c = self.cfg
        self.encoder = Encoder(c.style_dim)
        self.generator = Generator(c.style_dim + NUM_CLASSES, c.channels)
        self.discriminator = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(16 * 4 * 4, 1),
        )
        params = [*self.encoder.parameters(), *self.generator.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=c.learning_rate, betas=(0.5, 0.99))
        self.d_optimizer = torch.optim.Adam(
            self.discriminator.parameters(), lr=c.learning_rate, betas=(0.5, 0.99)
        )
        self.rng = torch.Generator().manual_seed(ctx.seed)
        self.last: dict[str, float] = {"loss": math.nan}
        self.attributes: list[Attribute] = []

    def stylespace(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """StyleSpace coordinates of images, conditioned on the classifier's logits for them."""
        return self.generator.styles(torch.cat([self.encoder(x), logits], dim=1))

    def step(self) -> float:
        c, n = self.cfg, len(self.x_train)
        idx = torch.randint(n, (min(c.batch_size, n),), generator=self.rng)
        x, logits = self.x_train[idx], self.logits_train[idx]
        recon = self.generator.synthesize(self.stylespace(x, logits))
        pixel = F.l1_loss(recon, x) if c.recon_loss == "l1" else F.mse_loss(recon, x)
        kl = _kl(logits, self.classifier(recon))
        loss = c.recon_weight * pixel + c.kl_weight * kl
        if c.adv_weight > 0:
            fake = self._random_images(logits)
            loss = loss + c.adv_weight * F.softplus(-self.discriminator(fake)).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if c.adv_weight > 0:
            self._discriminator_step(x, logits)
        self.last = {"loss": loss.item(), "pixel_loss": pixel.item(), "kl_loss": kl.item()}
        return self.last["loss"]

    def report(self, train_loss: float) -> dict[str, float]:
        """AttFind's and the reconstructions' metrics (:meth:`evaluate`) and the last step's losses."""
        return {**self.evaluate(), **self.last}

    def _random_images(self, logits: torch.Tensor) -> torch.Tensor:
        z = torch.randn(logits.shape[0], self.cfg.style_dim, generator=self.rng)
        w = self.encoder.mapping(z)
        return self.generator.synthesize(self.generator.styles(torch.cat([w, logits], dim=1)))

    def _discriminator_step(self, x: torch.Tensor, logits: torch.Tensor) -> None:
        with torch.no_grad():
            fake = self._random_images(logits)
        d_loss = F.softplus(self.discriminator(fake)).mean() + F.softplus(-self.discriminator(x)).mean()
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Run AttFind on the search images and score its attributes and the reconstructions on validation."""
        c = self.cfg
        search = self.stylespace(self.x_train[self.attfind_idx], self.logits_train[self.attfind_idx])
        self.attributes = attfind(
            self.generator.synthesize, self.classifier, search, c.attfind_shift, c.top_k
        )
        styles = self.stylespace(self.x_val, self.logits_val)
        recon = self.generator.synthesize(styles)
        pred = self.logits_val.argmax(dim=1)
        consistent = self.classifier(recon).argmax(dim=1) == pred
        moved = apply_attributes(styles, self.attributes, search.std(dim=0), c.attfind_shift)
        flipped = self.classifier(self.generator.synthesize(moved)).argmax(dim=1) != pred
        # A flip counts only where the reconstruction kept the label: else the attributes did not cause it.
        return {
            "flip_rate": float((consistent & flipped).float().mean()),
            "recon_mse": float(F.mse_loss(recon, self.x_val)),
            "label_consistency": float(consistent.float().mean()),
        }


check_args = StylExTarget.check
