"""StylEx target: modulated convolution, AttFind, training, determinism, checkpoints, the driver."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from autorl.errors import ConfigError
from autorl.targets import TrialContext, run_target
from autorl.targets.models.stylex import (
    Attribute,
    ModulatedConv2d,
    StylExTarget,
    apply_attributes,
    attfind,
)

TINY = {"channels": 8, "style_dim": 16, "attfind_images": 16, "top_k": 3}


def test_unit_style_equals_demodulated_convolution() -> None:
    torch.manual_seed(0)
    conv = ModulatedConv2d(4, 3, 3)
    with torch.no_grad():
        conv.bias.copy_(torch.randn(3))
    x = torch.randn(2, 4, 5, 5)
    demodulated = conv.weight / conv.weight.pow(2).sum(dim=(1, 2, 3), keepdim=True).add(1e-8).sqrt()
    expected = F.conv2d(x, demodulated, conv.bias, padding=1)
    torch.testing.assert_close(conv(x, torch.ones(2, 4)), expected)


def test_modulation_matches_scaling_the_weights_per_sample() -> None:
    torch.manual_seed(1)
    conv = ModulatedConv2d(4, 3, 3)
    x, style = torch.randn(2, 4, 5, 5), torch.rand(2, 4) + 0.5
    for i in range(2):
        w = conv.weight * style[i][None, :, None, None]
        w = w / w.pow(2).sum(dim=(1, 2, 3), keepdim=True).add(1e-8).sqrt()
        torch.testing.assert_close(conv(x, style)[i : i + 1], F.conv2d(x[i : i + 1], w, conv.bias, padding=1))


@pytest.fixture(scope="module")
def trained() -> StylExTarget:
    target = StylExTarget(TINY, TrialContext(seed=0))
    target.train(30)
    return target


def test_attfind_returns_k_distinct_coordinates(trained: StylExTarget) -> None:
    idx = trained.attfind_idx
    with torch.no_grad():
        styles = trained.stylespace(trained.x_train[idx], trained.logits_train[idx])
    attrs = attfind(trained.generator.synthesize, trained.classifier, styles, shift=3.0, top_k=6)
    assert len({a.coordinate for a in attrs}) == 6
    assert all(0 <= a.coordinate < trained.generator.stylespace_dim and a.sign in (-1, 1) for a in attrs)
    # The first choice is, by brute force, the single shift that most lowers the original class's probability.
    std = styles.std(dim=0)
    with torch.no_grad():
        probs0 = trained.classifier(trained.generator.synthesize(styles)).softmax(dim=1)
        y0 = probs0.argmax(dim=1, keepdim=True)
        drops = {}
        for coord in range(styles.shape[1]):
            for sign in (1, -1):
                moved = apply_attributes(styles, [Attribute(coord, sign, 0.0)], std, 3.0)
                probs = trained.classifier(trained.generator.synthesize(moved)).softmax(dim=1)
                drops[coord, sign] = float((probs0.gather(1, y0) - probs.gather(1, y0)).mean())
    assert max(drops, key=drops.__getitem__) == (attrs[0].coordinate, attrs[0].sign)
    assert attrs[0].effect == pytest.approx(max(drops.values()), abs=1e-5)
    moved = apply_attributes(styles, attrs[:1], std, 3.0)
    changed = (moved - styles).abs().sum(dim=0).nonzero().flatten().tolist()
    assert changed == [attrs[0].coordinate]
    with pytest.raises(ValueError, match="top_k"):
        attfind(trained.generator.synthesize, trained.classifier, styles, shift=3.0, top_k=10_000)


def test_training_improves_flip_rate_and_reconstructions() -> None:
    target = StylExTarget(TINY, TrialContext(seed=0))
    before = target.train(0)
    after = target.train(60)
    assert after["flip_rate"] > before["flip_rate"] + 0.2
    assert after["label_consistency"] > before["label_consistency"] + 0.3
    assert after["recon_mse"] < before["recon_mse"]


def test_same_seed_gives_identical_metrics() -> None:
    a = StylExTarget(TINY, TrialContext(seed=2)).train(10)
    b = StylExTarget(TINY, TrialContext(seed=2)).train(10)
    assert a == b


@pytest.mark.parametrize("adv_weight", [0.0, 0.1])
def test_checkpoint_resumes_exactly(tmp_path, adv_weight: float) -> None:
    config = {**TINY, "adv_weight": adv_weight}
    uninterrupted = StylExTarget(config, TrialContext(seed=1))
    uninterrupted.train(5)
    expected = uninterrupted.train(5)
    first = StylExTarget(config, TrialContext(seed=1))
    first.train(5)
    first.save(tmp_path / "ckpt")
    resumed = StylExTarget(config, TrialContext(seed=5))  # another seed: load must restore everything
    resumed.load(tmp_path / "ckpt")
    assert resumed.train(5) == expected


def test_run_target_reports_each_interval() -> None:
    ctx = TrialContext(seed=0, budget=10, report_every=5, metric="flip_rate")
    result = run_target(StylExTarget, TINY, ctx)
    assert [step for step, _ in result.curve] == [5, 10]
    assert {"flip_rate", "recon_mse", "label_consistency"} <= set(result.metrics)


@pytest.mark.parametrize(("key", "value"), [("recon_loss", "l3"), ("top_k", 0), ("kl_weight", -1.0)])
def test_invalid_config_names_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key):
        StylExTarget({key: value}, TrialContext(seed=0))


def test_reconfigure_changes_learning_rate_and_loss_weights() -> None:
    target = StylExTarget(TINY, TrialContext(seed=0))
    target.reconfigure({"learning_rate": 1.0e-4, "adv_weight": 0.2})
    assert target.cfg.adv_weight == 0.2
    for opt in (target.optimizer, target.d_optimizer):
        assert all(g["lr"] == 1.0e-4 for g in opt.param_groups)
