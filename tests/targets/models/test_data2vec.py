from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autorl.errors import ConfigError
from autorl.targets import TARGETS, TrialContext, run_target
from autorl.targets.models.data2vec import Data2VecTarget, span_mask, teacher_targets, tokenize

FAST = {"dim": 16, "depth": 2, "heads": 2, "batch_size": 32, "total_steps": 100}


def test_tokens_are_rows_or_2x2_patches_in_raster_order() -> None:
    images = torch.arange(2 * 64, dtype=torch.float32).view(2, 8, 8)
    assert torch.equal(tokenize(images, "row"), images)
    patches = tokenize(images, "patch")
    assert patches.shape == (2, 16, 4)
    # Patch 5 is row 1, column 1 of the 4x4 patch grid: pixels (2..3, 2..3).
    assert torch.equal(patches[1, 5], images[1, 2:4, 2:4].reshape(-1))


def test_span_mask_covers_whole_spans_up_to_the_ratio() -> None:
    gen = torch.Generator().manual_seed(0)
    mask = span_mask(500, 16, 0.5, 2, gen)
    assert mask.shape == (500, 16) and mask.dtype == torch.bool
    share = mask.float().sum(1) / 16
    assert share.min() >= 2 / 16 and share.max() <= 0.5
    assert 0.35 < share.mean() < 0.5  # spans may overlap, so a little under the ratio on average
    one = span_mask(200, 10, 0.1, 3, gen)  # round(0.1 * 10 / 3) = 0, but at least one span is masked
    assert (one.sum(1) == 3).all()
    starts = one.float().argmax(1)
    assert all(one[i, s : s + 3].all() for i, s in enumerate(starts.tolist()))


def test_targets_average_the_top_k_normalised_layers() -> None:
    torch.manual_seed(0)
    layers = [torch.randn(2, 5, 4) * (i + 1) + i for i in range(4)]
    layer = teacher_targets(layers, 2, "layer")
    expected = (
        sum(
            (h - h.mean(-1, keepdim=True)) / torch.sqrt(h.var(-1, unbiased=False, keepdim=True) + 1e-5)
            for h in layers[-2:]
        )
        / 2
    )
    torch.testing.assert_close(layer, expected)
    instance = teacher_targets(layers, 3, "instance")
    expected = (
        sum(
            (h - h.mean(1, keepdim=True)) / torch.sqrt(h.var(1, unbiased=False, keepdim=True) + 1e-5)
            for h in layers[-3:]
        )
        / 3
    )
    torch.testing.assert_close(instance, expected)


def test_top_k_above_the_depth_averages_every_block() -> None:
    layers = [torch.randn(2, 3, 4) for _ in range(2)]
    torch.testing.assert_close(teacher_targets(layers, 5, "layer"), teacher_targets(layers, 2, "layer"))
    a = Data2VecTarget({**FAST, "top_k": 2}, TrialContext(seed=0)).train(3)
    b = Data2VecTarget({**FAST, "top_k": 9}, TrialContext(seed=0)).train(3)
    assert a == b


def test_ema_decay_anneals_linearly_then_holds() -> None:
    config = {**FAST, "ema_start": 0.9, "ema_end": 0.99, "ema_anneal_frac": 0.5, "total_steps": 0}
    target = Data2VecTarget(config, TrialContext(seed=0, budget=200))  # total_steps 0: the budget
    assert target.ema_decay(0) == pytest.approx(0.9)
    assert target.ema_decay(50) == pytest.approx(0.945)
    assert target.ema_decay(100) == pytest.approx(0.99)
    assert target.ema_decay(150) == pytest.approx(0.99)


def test_teacher_is_the_moving_average_of_the_student() -> None:
    target = Data2VecTarget({**FAST, "ema_start": 0.8, "ema_end": 0.8}, TrialContext(seed=0))
    before = [p.clone() for p in target.teacher.parameters()]
    target.train(1)
    assert all(not p.requires_grad for p in target.teacher.parameters())
    for old, teacher, student in zip(
        before, target.teacher.parameters(), target.student.parameters(), strict=True
    ):
        torch.testing.assert_close(teacher, 0.8 * old + 0.2 * student)


def test_loss_reads_only_the_masked_positions(monkeypatch: pytest.MonkeyPatch) -> None:
    import autorl.targets.models.data2vec as d2v

    target = Data2VecTarget(dict(FAST), TrialContext(seed=0))
    seen: dict[str, torch.Tensor] = {}
    real_loss = d2v.F.smooth_l1_loss

    def spy(pred: torch.Tensor, targets: torch.Tensor, beta: float) -> torch.Tensor:
        seen["n"] = torch.tensor(len(pred))
        return real_loss(pred, targets, beta=beta)

    real_mask = d2v.span_mask

    def mask_spy(*args: object) -> torch.Tensor:
        seen["mask"] = real_mask(*args)  # type: ignore[arg-type]
        return seen["mask"]

    monkeypatch.setattr(d2v, "span_mask", mask_spy)
    monkeypatch.setattr(d2v.F, "smooth_l1_loss", spy)
    target.train(1)
    assert int(seen["n"]) == int(seen["mask"].sum()) < seen["mask"].numel()


def test_pretraining_raises_probe_accuracy() -> None:
    config = {**FAST, "dim": 32, "learning_rate": 3.0e-3, "total_steps": 300}
    target = Data2VecTarget(config, TrialContext(seed=0))
    untrained = target.evaluate()["probe_acc"]
    metrics = target.train(300)
    assert metrics["probe_acc"] > untrained + 0.02
    assert metrics["budget"] == 300


def test_same_seed_gives_identical_metrics_and_other_seed_differs() -> None:
    a = Data2VecTarget(FAST, TrialContext(seed=2)).train(10)
    b = Data2VecTarget(FAST, TrialContext(seed=2)).train(10)
    c = Data2VecTarget(FAST, TrialContext(seed=3)).train(10)
    assert a == b
    assert a["train_loss"] != c["train_loss"]


@pytest.mark.parametrize("tokens", ["row", "patch"])
def test_checkpoint_round_trip_continues_exactly(tmp_path: Path, tokens: str) -> None:
    config = {**FAST, "tokens": tokens}
    straight = Data2VecTarget(config, TrialContext(seed=1))
    straight.train(8)
    expected = straight.train(8)

    first = Data2VecTarget(config, TrialContext(seed=1))
    first.train(8)
    first.save(tmp_path / "ckpt")
    resumed = Data2VecTarget(config, TrialContext(seed=5))
    resumed.load(tmp_path / "ckpt")
    assert resumed.train(8) == expected


def test_reconfigure_changes_learning_rate_only() -> None:
    target = Data2VecTarget({**FAST, "warmup_frac": 0.0}, TrialContext(seed=0))
    target.reconfigure({"learning_rate": 0.02})
    assert all(g["lr"] == 0.02 for g in target.optimizer.param_groups)
    target.train(1)
    assert all(g["lr"] == 0.02 for g in target.optimizer.param_groups)
    with pytest.raises(ConfigError, match="top_k"):
        target.reconfigure({"top_k": 1})


def test_bad_config_is_refused_with_the_key() -> None:
    with pytest.raises(ConfigError, match="top_k"):
        Data2VecTarget({**FAST, "top_k": 0}, TrialContext())
    with pytest.raises(ConfigError, match="heads"):
        Data2VecTarget({**FAST, "heads": 3}, TrialContext())


def test_run_target_reports_each_interval() -> None:
    ctx = TrialContext(seed=0, budget=20, report_every=10, metric="probe_acc")
    result = run_target(Data2VecTarget, dict(FAST), ctx)
    assert [step for step, _ in result.curve] == [10, 20]
    assert 0.0 < result.metrics["probe_acc"] <= 1.0


def test_registered_under_models() -> None:
    assert TARGETS.get("models:data2vec") is Data2VecTarget
