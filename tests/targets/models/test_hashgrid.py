from __future__ import annotations

import math
from itertools import product
from pathlib import Path

import pytest
import torch

from autorl.errors import ConfigError
from autorl.targets import TARGETS, TrialContext, run_target
from autorl.targets.models.hashgrid import (
    PRIMES,
    HashGridEncoding,
    HashGridTarget,
    level_resolutions,
    load_image,
)

FAST = {"image_size": 16, "n_levels": 4, "log2_table_size": 6, "n_min": 2, "n_max": 16, "hidden": 16}
FAST["batch_size"] = 64


def paper_encoding(enc: HashGridEncoding, point: list[float]) -> list[float]:
    """The paper's formula for one point with Python integers and loops, written independently."""
    d, t = enc.dims, enc.table_size
    out: list[float] = []
    for level in range(enc.n_levels):
        n = enc.resolutions[level]
        scaled = [min(max(p, 0.0), 1.0) * n for p in point]
        low = [min(math.floor(s), n - 1) for s in scaled]
        feature = [0.0] * enc.n_features
        for corner in product((0, 1), repeat=d):
            vertex = [lo + c for lo, c in zip(low, corner, strict=True)]
            if (n + 1) ** d <= t:
                row = sum(v * (n + 1) ** i for i, v in enumerate(vertex))
            else:
                h = 0
                for i, v in enumerate(vertex):
                    h ^= (v * PRIMES[i]) & 0xFFFFFFFF  # the reference's uint32 arithmetic
                row = h % t
            weight = 1.0
            for s, lo, c in zip(scaled, low, corner, strict=True):
                weight *= (s - lo) if c else (1.0 - (s - lo))
            entry = enc.tables[:, level, row].tolist()
            feature = [f + weight * e for f, e in zip(feature, entry, strict=True)]
        out += feature
    return out


def test_resolutions_follow_the_growth_factor() -> None:
    assert level_resolutions(5, 16, 256) == [16, 32, 64, 128, 256]
    res = level_resolutions(16, 16, 2048)
    b = math.exp((math.log(2048) - math.log(16)) / 15)
    assert res == [math.floor(16 * b**level + 1e-9) for level in range(16)]
    assert res[0] == 16 and res[-1] == 2048


@pytest.mark.parametrize("dims", [2, 3])
def test_encoding_matches_the_paper_formula(dims: int) -> None:
    torch.manual_seed(0)
    enc = HashGridEncoding(dims=dims, n_levels=6, log2_table_size=8, n_features=3, n_min=2, n_max=40)
    assert any(enc.dense) and not all(enc.dense)  # both indexing schemes are exercised
    # Random tables make every entry distinct, so a wrong row or weight shows.
    with torch.no_grad():
        enc.tables.normal_()
    points = torch.rand(5, dims, dtype=torch.float64).float()
    points[0] = 1.0  # the far boundary
    points[1] = 0.0
    ours = enc(points)
    for i in range(len(points)):
        expected = torch.tensor(paper_encoding(enc, points[i].tolist()))
        torch.testing.assert_close(ours[i], expected, rtol=1e-5, atol=1e-5)


def test_hash_of_fine_levels_and_dense_index_of_coarse_levels() -> None:
    enc = HashGridEncoding(dims=2, n_levels=2, log2_table_size=4, n_features=1, n_min=3, n_max=20)
    assert enc.resolutions == [3, 20] and enc.dense == [True, False]  # 4^2 = 16 <= 16 < 21^2
    vertices = torch.tensor([[[[2, 1]], [[7, 11]]]])  # (B=1, L=2, C=1, d=2)
    rows = enc.vertex_index(vertices)[0, :, 0].tolist()
    assert rows[0] == 2 + 1 * 4
    assert rows[1] == ((7 * 1) ^ (11 * 2654435761)) % 16


def test_dense_levels_give_each_vertex_its_own_entry() -> None:
    enc = HashGridEncoding(dims=2, n_levels=3, log2_table_size=8, n_features=1, n_min=2, n_max=8)
    assert enc.dense == [True, True, True]
    for level, n in enumerate(enc.resolutions):
        grid = torch.stack(torch.meshgrid(torch.arange(n + 1), torch.arange(n + 1), indexing="ij"), -1)
        vertices = grid.reshape(-1, 1, 1, 2).expand(-1, enc.n_levels, 1, 2)
        rows = enc.vertex_index(vertices)[:, level, 0]
        assert sorted(rows.tolist()) == list(range((n + 1) ** 2))


def test_encoding_interpolates_vertex_values_exactly_on_vertices() -> None:
    enc = HashGridEncoding(dims=2, n_levels=1, log2_table_size=6, n_features=1, n_min=4, n_max=4)
    with torch.no_grad():
        enc.tables.copy_(torch.arange(64, dtype=torch.float32).view(1, 1, 64))
    # Vertex (i, j) of the 5x5 grid is dense row i + 5 j; halfway between two vertices is their mean.
    assert enc(torch.tensor([[0.25, 0.5]])).item() == pytest.approx(1 + 5 * 2)
    assert enc(torch.tensor([[0.375, 0.5]])).item() == pytest.approx((11 + 12) / 2)


def test_initial_tables_are_tiny_and_gradients_reach_them() -> None:
    enc = HashGridEncoding(dims=2, n_levels=4, log2_table_size=6, n_features=2, n_min=2, n_max=32)
    assert enc.tables.abs().max() <= 1e-4
    enc(torch.rand(16, 2)).sum().backward()
    assert enc.tables.grad is not None and enc.tables.grad.abs().sum() > 0


def test_image_is_square_rgb_in_unit_range() -> None:
    img = load_image("chelsea", 12)
    assert img.shape == (12, 12, 3) and 0.0 <= img.min() and img.max() <= 1.0


def test_training_raises_psnr() -> None:
    target = HashGridTarget(FAST, TrialContext(seed=0))
    untrained = target.evaluate()["psnr"]
    first = target.train(10)["psnr"]
    later = target.train(60)
    assert later["psnr"] > first > untrained
    assert later["psnr"] > untrained + 5.0
    assert later["budget"] == 70


def test_same_seed_gives_identical_metrics_and_other_seed_differs() -> None:
    a = HashGridTarget(FAST, TrialContext(seed=2)).train(20)
    b = HashGridTarget(FAST, TrialContext(seed=2)).train(20)
    c = HashGridTarget(FAST, TrialContext(seed=5)).train(20)
    assert a == b
    assert a["psnr"] != c["psnr"]


def test_checkpoint_round_trip_continues_exactly(tmp_path: Path) -> None:
    straight = HashGridTarget(FAST, TrialContext(seed=1))
    straight.train(10)
    expected = straight.train(10)

    first = HashGridTarget(FAST, TrialContext(seed=1))
    first.train(10)
    first.save(tmp_path / "ckpt")
    resumed = HashGridTarget(FAST, TrialContext(seed=7))
    resumed.load(tmp_path / "ckpt")
    assert resumed.train(10) == expected


def test_reconfigure_changes_learning_rate_only() -> None:
    target = HashGridTarget(FAST, TrialContext(seed=0))
    target.reconfigure({"learning_rate": 0.001})
    assert all(g["lr"] == 0.001 for g in target.optimizer.param_groups)
    with pytest.raises(ConfigError, match="n_levels"):
        target.reconfigure({"n_levels": 2})


def test_bad_config_is_refused_with_the_key() -> None:
    with pytest.raises(ConfigError, match="n_max"):
        HashGridTarget({**FAST, "n_min": 32, "n_max": 8}, TrialContext())
    with pytest.raises(ConfigError, match="image"):
        HashGridTarget({**FAST, "image": "camera"}, TrialContext())


def test_run_target_reports_each_interval() -> None:
    ctx = TrialContext(seed=0, budget=30, report_every=10, metric="psnr")
    result = run_target(HashGridTarget, dict(FAST), ctx)
    assert [step for step, _ in result.curve] == [10, 20, 30]
    assert result.curve[-1][1] > result.curve[0][1]


def test_registered_under_models() -> None:
    assert TARGETS.get("models:hashgrid") is HashGridTarget
