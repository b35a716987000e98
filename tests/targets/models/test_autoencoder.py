from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autorl.errors import ConfigError
from autorl.targets import TARGETS, TrialContext, run_target
from autorl.targets.models._data import load_digits_split
from autorl.targets.models.autoencoder import AutoencoderTarget

FAST = {"width": 32, "channels": 8, "batch_size": 32}


@pytest.mark.parametrize(
    "config",
    [
        {"arch": "mlp", "variant": "plain"},
        {"arch": "conv", "variant": "denoising", "noise_std": 0.3},
        {"arch": "mlp", "variant": "sparse", "sparsity_weight": 0.01},
    ],
)
def test_training_lowers_validation_error(config: dict) -> None:
    target = AutoencoderTarget({**FAST, **config}, TrialContext(seed=0))
    untrained = target.evaluate()["val_mse"]
    first = target.train(20)["val_mse"]
    later = target.train(80)
    assert later["val_mse"] < first < untrained
    assert later["train_loss"] > 0.0
    assert later["budget"] == 100


def test_same_seed_gives_identical_metrics_and_other_seed_differs() -> None:
    config = {**FAST, "variant": "denoising"}
    a = AutoencoderTarget(config, TrialContext(seed=3)).train(30)
    b = AutoencoderTarget(config, TrialContext(seed=3)).train(30)
    c = AutoencoderTarget(config, TrialContext(seed=4)).train(30)
    assert a == b
    assert a["val_mse"] != c["val_mse"]


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_checkpoint_round_trip_continues_exactly(tmp_path: Path, arch: str) -> None:
    config = {**FAST, "arch": arch, "variant": "denoising"}
    straight = AutoencoderTarget(config, TrialContext(seed=1))
    straight.train(15)
    expected = straight.train(15)

    first = AutoencoderTarget(config, TrialContext(seed=1))
    first.train(15)
    first.save(tmp_path / "ckpt")
    resumed = AutoencoderTarget(config, TrialContext(seed=99))  # a different seed: load must override it
    resumed.load(tmp_path / "ckpt")
    assert resumed.train(15) == expected


def test_reconfigure_changes_learning_rate_and_refuses_architecture() -> None:
    target = AutoencoderTarget(FAST, TrialContext(seed=0))
    target.reconfigure({"learning_rate": 0.05})
    assert all(g["lr"] == 0.05 for g in target.optimizer.param_groups)
    with pytest.raises(ConfigError, match="latent_dim"):
        target.reconfigure({"latent_dim": 3})


def test_sparse_variant_shrinks_the_code() -> None:
    plain = AutoencoderTarget({**FAST, "variant": "plain"}, TrialContext(seed=0)).train(60)
    sparse = AutoencoderTarget(
        {**FAST, "variant": "sparse", "sparsity_weight": 0.5}, TrialContext(seed=0)
    ).train(60)
    assert sparse["code_l1"] < 0.5 * plain["code_l1"]


def test_bad_config_is_refused_with_the_key() -> None:
    with pytest.raises(ConfigError, match="variant"):
        AutoencoderTarget({"variant": "contractive"}, TrialContext())
    with pytest.raises(ConfigError, match="unknown key"):
        AutoencoderTarget({"latent": 4}, TrialContext())
    with pytest.raises(ConfigError, match="latent_dim: must be an integer"):
        AutoencoderTarget({"latent_dim": 2.5}, TrialContext())
    # A sampler's 8.0 for an int key, and a number written as a string, are accepted.
    target = AutoencoderTarget({"latent_dim": 8.0, "learning_rate": "1e-3"}, TrialContext())
    assert target.cfg.latent_dim == 8 and target.cfg.learning_rate == 1e-3


def test_split_follows_the_seed() -> None:
    a = load_digits_split(0, 0.2)
    b = load_digits_split(0, 0.2)
    c = load_digits_split(1, 0.2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])
    assert a[0].shape[1:] == (8, 8) and 0.0 <= a[0].min() and a[0].max() <= 1.0
    assert len(a[0]) + len(a[2]) == 1797


def test_run_target_reports_each_interval() -> None:
    ctx = TrialContext(seed=0, budget=60, report_every=20, metric="val_mse")
    result = run_target(AutoencoderTarget, dict(FAST), ctx, maximize=False)
    assert [step for step, _ in result.curve] == [20, 40, 60]
    assert result.curve[-1][1] < result.curve[0][1]
    assert result.budget_used == 60


def test_registered_under_models() -> None:
    assert TARGETS.get("models:autoencoder") is AutoencoderTarget
