"""data2vec on the 8x8 digits (Baevski et al. 2022, "data2vec: A General Framework for Self-supervised
Learning in Speech, Vision and Language").

A small transformer encoder reads a digit as a sequence of tokens (16 patches of 2x2 pixels, or 8 rows)
plus learned positional embeddings. The *student* sees the sequence with spans of tokens replaced by a
learned mask token; the *teacher*, an exponential moving average (EMA) of the student run without
gradients on the unmasked sequence, provides the targets: the average of its top-K blocks' outputs, each
normalised per token (layer norm without affine parameters) or per channel over the sequence (instance
norm). The student regresses the targets at the masked positions with a smooth-L1 loss. The EMA decay
rises linearly from ``ema_start`` to ``ema_end`` over the first ``ema_anneal_frac`` of ``total_steps``
and stays there.

The budget unit is one optimiser step. The metric ``probe_acc`` is the accuracy on held-out digits of a
logistic regression fitted on the frozen, mean-pooled features of the student (unmasked input).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from autorl.errors import ConfigError
from autorl.targets.base import TrialContext
from autorl.targets.models._data import (
    BatchSampler,
    ModelTarget,
    check_choice,
    check_fraction,
    check_range,
    load_digits_split,
)

TOKENS = ("patch", "row")
TARGET_NORMS = ("layer", "instance")
TARGET_SOURCES = ("ffn", "block")
MUTABLE = ("learning_rate",)


@dataclass(frozen=True)
class Data2VecConfig:
    """Hyperparameters of :class:`Data2VecTarget`; every field is a config key.

    Attributes:
        tokens: ``patch`` (16 tokens of 2x2 pixels) or ``row`` (8 tokens of 8 pixels).
        dim: token embedding width.
        depth: transformer blocks.
        heads: attention heads (must divide ``dim``).
        mlp_ratio: hidden width of each block's feed-forward network, as a multiple of ``dim``.
        top_k: teacher blocks whose normalised outputs are averaged into the targets; values above
            ``depth`` use every block, so one search space serves every depth.
        target_norm: ``layer`` (per token, over channels) or ``instance`` (per channel, over tokens).
        target_source: ``ffn``: a block's feed-forward output before its residual connection, as in
            the paper; ``block``: the block's output.
        mask_ratio: share of tokens to mask, covered by spans of ``mask_span`` tokens (overlaps allowed).
        mask_span: length of one masked span.
        loss_beta: smooth-L1 threshold (0: plain L1).
        ema_start, ema_end: teacher EMA decay at the first step and after the annealing.
        ema_anneal_frac: share of ``total_steps`` over which the decay rises linearly.
        total_steps: length of the run the schedule is planned for (0: the trial's budget).
        learning_rate: AdamW step size, reached after a linear warm-up of ``warmup_frac * total_steps``.
        warmup_frac: share of ``total_steps`` spent warming up the learning rate.
        weight_decay: AdamW weight decay.
        batch_size: digits per step.
        val_fraction: share of digits held out to score the probe (also excluded from pre-training).
        probe_c: inverse L2 strength of the probe's logistic regression.
        num_threads: torch CPU threads.
    """

    tokens: str = "row"
    dim: int = 64
    depth: int = 3
    heads: int = 4
    mlp_ratio: float = 2.0
    top_k: int = 2
    target_norm: str = "instance"
    target_source: str = "ffn"
    mask_ratio: float = 0.5
    mask_span: int = 2
    loss_beta: float = 0.5
    ema_start: float = 0.99
    ema_end: float = 0.999
    ema_anneal_frac: float = 0.5
    total_steps: int = 0
    learning_rate: float = 3.0e-3
    warmup_frac: float = 0.05
    weight_decay: float = 0.01
    batch_size: int = 64
    val_fraction: float = 0.3
    probe_c: float = 1.0
    num_threads: int = 1

    def __post_init__(self) -> None:
        check_choice("tokens", self.tokens, TOKENS)
        check_choice("target_norm", self.target_norm, TARGET_NORMS)
        check_choice("target_source", self.target_source, TARGET_SOURCES)
        check_range("dim", self.dim, 1)
        check_range("depth", self.depth, 1)
        check_range("heads", self.heads, 1)
        if self.dim % self.heads:
            raise ConfigError(f"heads must divide dim, but got (dim={self.dim}, heads={self.heads})", "heads")
        check_range("mlp_ratio", self.mlp_ratio, 0.0)
        check_range("top_k", self.top_k, 1)
        check_range("mask_ratio", self.mask_ratio, 0.0, 1.0)
        check_range("mask_span", self.mask_span, 1)
        check_range("loss_beta", self.loss_beta, 0.0)
        check_range("ema_start", self.ema_start, 0.0, 1.0)
        check_range("ema_end", self.ema_end, 0.0, 1.0)
        check_range("ema_anneal_frac", self.ema_anneal_frac, 0.0, 1.0)
        check_range("total_steps", self.total_steps, 0)
        check_range("learning_rate", self.learning_rate, 0.0)
        check_range("warmup_frac", self.warmup_frac, 0.0, 1.0)
        check_range("weight_decay", self.weight_decay, 0.0)
        check_range("batch_size", self.batch_size, 1)
        check_fraction("val_fraction", self.val_fraction)
        check_range("probe_c", self.probe_c, 0.0)
        check_range("num_threads", self.num_threads, 1)


def tokenize(images: torch.Tensor, tokens: str) -> torch.Tensor:
    """``(B, 8, 8)`` images as ``(B, 16, 4)`` 2x2 patches in raster order, or ``(B, 8, 8)`` rows."""
    if tokens == "row":
        return images
    b = len(images)
    return images.reshape(b, 4, 2, 4, 2).permute(0, 1, 3, 2, 4).reshape(b, 16, 4)


def span_mask(batch: int, length: int, ratio: float, span: int, generator: torch.Generator) -> torch.Tensor:
    """Boolean ``(batch, length)`` mask made of spans of ``span`` tokens, starts drawn without replacement.

    ``round(ratio * length / span)`` starts (at least one) are drawn per row among the positions where a
    whole span fits, so spans may overlap and the masked share is at most ``ratio`` (up to rounding).
    """
    span = min(span, length)
    n_starts = length - span + 1
    n_spans = min(n_starts, max(1, round(ratio * length / span)))
    starts = torch.rand(batch, n_starts, generator=generator).argsort(dim=1)[:, :n_spans]  # (B, S)
    positions = (starts[:, :, None] + torch.arange(span)).reshape(batch, -1)
    mask = torch.zeros(batch, length, dtype=torch.bool)
    mask.scatter_(1, positions, True)
    return mask


class Block(nn.Module):
    """Pre-norm transformer block that also returns its feed-forward output before the residual."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        hidden = max(1, round(dim * mlp_ratio))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        ffn = self.mlp(self.norm2(x))
        return x + ffn, ffn


class Encoder(nn.Module):
    """Token embedding, learned positions, a mask token and ``depth`` blocks with a final layer norm."""

    def __init__(self, cfg: Data2VecConfig, n_tokens: int, token_dim: int) -> None:
        super().__init__()
        self.embed = nn.Linear(token_dim, cfg.dim)
        self.pos = nn.Parameter(torch.randn(1, n_tokens, cfg.dim) * 0.02)
        self.mask_token = nn.Parameter(torch.randn(cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(
        self, tokens: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Return the final features ``(B, N, D)`` and each block's output and feed-forward output."""
        x = self.embed(tokens)
        if mask is not None:
            x = torch.where(mask[..., None], self.mask_token.to(x.dtype), x)
        x = x + self.pos
        outputs, ffns = [], []
        for block in self.blocks:
            x, ffn = block(x)
            outputs.append(x)
            ffns.append(ffn)
        return self.norm(x), outputs, ffns


def teacher_targets(layers: list[torch.Tensor], top_k: int, norm: str) -> torch.Tensor:
    """Average of the top ``top_k`` (or all) of ``layers``, each ``(B, N, D)`` and normalised first."""
    normed = []
    for h in layers[-top_k:]:
        if norm == "layer":
            normed.append(F.layer_norm(h, h.shape[-1:]))
        else:
            # Instance norm: each channel normalised over the tokens of its sequence.
            normed.append(F.instance_norm(h.transpose(1, 2)).transpose(1, 2))
    return torch.stack(normed).mean(0)


class Data2VecTarget(ModelTarget):
    """Trainable data2vec pre-training; ``train(n)`` takes ``n`` steps, then fits and scores the probe."""

    name = "models:data2vec"
    config_class = Data2VecConfig
    mutable = MUTABLE
    checkpoint = "data2vec.pt"
    checkpointed = ("total_steps", "student", "head", "teacher", "optimizer", "sampler", "masking")
    train_modules = ("student", "head")
    cfg: Data2VecConfig

    def load_data(self, seed: int) -> None:
        x_train, self.y_train, x_val, self.y_val = load_digits_split(seed, self.cfg.val_fraction)
        self.t_train, self.t_val = tokenize(x_train, self.cfg.tokens), tokenize(x_val, self.cfg.tokens)

    def build(self, ctx: TrialContext) -> None:
        self.total_steps = self.cfg.total_steps or ctx.budget
        n_tokens, token_dim = self.t_train.shape[1:]
        self.student = Encoder(self.cfg, n_tokens, token_dim)
        self.head = nn.Linear(self.cfg.dim, self.cfg.dim)
        self.teacher = copy.deepcopy(self.student).requires_grad_(False).eval()
        self.optimizer = torch.optim.AdamW(
            [*self.student.parameters(), *self.head.parameters()],
            lr=self.cfg.learning_rate,
            weight_decay=self.cfg.weight_decay,
        )
        self.sampler = BatchSampler(len(self.t_train), self.cfg.batch_size, seed=ctx.seed + 1)
        self.masking = torch.Generator().manual_seed(ctx.seed + 2)

    def ema_decay(self, step: int) -> float:
        """Teacher decay at ``step``: linear from ``ema_start`` to ``ema_end``, then constant."""
        anneal = self.cfg.ema_anneal_frac * self.total_steps
        if step >= anneal:
            return self.cfg.ema_end
        return self.cfg.ema_start + (self.cfg.ema_end - self.cfg.ema_start) * step / anneal

    def learning_rate(self, step: int) -> float:
        warmup = self.cfg.warmup_frac * self.total_steps
        return (
            self.cfg.learning_rate * min(1.0, (step + 1) / warmup) if warmup > 0 else self.cfg.learning_rate
        )

    def step(self) -> float:
        tokens = self.t_train[self.sampler.next()]
        mask = span_mask(len(tokens), tokens.shape[1], self.cfg.mask_ratio, self.cfg.mask_span, self.masking)
        with torch.no_grad():
            _, outputs, ffns = self.teacher(tokens)
            layers = ffns if self.cfg.target_source == "ffn" else outputs
            targets = teacher_targets(layers, self.cfg.top_k, self.cfg.target_norm)
        features, _, _ = self.student(tokens, mask)
        pred = self.head(features[mask])
        loss = F.smooth_l1_loss(pred, targets[mask], beta=self.cfg.loss_beta)
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(self.steps)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self._update_teacher(self.ema_decay(self.steps))
        return loss.item()

    @torch.no_grad()
    def _update_teacher(self, decay: float) -> None:
        for teacher, student in zip(self.teacher.parameters(), self.student.parameters(), strict=True):
            teacher.lerp_(student, 1.0 - decay)

    def report(self, train_loss: float) -> dict[str, float]:
        """``probe_acc``, ``train_loss`` (mean over the call's steps) and the teacher's ``ema_decay``."""
        return {**super().report(train_loss), "ema_decay": self.ema_decay(self.steps)}

    @torch.no_grad()
    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Mean-pooled student features of unmasked ``tokens``, ``(B, dim)``."""
        self.student.eval()
        return self.student(tokens)[0].mean(1)

    def evaluate(self) -> dict[str, float]:
        """Fit the linear probe on the training split's features; score it on the held-out split."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from threadpoolctl import threadpool_limits

        probe = make_pipeline(StandardScaler(), LogisticRegression(C=self.cfg.probe_c, max_iter=1000))
        # BLAS threads are not torch's: unlimited, they oversubscribe shared cores and slow the fit 10x.
        with threadpool_limits(limits=self.cfg.num_threads):
            probe.fit(self.features(self.t_train).numpy(), self.y_train.numpy())
            acc = probe.score(self.features(self.t_val).numpy(), self.y_val.numpy())
        return {"probe_acc": float(acc)}

    def apply_config(self) -> None:
        # learning_rate is the peak after warm-up; the schedule gives the rate of this step.
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(self.steps)


check_args = Data2VecTarget.check
