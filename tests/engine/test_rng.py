"""The counter-based generator: exact splitmix64 bits, streams independent of the population, sane moments."""

from __future__ import annotations

import math

import pytest
import torch

from autorl.engine import rng

torch.set_num_threads(1)

MASK = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64's finaliser on Python integers (unsigned 64-bit), the reference for the tensor version."""
    x &= MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def _reference_bits(seed: int, counter: int, n: int, stream: int = 0) -> list[int]:
    key = _mix(_mix(_mix(seed) + stream) + counter)
    return [_mix(key + (j + 1) * 0x9E3779B97F4A7C15) for j in range(n)]


def _t(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64)


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**62 + 7, -1, -(2**63)])
@pytest.mark.parametrize("stream", [0, 1])
def test_bits_are_splitmix64_to_the_last_bit(seed: int, stream: int) -> None:
    counter = 2**40 + 3
    got = rng.bits(_t([seed]), _t([counter]), (5, 7), stream=stream)
    assert got.shape == (1, 5, 7)
    want = [v - (1 << 64) if v >= 1 << 63 else v for v in _reference_bits(seed, counter, 35, stream)]
    assert got.reshape(-1).tolist() == want


def test_uniform_takes_the_top_bits() -> None:
    seed, counter = _t([42]), _t([9])
    words = [w & MASK for w in _reference_bits(42, 9, 6)]
    assert rng.uniform(seed, counter, (6,))[0].tolist() == [(w >> 40) / 2**24 for w in words]
    u64 = rng.uniform(seed, counter, (6,), dtype=torch.float64)[0].tolist()
    assert u64 == [(w >> 11) / 2**53 for w in words]


def test_same_seed_and_counter_give_the_same_numbers() -> None:
    seed, counter = _t([3, 4]), _t([10, 10])
    a = rng.uniform(seed, counter, (100,))
    assert torch.equal(a, rng.uniform(seed.clone(), counter.clone(), (100,)))
    assert not torch.equal(a, rng.uniform(seed, counter + 1, (100,)))
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a, rng.uniform(seed, counter, (100,), stream=1))


def test_a_members_stream_does_not_depend_on_the_population() -> None:
    seeds, counters = _t(list(range(100, 108))), _t([5, 0, 7, 11, 2, 2, 9, 1])
    for draw in (rng.uniform, rng.normal):
        big = draw(seeds, counters, (16, 3))
        small = draw(seeds[:4], counters[:4], (16, 3))
        alone = draw(seeds[3:4], counters[3:4], (16, 3))
        assert torch.equal(big[3], small[3]) and torch.equal(big[3], alone[0])
        other_counters = counters.clone()
        other_counters[[0, 1, 2, 4]] += 1000  # the others' draws leave member 3's alone
        assert torch.equal(draw(seeds, other_counters, (16, 3))[3], big[3])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_uniforms_are_uniform(dtype: torch.dtype) -> None:
    u = rng.uniform(_t(list(range(4))), _t([0, 1, 2, 3]), (50_000,), dtype=dtype)
    assert u.dtype == dtype and u.min() >= 0 and u.max() < 1
    n = u.shape[1]
    assert (u.mean(1) - 0.5).abs().max() < 4 * math.sqrt(1 / 12 / n)
    assert (u.var(1) - 1 / 12).abs().max() < 0.002
    counts = torch.stack([torch.histc(row.float(), bins=10, min=0, max=1) for row in u])
    expected = n / 10
    chi2 = ((counts - expected) ** 2 / expected).sum(1)
    assert chi2.max() < 30  # 9 degrees of freedom: P(chi2 > 30) < 0.001
    # neighbouring seeds and neighbouring positions are uncorrelated
    centred = u - 0.5
    assert (centred[0] * centred[1]).mean().abs() < 4 / 12 / math.sqrt(n)
    assert (centred[0, 1:] * centred[0, :-1]).mean().abs() < 4 / 12 / math.sqrt(n)


def test_normals_are_standard() -> None:
    z = rng.normal(_t([7, 8]), _t([0, 0]), (100_000,))
    assert torch.isfinite(z).all()
    assert z.mean(1).abs().max() < 0.015
    assert (z.std(1) - 1).abs().max() < 0.01
    kurtosis = (z**4).mean(1) / z.var(1) ** 2
    assert (kurtosis - 3).abs().max() < 0.1
    assert ((z.abs() < 1).float().mean(1) - 0.6827).abs().max() < 0.01


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match=r"float32 or torch\.float64, got torch\.float16"):
        rng.uniform(_t([1]), _t([0]), (3,), dtype=torch.float16)
    with pytest.raises(ValueError, match="one length"):
        rng.bits(_t([1, 2]), _t([0]), (3,))
    with pytest.raises(ValueError, match="int64"):
        rng.bits(torch.tensor([1], dtype=torch.int32), _t([0]), (3,))
