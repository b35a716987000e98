"""RELICv2 target: the loss's invariance term, training, determinism, checkpoints, the driver."""

from __future__ import annotations

import pytest
import torch

from autorl.errors import ConfigError
from autorl.targets import TrialContext, run_target
from autorl.targets.models.relicv2 import RelicV2Target, augment, relic_loss

TINY = {"batch_size": 32, "width": 8}


def test_identical_views_have_zero_invariance_term() -> None:
    gen = torch.Generator().manual_seed(0)
    z, t = torch.randn(16, 8, generator=gen), torch.randn(16, 8, generator=gen)
    loss = relic_loss((z, z.clone()), (t, t.clone()), temperature=0.2, invariance_weight=5.0)
    assert loss.invariance.abs() < 1e-6
    torch.testing.assert_close(loss.total, loss.contrastive)
    assert loss.contrastive > 0


def test_invariance_term_is_the_kl_between_view_distributions() -> None:
    gen = torch.Generator().manual_seed(1)
    z1, z2, t1, t2 = (torch.randn(12, 6, generator=gen) for _ in range(4))
    loss = relic_loss((z1, z2), (t1, t2), temperature=0.5, invariance_weight=2.0)
    n = [x / x.norm(dim=1, keepdim=True) for x in (z1, z2, t1, t2)]
    expected = 0.0
    for t in (n[2], n[3]):
        p1, p2 = (n[0] @ t.T / 0.5).softmax(dim=1), (n[1] @ t.T / 0.5).softmax(dim=1)
        expected += (p1 * (p1.log() - p2.log())).sum(dim=1).mean() / 2
    torch.testing.assert_close(loss.invariance, expected)
    torch.testing.assert_close(loss.total, loss.contrastive + 2.0 * expected)


def test_augment_is_identity_at_zero_strength_and_stays_in_range() -> None:
    images = torch.rand(4, 1, 16, 16)
    gen = torch.Generator().manual_seed(0)
    torch.testing.assert_close(augment(images, 0.0, gen), images)
    views = augment(images, 1.0, gen)
    assert views.min() >= 0.0 and views.max() <= 1.0
    assert not torch.allclose(views, images)


def test_probe_accuracy_improves_with_training() -> None:
    target = RelicV2Target(TINY, TrialContext(seed=0))
    before = target.train(0)["probe_acc"]
    after = target.train(30)
    assert after["probe_acc"] > before + 0.05
    assert after["invariance"] >= 0.0


def test_same_seed_gives_identical_metrics() -> None:
    a = RelicV2Target(TINY, TrialContext(seed=2)).train(5)
    b = RelicV2Target(TINY, TrialContext(seed=2)).train(5)
    assert a == b


def test_checkpoint_resumes_exactly(tmp_path) -> None:
    uninterrupted = RelicV2Target(TINY, TrialContext(seed=1))
    uninterrupted.train(4)
    expected = uninterrupted.train(4)
    first = RelicV2Target(TINY, TrialContext(seed=1))
    first.train(4)
    first.save(tmp_path / "ckpt")
    resumed = RelicV2Target(TINY, TrialContext(seed=7))  # another seed: load must restore everything
    resumed.load(tmp_path / "ckpt")
    assert resumed.train(4) == expected


def test_reconfigure_changes_mutable_keys() -> None:
    target = RelicV2Target(TINY, TrialContext(seed=0))
    target.reconfigure({"learning_rate": 1.0e-4, "temperature": 0.5})
    assert target.cfg.temperature == 0.5
    assert all(g["lr"] == 1.0e-4 for g in target.optimizer.param_groups)


def test_run_target_reports_each_interval() -> None:
    ctx = TrialContext(seed=0, budget=6, report_every=3, metric="probe_acc")
    result = run_target(RelicV2Target, TINY, ctx)
    assert [step for step, _ in result.curve] == [3, 6]
    assert 0.0 <= result.metrics["probe_acc"] <= 1.0


@pytest.mark.parametrize(("key", "value"), [("temperature", 0.0), ("ema_decay", 1.5), ("batch_size", 1)])
def test_invalid_config_names_the_key(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=key):
        RelicV2Target({key: value}, TrialContext(seed=0))
