"""DAT target: trains, is deterministic, checkpoints exactly, and its deformable attention behaves."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from autorl.errors import ConfigError
from autorl.targets import TrialContext, run_target
from autorl.targets.models.dat import DATTarget, DeformableAttention

TINY = {"dim": 16, "batch_size": 32, "deform_stages": "2,3"}


def _attention(range_factor: float = 1.5, ref_stride: int = 2) -> DeformableAttention:
    torch.manual_seed(0)
    return DeformableAttention(
        8, size=8, heads=2, groups=2, range_factor=range_factor, kernel=3, ref_stride=ref_stride
    )


def test_offsets_are_bounded_by_the_range_factor() -> None:
    attn = _attention(range_factor=1.5)
    with torch.no_grad():
        attn.offset_net[-1].weight.mul_(1000.0)  # saturate tanh so the bound itself is reached
    offsets = attn.offsets(torch.randn(3, 8, 8, 8))
    assert offsets.shape == (3 * 2, 4, 4, 2)  # (batch * groups, 8 / ref_stride, 8 / ref_stride, xy)
    bound = 1.5 / 4  # factor times half a cell of the 4x4 reference grid (a cell spans 2 / 4)
    assert offsets.abs().max() <= bound + 1e-6
    assert offsets.abs().max() > 0.99 * bound


def test_zero_offsets_sample_the_reference_grid() -> None:
    x = torch.randn(2, 8, 8, 8)
    attn = _attention(ref_stride=1)
    with torch.no_grad():
        attn.offset_net[-1].weight.zero_()
    offsets = attn.offsets(x)
    assert torch.equal(offsets, torch.zeros_like(offsets))
    sampled, _ = attn.sample(x, offsets)
    # At stride 1 the reference points are the pixel centres: sampling returns the map itself.
    torch.testing.assert_close(sampled.reshape(2, 8, 8, 8), x)
    # At stride 2 they sit between four pixels, so bilinear sampling is 2x2 average pooling.
    attn2 = _attention(ref_stride=2)
    sampled2, _ = attn2.sample(x, torch.zeros(2 * 2, 4, 4, 2))
    torch.testing.assert_close(sampled2.reshape(2, 8, 4, 4), F.avg_pool2d(x, 2))


def test_position_bias_reads_the_table_at_pixel_displacements() -> None:
    torch.manual_seed(0)
    attn = DeformableAttention(8, size=4, heads=2, groups=2, range_factor=1.0, kernel=3, ref_stride=1)
    with torch.no_grad():
        attn.rpe_table.copy_(torch.randn_like(attn.rpe_table))
    _, pos = attn.sample(torch.randn(1, 8, 4, 4), torch.zeros(2, 4, 4, 2))  # keys at the query pixels
    bias = attn.position_bias(pos, 4, 4)  # (1, heads, 16 queries, 16 keys)
    for head in range(2):
        for q in range(16):
            for k in range(16):
                dy, dx = q // 4 - k // 4, q % 4 - k % 4  # query minus key, in pixels
                expected = attn.rpe_table[head, 3 + dy, 3 + dx]
                torch.testing.assert_close(bias[0, head, q, k], expected)


def test_trains_above_its_untrained_accuracy() -> None:
    target = DATTarget(TINY, TrialContext(seed=0))
    before = target.train(0)["val_acc"]
    after = target.train(60)
    assert after["val_acc"] > before + 0.3
    assert after["steps"] == 60


def test_same_seed_gives_identical_metrics() -> None:
    a = DATTarget(TINY, TrialContext(seed=3)).train(15)
    b = DATTarget(TINY, TrialContext(seed=3)).train(15)
    assert a == b


def test_checkpoint_resumes_exactly(tmp_path) -> None:
    uninterrupted = DATTarget(TINY, TrialContext(seed=1))
    uninterrupted.train(10)
    expected = uninterrupted.train(10)
    first = DATTarget(TINY, TrialContext(seed=1))
    first.train(10)
    first.save(tmp_path / "ckpt")
    resumed = DATTarget(TINY, TrialContext(seed=99))  # another seed: load must restore everything
    resumed.load(tmp_path / "ckpt")
    assert resumed.train(10) == expected


def test_reconfigure_sets_the_learning_rate() -> None:
    target = DATTarget(TINY, TrialContext(seed=0))
    target.reconfigure({"learning_rate": 1.0e-4})
    assert all(g["lr"] == 1.0e-4 for g in target.optimizer.param_groups)


def test_run_target_reports_each_interval() -> None:
    ctx = TrialContext(seed=0, budget=20, report_every=10, metric="val_acc")
    result = run_target(DATTarget, TINY, ctx)
    assert [step for step, _ in result.curve] == [10, 20]
    assert 0.0 <= result.metrics["val_acc"] <= 1.0


@pytest.mark.parametrize(
    ("config", "key"),
    [({"heads": 2, "offset_groups": 4}, "offset_groups"), ({"deform_stages": "4"}, "deform_stages")],
)
def test_invalid_config_names_the_key(config: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        DATTarget(config, TrialContext(seed=0))
