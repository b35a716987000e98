"""Multiresolution hash encoding (Müller et al. 2022, "Instant Neural Graphics Primitives").

:class:`HashGridEncoding` maps points ``x`` in ``[0, 1]^d`` to features: ``L`` grids of growing resolution
``N_l = floor(N_min * b**l)``, ``b = exp((ln N_max - ln N_min) / (L - 1))``, each with a table of ``T``
trainable ``F``-vectors. A point's ``2**d`` surrounding grid vertices are looked up in each level's table
and their features interpolated (d-linearly); the ``L * F`` results are concatenated. A level whose
``(N_l + 1)**d`` vertices fit in the table indexes it densely (one entry per vertex); finer levels use the
spatial hash ``h(c) = (c_1 * 1) xor (c_2 * 2654435761) xor (c_3 * 805459861) mod T``.

:class:`HashGridTarget` fits a small MLP on top of the encoding to a sample image, ``(x, y) -> RGB``, as
the paper's gigapixel-image task does at a far smaller scale. The budget unit is one optimiser step;
the metric ``psnr`` is measured on all pixels of the image (higher is better).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autorl.errors import ConfigError
from autorl.targets.base import TrialContext
from autorl.targets.models._data import BatchSampler, ModelTarget, check_choice, check_range

# The paper's primes, one per dimension; the first is 1 so the first coordinate stays coherent in memory.
PRIMES = (1, 2654435761, 805459861)
IMAGES = ("astronaut", "chelsea", "coffee")
MUTABLE = ("learning_rate",)


def level_resolutions(n_levels: int, n_min: int, n_max: int) -> list[int]:
    """``N_l = floor(N_min * b**l)`` for ``l = 0..L-1`` with the paper's growth factor ``b``."""
    if n_levels == 1:
        return [n_min]
    b = math.exp((math.log(n_max) - math.log(n_min)) / (n_levels - 1))
    # A hair of slack so that floor(N_min * b**(L-1)) is N_max, not N_max - 1, after rounding error.
    return [math.floor(n_min * b**level + 1e-9) for level in range(n_levels)]


def check_encoding(n_levels: int, log2_table_size: int, n_features: int, n_min: int, n_max: int) -> None:
    """Raise ConfigError for an impossible L, log2 T, F, N_min or N_max of :class:`HashGridEncoding`."""
    check_range("n_levels", n_levels, 1)
    check_range("log2_table_size", log2_table_size, 1, 30)
    check_range("n_features", n_features, 1)
    check_range("n_min", n_min, 1)
    if n_max < n_min:
        raise ConfigError(f"n_min <= n_max must hold, but got (n_min={n_min}, n_max={n_max})", "n_max")


class HashGridEncoding(nn.Module):
    """Multiresolution hash encoding of points in ``[0, 1]^dims``; output size ``n_levels * n_features``.

    All levels and all ``2**dims`` corners are computed in one batch of tensor operations. Coordinates
    outside ``[0, 1]`` are clamped to it. The tables are one parameter ``tables`` of shape ``(F, L, T)``
    (``tables[:, l, j]`` is entry ``j`` of level ``l``); dense levels use only the first ``(N_l + 1)**dims``
    entries of theirs.

    Args:
        dims: input dimension d (the hash has primes for up to 3).
        n_levels: L.
        log2_table_size: log2 of T, the entries per level.
        n_features: F, features per entry.
        n_min: coarsest resolution N_min.
        n_max: finest resolution N_max.
    """

    _res: torch.Tensor
    _strides: torch.Tensor
    _primes: torch.Tensor
    _offsets: torch.Tensor
    _corners: torch.Tensor
    _corner_rows: torch.Tensor

    def __init__(
        self,
        dims: int = 2,
        n_levels: int = 16,
        log2_table_size: int = 14,
        n_features: int = 2,
        n_min: int = 16,
        n_max: int = 512,
    ) -> None:
        super().__init__()
        check_range("dims", dims, 1, len(PRIMES))
        check_encoding(n_levels, log2_table_size, n_features, n_min, n_max)
        self.dims = dims
        self.n_levels = n_levels
        self.table_size = 2**log2_table_size
        self.n_features = n_features
        self.resolutions = level_resolutions(n_levels, n_min, n_max)
        self.dense = [(n + 1) ** dims <= self.table_size for n in self.resolutions]
        # Feature-major (F, L, T): each feature's gather, weighting and sum over corners then run over
        # contiguous memory, which is what makes the batched version fast on CPUs.
        self.tables = nn.Parameter(torch.empty(n_features, n_levels, self.table_size))
        nn.init.uniform_(self.tables, -1e-4, 1e-4)

        # Resolutions grow with the level, so the dense levels are a prefix: levels [0, n_dense).
        self.n_dense = sum(self.dense)
        res = torch.tensor(self.resolutions, dtype=torch.int64)
        self.register_buffer("_res", res.to(torch.float32)[:, None], persistent=False)  # (L, 1)
        # Row-major strides of each dense level's (N_l + 1)^d vertex grid, first coordinate fastest.
        strides = (res[: self.n_dense, None] + 1) ** torch.arange(dims)  # (n_dense, d)
        self.register_buffer("_strides", strides, persistent=False)
        self.register_buffer("_primes", torch.tensor(PRIMES[:dims], dtype=torch.int64), persistent=False)
        # Each level's first entry in the flattened (F, L * T) tables.
        self.register_buffer(
            "_offsets", (torch.arange(n_levels) * self.table_size)[:, None], persistent=False
        )
        # The 2^d corners of a cell as 0/1 offsets, shape (2^d, d); corner c has bit i of c in dimension i.
        corners = torch.tensor([[(c >> i) & 1 for i in range(dims)] for c in range(2**dims)])
        self.register_buffer("_corners", corners, persistent=False)
        # Dense row offset of each corner from its cell's base vertex, per dense level: (2^d, n_dense, 1).
        self.register_buffer("_corner_rows", (corners @ strides.T)[:, :, None], persistent=False)

    @property
    def out_features(self) -> int:
        return self.n_levels * self.n_features

    def vertex_index(self, vertices: torch.Tensor) -> torch.Tensor:
        """Rows within each level's table of integer vertices shaped ``(..., L, C, d)``, as ``(..., L, C)``.

        Dense levels index their ``(N_l + 1)^d`` grid one-to-one, the others use the spatial hash. The
        forward pass computes the same rows in a factored form; this direct form documents and tests it.
        """
        k = self.n_dense
        dense = (vertices[..., :k, :, :] * self._strides[:, None, :]).sum(-1)
        fine = vertices[..., k:, :, :]
        hashed = fine[..., 0] * self._primes[0]
        for i in range(1, self.dims):
            hashed = hashed ^ (fine[..., i] * self._primes[i])
        # T is a power of two, so "mod T" is a mask; products stay far below 2^63 for any sane N_max.
        hashed = hashed & (self.table_size - 1)
        return torch.cat([dense, hashed], dim=-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``x`` of shape ``(B, d)`` into ``(B, L * F)`` features, level 0's first.

        All levels and corners are batched, laid out ``(corner, level, point)`` so that per-level
        constants broadcast over the long point dimension. Per input dimension the cell's base vertex
        gives two terms (corner bit 0 or 1) for the dense row, the hash and the weight; the ``2^d``
        corners are their outer sum, xor and product.
        """
        if x.ndim != 2 or x.shape[1] != self.dims:
            raise ValueError(f"x must have shape (B, {self.dims}), but got {tuple(x.shape)}")
        n, k = len(x), self.n_dense
        x = x.clamp(0.0, 1.0)
        dense: torch.Tensor | None = None
        hash_pairs, weight_pairs = [], []
        for i in range(self.dims):
            scaled = self._res * x[:, i]  # (L, B)
            # At x = 1 the floor would be N_l itself; using cell N_l - 1 with weight 1 on its far corner
            # keeps every vertex inside the (N_l + 1)^d grid.
            base = torch.minimum(scaled.floor(), self._res - 1)
            frac = scaled - base
            weight_pairs.append(torch.stack([1.0 - frac, frac]))  # (2, L, B)
            base = base.long()
            if k:
                term = base[:k] * self._strides[:, i, None]
                dense = term if dense is None else dense + term
            if k < self.n_levels:
                prime = PRIMES[i]
                term = base[k:] * prime
                hash_pairs.append(torch.stack([term, term + prime]))
        parts = []
        if dense is not None:
            parts.append((dense + self._offsets[:k]) + self._corner_rows)  # (2^d, n_dense, B)
        if hash_pairs:
            # T is a power of two, so "mod T" is a mask and adding the level's offset l * T an "or".
            hashed = _outer(hash_pairs, torch.bitwise_xor) & (self.table_size - 1)
            parts.append(hashed | self._offsets[k:])
        index = torch.cat(parts, dim=1)  # (2^d, L, B) entries of the flattened tables
        weights = _outer(weight_pairs, torch.mul)  # (2^d, L, B)
        # index_select's backward (index_add) is several times faster on CPU than embedding's.
        feats = self.tables.view(self.n_features, -1).index_select(1, index.reshape(-1))
        out = (feats.view(self.n_features, *index.shape) * weights).sum(1)  # (F, L, B)
        return out.permute(2, 1, 0).reshape(n, -1)


def _outer(
    pairs: list[torch.Tensor], op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Combine per-dimension ``(2, ...)`` pairs into ``(2^d, ...)`` with ``op``; index bit i = dim i."""
    acc = pairs[-1]
    for pair in reversed(pairs[:-1]):
        acc = op(acc[:, None], pair[None, :]).flatten(0, 1)
    return acc


@dataclass(frozen=True)
class HashGridConfig:
    """Hyperparameters of :class:`HashGridTarget`; every field is a config key.

    Attributes:
        image_size: side of the square image that is fitted (the fidelity of the task).
        image: which ``skimage.data`` RGB sample image: astronaut, chelsea or coffee.
        n_levels, log2_table_size, n_features, n_min, n_max: the encoding's L, log2 T, F, N_min, N_max.
        hidden: width of the MLP head's hidden layers.
        mlp_layers: hidden layers of the MLP head.
        learning_rate: Adam's step size.
        batch_size: pixels per step, drawn without replacement, epoch after epoch; capped at the image's
            pixel count (full batch), so one search space serves every ``image_size``.
        weight_decay: L2 weight on the MLP's weights only (the paper leaves the tables undecayed).
        num_threads: torch CPU threads.
    """

    image_size: int = 64
    image: str = "astronaut"
    n_levels: int = 8
    log2_table_size: int = 10
    n_features: int = 2
    n_min: int = 4
    n_max: int = 64
    hidden: int = 64
    mlp_layers: int = 2
    learning_rate: float = 1.0e-2
    batch_size: int = 1024
    weight_decay: float = 1.0e-6
    num_threads: int = 1

    def __post_init__(self) -> None:
        check_range("image_size", self.image_size, 2, 512)
        check_choice("image", self.image, IMAGES)
        # The encoding checks these too; here they refuse a sweep before it trains.
        check_encoding(self.n_levels, self.log2_table_size, self.n_features, self.n_min, self.n_max)
        check_range("hidden", self.hidden, 1)
        check_range("mlp_layers", self.mlp_layers, 0)
        check_range("learning_rate", self.learning_rate, 0.0)
        check_range("batch_size", self.batch_size, 1)
        check_range("weight_decay", self.weight_decay, 0.0)
        check_range("num_threads", self.num_threads, 1)


@lru_cache(maxsize=4)
def load_image(name: str, size: int) -> np.ndarray:
    """A ``skimage.data`` RGB sample, centre-cropped to a square, resized to ``(size, size, 3)`` in [0, 1]."""
    import skimage.data
    from skimage.transform import resize

    img = getattr(skimage.data, name)()
    h, w = img.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    img = img[top : top + side, left : left + side, :3]
    out = resize(img, (size, size), anti_aliasing=True).astype(np.float32)
    out.setflags(write=False)
    return out


def pixel_grid(size: int) -> torch.Tensor:
    """Pixel centres of a ``size`` x ``size`` image in ``[0, 1]^2``, row-major, as ``(size**2, 2)`` (x, y)."""
    c = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    y, x = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1)], dim=1)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB for values in [0, 1]: ``10 log10(1 / MSE)``."""
    mse = F.mse_loss(pred.clamp(0.0, 1.0), target).item()
    return 10.0 * math.log10(1.0 / max(mse, 1e-12))


class HashGridModel(nn.Module):
    """Hash encoding followed by a ReLU MLP with ``out_features`` linear outputs."""

    def __init__(self, cfg: HashGridConfig, out_features: int = 3) -> None:
        super().__init__()
        self.encoding = HashGridEncoding(
            2, cfg.n_levels, cfg.log2_table_size, cfg.n_features, cfg.n_min, cfg.n_max
        )
        sizes = [self.encoding.out_features, *[cfg.hidden] * cfg.mlp_layers, out_features]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.mlp = nn.Sequential(*layers[:-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.encoding(x))


class HashGridTarget(ModelTarget):
    """Trainable image fit with a hash-grid encoding; ``train(n)`` takes ``n`` Adam steps, then evaluates."""

    name = "models:hashgrid"
    config_class = HashGridConfig
    mutable = MUTABLE
    checkpoint = "hashgrid.pt"
    checkpointed = ("model", "optimizer", "sampler")
    train_modules = ("model",)
    cfg: HashGridConfig

    def load_data(self, seed: int) -> None:
        self.coords = pixel_grid(self.cfg.image_size)
        self.rgb = torch.from_numpy(load_image(self.cfg.image, self.cfg.image_size).copy()).reshape(-1, 3)

    def build(self, ctx: TrialContext) -> None:
        self.model = HashGridModel(self.cfg)
        mlp_weights = [p for n, p in self.model.mlp.named_parameters() if n.endswith("weight")]
        others = [
            p for n, p in self.model.named_parameters() if not (n.startswith("mlp") and n.endswith("weight"))
        ]
        # The paper's Adam settings: beta2 = 0.99, eps = 1e-15 (a larger eps damps the rarely hit entries).
        self.optimizer = torch.optim.Adam(
            [
                {"params": mlp_weights, "weight_decay": self.cfg.weight_decay},
                {"params": others, "weight_decay": 0.0},
            ],
            lr=self.cfg.learning_rate,
            betas=(0.9, 0.99),
            eps=1e-15,
        )
        batch = min(self.cfg.batch_size, len(self.coords))
        self.sampler = BatchSampler(len(self.coords), batch, seed=ctx.seed + 1)

    def step(self) -> float:
        idx = self.sampler.next()
        loss = F.mse_loss(self.model(self.coords[idx]), self.rgb[idx])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """``psnr`` on all pixels."""
        self.model.eval()
        return {"psnr": psnr(self.model(self.coords), self.rgb)}

    @torch.no_grad()
    def render(self) -> np.ndarray:
        """The fitted image, ``(image_size, image_size, 3)`` in [0, 1]."""
        size = self.cfg.image_size
        return self.model(self.coords).clamp(0.0, 1.0).reshape(size, size, 3).numpy()


check_args = HashGridTarget.check
