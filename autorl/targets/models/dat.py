"""DAT: a vision transformer with deformable attention (Xia et al., 2022) classifying sklearn digits.

A tiny pyramid: a strided-conv patch embedding, then stages that halve the resolution and double the width.
Stages named in ``deform_stages`` use deformable multi-head attention (keys and values are bilinearly sampled
at reference points moved by learnt, bounded offsets); the others use plain window attention (global when the
map fits one window). Digits are upsampled from 8x8 to 16x16 so the first stage has an 8x8 token map.

Config keys (defaults in :class:`DATConfig`): ``learning_rate``, ``weight_decay``, ``batch_size``, ``dim``,
``depth``, ``heads``, ``num_stages``, ``deform_stages``, ``offset_groups``, ``offset_range_factor``,
``offset_kernel``, ``ref_stride``, ``window``, ``mlp_ratio``, ``data_seed``, ``val_fraction``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from autorl.errors import ConfigError
from autorl.targets.base import TrialContext
from autorl.targets.models._data import ModelTarget, check_fraction, check_range, load_digits_split

IMAGE_SIZE = 16
NUM_CLASSES = 10
MUTABLE = ("learning_rate", "weight_decay")


@dataclass(frozen=True)
class DATConfig:
    """Hyperparameters of :class:`DATTarget`; every field is a config key.

    Attributes:
        deform_stages: 1-based stage numbers that use deformable attention, as ``"2,3"``, a list of ints,
            or ``"none"``. The paper deforms its last two of four stages.
        offset_groups: offset groups; each group of channels gets its own offsets. Must divide ``heads``.
        offset_range_factor: offsets are bounded by ``tanh(.) * factor`` in units of half a reference-grid
            cell (as in the paper's ``offset_range_factor``).
        offset_kernel: kernel size (odd) of the offset network's depthwise convolution.
        ref_stride: downsampling of the reference grid relative to the query map.
        window: side of the attention windows in non-deformable stages.
        data_seed: seed of the train/validation split (kept fixed across trials so they compare).
    """

    learning_rate: float = 2.0e-3
    weight_decay: float = 0.05
    batch_size: int = 64
    dim: int = 32
    depth: int = 1
    heads: int = 2
    num_stages: int = 3
    deform_stages: Any = "2,3"
    offset_groups: int = 2
    offset_range_factor: float = 2.0
    offset_kernel: int = 3
    ref_stride: int = 2
    window: int = 4
    mlp_ratio: float = 2.0
    data_seed: int = 0
    val_fraction: float = 0.2

    def stages_deformed(self) -> set[int]:
        """The deformable stages as 1-based ints."""
        spec = self.deform_stages
        if isinstance(spec, str):
            parts: list[Any] = [p.strip() for p in spec.replace(" ", ",").split(",")]
            parts = [p for p in parts if p and p.lower() != "none"]
        else:
            parts = list(spec) if isinstance(spec, list | tuple) else [spec]
        if not all(
            (isinstance(p, int) and not isinstance(p, bool)) or (isinstance(p, str) and p.isdigit())
            for p in parts
        ):
            raise ConfigError(
                f"must be stage numbers like '2,3', a list of ints or 'none', got {spec!r}", "deform_stages"
            )
        stages = {int(p) for p in parts}
        bad = sorted(s for s in stages if not 1 <= s <= self.num_stages)
        if bad:
            raise ConfigError(
                f"stages must lie in 1..num_stages={self.num_stages}, got {bad}", "deform_stages"
            )
        return stages

    def __post_init__(self) -> None:
        for key in ("batch_size", "dim", "depth", "heads", "offset_groups", "ref_stride", "window"):
            check_range(key, getattr(self, key), 1)
        for key in ("learning_rate", "weight_decay", "offset_range_factor", "mlp_ratio"):
            check_range(key, getattr(self, key), 0.0)
        check_fraction("val_fraction", self.val_fraction)
        if self.heads % self.offset_groups != 0:
            raise ConfigError(
                f"heads % offset_groups == 0 must hold (each head reads one offset group), "
                f"but got (heads={self.heads}, offset_groups={self.offset_groups})",
                "offset_groups",
            )
        if self.dim % self.heads != 0:
            raise ConfigError(
                f"dim % heads == 0 must hold, but got (dim={self.dim}, heads={self.heads})", "heads"
            )
        if self.offset_kernel < 1 or self.offset_kernel % 2 == 0:
            raise ConfigError(f"must be a positive odd int, got {self.offset_kernel}", "offset_kernel")
        if not 1 <= self.num_stages <= 3:
            raise ConfigError(f"must lie in 1..3 for 16x16 inputs, got {self.num_stages}", "num_stages")
        self.stages_deformed()


def reference_points(height: int, width: int) -> torch.Tensor:
    """Centres of an ``H x W`` grid, ``(H, W, 2)`` xy, in grid_sample coordinates (align_corners=False)."""
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height * 2 - 1
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width * 2 - 1
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1)


class DeformableAttention(nn.Module):
    """Multi-head attention whose keys and values are sampled at learnt, deformed reference points."""

    def __init__(
        self, dim: int, size: int, heads: int, groups: int, range_factor: float, kernel: int, ref_stride: int
    ) -> None:
        """``size`` is the side of the (square) query map; the others are :class:`DATConfig`'s."""
        super().__init__()
        self.dim, self.size, self.heads, self.groups = dim, size, heads, groups
        self.range_factor = range_factor
        self.ref_stride = ref_stride
        self.group_channels = dim // groups
        self.scale = (dim // heads) ** -0.5
        gc = self.group_channels
        self.q = nn.Conv2d(dim, dim, 1)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        # Shared across groups, as in the paper: each group's query channels go through the same network.
        self.offset_net = nn.Sequential(
            nn.Conv2d(gc, gc, kernel, stride=ref_stride, padding=kernel // 2, groups=gc),
            nn.GELU(),
            nn.Conv2d(gc, 2, 1, bias=False),
        )
        # Relative position bias as in the paper: a per-head table over pixel displacements -(size-1)..size-1,
        # read bilinearly at each query-to-sampled-point displacement (which is continuous).
        self.rpe_table = nn.Parameter(torch.zeros(heads, 2 * size - 1, 2 * size - 1))
        nn.init.trunc_normal_(self.rpe_table, std=0.01)

    def offsets(self, q: torch.Tensor) -> torch.Tensor:
        """Bounded offsets ``(B*groups, Hk, Wk, 2)`` (xy, normalised coordinates) predicted from queries."""
        b, _, h, w = q.shape
        raw = self.offset_net(q.reshape(b * self.groups, self.group_channels, h, w))
        hk, wk = raw.shape[-2:]
        # factor 1 moves a point at most half a reference cell (a cell spans 2/Hk in normalised coordinates).
        bound = torch.tensor([1.0 / wk, 1.0 / hk], dtype=q.dtype) * self.range_factor
        return torch.tanh(raw).permute(0, 2, 3, 1) * bound

    def sample(self, x: torch.Tensor, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample ``x`` per group at reference points plus ``offsets``.

        Returns:
            ``(features (B*groups, C/groups, Hk, Wk), positions (B*groups, Hk, Wk, 2))``.
        """
        b, _, h, w = x.shape
        ref = reference_points(*offsets.shape[1:3]).to(x.dtype)
        pos = (ref + offsets).clamp(-1.0, 1.0)
        grouped = x.reshape(b * self.groups, self.group_channels, h, w)
        return F.grid_sample(grouped, pos, mode="bilinear", align_corners=False), pos

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        hd = c // self.heads
        q = self.q(x)
        sampled, pos = self.sample(x, self.offsets(q))
        n_keys = sampled.shape[-2] * sampled.shape[-1]
        # (B*g, gc, Hk, Wk) -> (B, Ns, C): channel order group-major, so head i reads group i // hpg.
        kv_in = sampled.reshape(b, c, n_keys).transpose(1, 2)
        k = self.k(kv_in).reshape(b, n_keys, self.heads, hd).transpose(1, 2)
        v = self.v(kv_in).reshape(b, n_keys, self.heads, hd).transpose(1, 2)
        qh = q.reshape(b, self.heads, hd, h * w).transpose(2, 3)
        attn = (qh @ k.transpose(2, 3)) * self.scale  # (B, heads, HW, Ns)
        attn = attn + self.position_bias(pos, h, w)
        out = attn.softmax(dim=-1) @ v  # (B, heads, HW, hd)
        out = out.transpose(1, 2).reshape(b, h * w, c)
        return self.proj(out).transpose(1, 2).reshape(b, c, h, w)

    def position_bias(self, pos: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Bias ``(B, heads, h*w, Ns)`` of each query for each point sampled at ``pos`` (B*groups, .., 2)."""
        g, hpg, n_keys = self.groups, self.heads // self.groups, pos.shape[1] * pos.shape[2]
        b = pos.shape[0] // g
        q_pos = reference_points(h, w).to(pos.dtype).reshape(1, h * w, 1, 2)
        # Normalised displacement times half the map side is in pixels; the table's edges sit at +-(size-1).
        pixels = (q_pos - pos.reshape(b * g, 1, n_keys, 2)) * torch.tensor([w / 2, h / 2], dtype=pos.dtype)
        grid = pixels / max(self.size - 1, 1)
        side = 2 * self.size - 1
        table = self.rpe_table.reshape(1, g, hpg, side, side).expand(b, -1, -1, -1, -1)
        bias = F.grid_sample(
            table.reshape(b * g, hpg, side, side),
            grid,
            mode="bilinear",
            padding_mode="border",
            align_corners=True,
        )  # (B*g, hpg, HW, Ns); head i of the flat order is group i // hpg, as for the keys
        return bias.reshape(b, self.heads, h * w, n_keys)


class WindowAttention(nn.Module):
    """Plain multi-head self-attention within non-overlapping windows (global if the map fits one)."""

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads, self.window = heads, window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        ws = min(self.window, h, w)
        if h % ws or w % ws:
            ws = h if h == w else 1  # the pyramid keeps maps square powers of two, so this is a safeguard
        nh, nw = h // ws, w // ws
        t = x.reshape(b, c, nh, ws, nw, ws).permute(0, 2, 4, 3, 5, 1).reshape(b * nh * nw, ws * ws, c)
        qkv = self.qkv(t).reshape(t.shape[0], ws * ws, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        out = self.proj(out.transpose(1, 2).reshape(t.shape[0], ws * ws, c))
        return out.reshape(b, nh, nw, ws, ws, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, h, w)


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of a ``(B, C, H, W)`` map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Block(nn.Module):
    """Pre-norm transformer block on a feature map: attention then a 1x1-conv MLP, both residual."""

    def __init__(self, dim: int, attention: nn.Module, mlp_ratio: float) -> None:
        super().__init__()
        hidden = max(1, int(dim * mlp_ratio))
        self.norm1, self.attn = ChannelNorm(dim), attention
        self.norm2 = ChannelNorm(dim)
        self.mlp = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.Conv2d(hidden, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DAT(nn.Module):
    """The pyramid classifier: patch embedding, stages with downsampling, pooled linear head."""

    def __init__(self, cfg: DATConfig) -> None:
        super().__init__()
        deformed = cfg.stages_deformed()
        self.embed = nn.Sequential(nn.Conv2d(1, cfg.dim, 3, stride=2, padding=1), ChannelNorm(cfg.dim))
        stages: list[nn.Module] = []
        dim = cfg.dim
        for i in range(1, cfg.num_stages + 1):
            layers: list[nn.Module] = []
            if i > 1:
                layers += [nn.Conv2d(dim, 2 * dim, 2, stride=2), ChannelNorm(2 * dim)]
                dim *= 2
            for _ in range(cfg.depth):
                attn: nn.Module
                if i in deformed:
                    attn = DeformableAttention(
                        dim,
                        (IMAGE_SIZE // 2) >> (i - 1),
                        cfg.heads,
                        cfg.offset_groups,
                        cfg.offset_range_factor,
                        cfg.offset_kernel,
                        cfg.ref_stride,
                    )
                else:
                    attn = WindowAttention(dim, cfg.heads, cfg.window)
                layers.append(Block(dim, attn, cfg.mlp_ratio))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.stages(self.embed(x)).mean(dim=(2, 3))
        return self.head(self.norm(feats))


def _upsample(images: torch.Tensor) -> torch.Tensor:
    return F.interpolate(
        images.unsqueeze(1), size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False
    )


class DATTarget(ModelTarget):
    """Trainable DAT: one budget unit is one AdamW step on a minibatch; reports ``val_acc``."""

    name = "models:dat"
    config_class = DATConfig
    mutable = MUTABLE
    checkpoint = "dat.pt"
    checkpointed = ("model", "optimizer", "rng", "last_loss")
    train_modules = ("model",)
    steps_key = "steps"
    cfg: DATConfig

    def load_data(self, seed: int) -> None:
        x_train, self.y_train, x_val, self.y_val = load_digits_split(
            self.cfg.data_seed, self.cfg.val_fraction
        )
        self.x_train, self.x_val = _upsample(x_train), _upsample(x_val)

    def build(self, ctx: TrialContext) -> None:
        self.model = DAT(self.cfg)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=self.cfg.learning_rate, weight_decay=self.cfg.weight_decay
        )
        # A private generator draws the minibatches, so a checkpoint can restore exactly where it was.
        self.rng = torch.Generator().manual_seed(ctx.seed)
        self.last_loss = math.nan

    def step(self) -> float:
        n = len(self.x_train)
        idx = torch.randint(n, (min(self.cfg.batch_size, n),), generator=self.rng)
        loss = F.cross_entropy(self.model(self.x_train[idx]), self.y_train[idx])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.last_loss = loss.item()
        return self.last_loss

    def report(self, train_loss: float) -> dict[str, float]:
        """``val_acc`` and the last step's ``train_loss``."""
        return {**self.evaluate(), "train_loss": self.last_loss}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """``val_acc``: accuracy on the validation split."""
        self.model.eval()
        pred = self.model(self.x_val).argmax(dim=1)
        return {"val_acc": float((pred == self.y_val).float().mean())}

    def apply_config(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"], group["weight_decay"] = self.cfg.learning_rate, self.cfg.weight_decay


check_args = DATTarget.check
