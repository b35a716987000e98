"""Counter-based random numbers in torch: one independent stream per population member.

A draw is a pure function of ``(seed, stream, counter, position)``. ``uniform(seed, counter, shape)``
returns ``[P, *shape]`` whose row p depends only on ``seed[p]``, ``counter[p]``, the stream id and the
position within ``shape``: not on P, on the other rows or on any global state. So member p draws the
same numbers alone or in a population of any size, and a saved ``(seed, counter)`` pair resumes its
stream exactly. Nothing here keeps state; the caller advances ``counter`` (by one per draw).

The generator is splitmix64 (Steele, Lea and Flood, 2014). A draw's key is the splitmix64 finaliser
applied in turn to the seed, then plus the stream id, then plus the counter (each step a bijection of
64-bit words); position j of the draw is ``mix(key + (j + 1) * GOLDEN)``, the j-th output of a
splitmix64 generator started at that key. Uniforms take the top 24 (float32) or 53 (float64) bits.

The arithmetic runs on int64 tensors as 64-bit two's complement: sums and products wrap modulo 2**64,
as torch's int64 operations do on CPU and CUDA, and the logical right shifts splitmix64 needs are
torch's arithmetic shifts with the sign-extended bits masked off. ``tests/engine/test_rng.py`` checks
every bit against a pure-Python reference.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_MASK64 = (1 << 64) - 1


def _signed(x: int) -> int:
    """The int64 with the same 64 bits as the unsigned ``x``."""
    x &= _MASK64
    return x - (1 << 64) if x >= 1 << 63 else x


GOLDEN = _signed(0x9E3779B97F4A7C15)
_M1 = _signed(0xBF58476D1CE4E5B9)
_M2 = _signed(0x94D049BB133111EB)


def _shr(x: Tensor, n: int) -> Tensor:
    """Logical right shift of int64 words (torch's ``>>`` is arithmetic: it copies the sign bit)."""
    return (x >> n) & ((1 << (64 - n)) - 1)


def mix(x: Tensor) -> Tensor:
    """The splitmix64 finaliser: a bijection of int64 words in which every input bit affects all outputs."""
    x = (x ^ _shr(x, 30)) * _M1
    x = (x ^ _shr(x, 27)) * _M2
    return x ^ _shr(x, 31)


def keys(seed: Tensor, counter: Tensor, stream: int = 0) -> Tensor:
    """``[P]`` int64: the key of each member's draw number ``counter`` in stream ``stream``."""
    if seed.dim() != 1 or seed.shape != counter.shape:
        raise ValueError(
            f"seed and counter must be 1-d tensors of one length, got {list(seed.shape)} and "
            f"{list(counter.shape)}"
        )
    if seed.dtype != torch.int64 or counter.dtype != torch.int64:
        raise ValueError(f"seed and counter must be int64, got {seed.dtype} and {counter.dtype}")
    return mix(mix(mix(seed) + stream) + counter)


def bits(seed: Tensor, counter: Tensor, shape: tuple[int, ...], *, stream: int = 0) -> Tensor:
    """``[P, *shape]`` random int64 words (all 64 bits random): member p's draw number ``counter[p]``.

    Args:
        seed: ``[P]`` int64 member seeds.
        counter: ``[P]`` int64: how many draws each member has made from this stream.
        shape: The shape of one member's draw.
        stream: Separates the streams of one seed (e.g. training and evaluation).
    """
    n = math.prod(shape)
    position = torch.arange(1, n + 1, dtype=torch.int64, device=seed.device) * GOLDEN
    words = mix(keys(seed, counter, stream)[:, None] + position)
    return words.view(len(seed), *shape)


def uniform(
    seed: Tensor,
    counter: Tensor,
    shape: tuple[int, ...],
    *,
    dtype: torch.dtype = torch.float32,
    stream: int = 0,
) -> Tensor:
    """``[P, *shape]`` uniforms in ``[0, 1)`` on a grid of ``2**-24`` (float32) or ``2**-53`` (float64).

    The arguments are those of :func:`bits`.
    """
    if dtype == torch.float32:
        mantissa = 24
    elif dtype == torch.float64:
        mantissa = 53
    else:
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    words = _shr(bits(seed, counter, shape, stream=stream), 64 - mantissa)
    return words.to(dtype) * (2.0**-mantissa)


def normal(
    seed: Tensor,
    counter: Tensor,
    shape: tuple[int, ...],
    *,
    dtype: torch.dtype = torch.float32,
    stream: int = 0,
) -> Tensor:
    """``[P, *shape]`` standard normals by Box-Muller, each from its own pair of uniforms.

    Only the cosine branch is used, so a normal depends on its position alone, not on ``shape``'s
    total size. In float32 the magnitude is at most ``sqrt(48 ln 2)`` (about 5.8). The arguments are
    those of :func:`bits`.
    """
    u = uniform(seed, counter, (*shape, 2), dtype=dtype, stream=stream)
    radius = torch.sqrt(-2.0 * torch.log1p(-u[..., 0]))  # 1 - u lies in (0, 1]: the log is finite
    return radius * torch.cos((2.0 * math.pi) * u[..., 1])
