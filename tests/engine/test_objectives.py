"""PPO's policy objectives: the clipped surrogate's values, and the config choosing one by name."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from autorl.engine.config import check_args
from autorl.engine.objectives import OBJECTIVES, clipped_surrogate
from autorl.engine.ppo import EngineConfig, Population
from autorl.errors import ConfigError

torch.set_num_threads(1)

SMALL: dict[str, Any] = {"n_envs": 4, "n_steps": 16, "n_epochs": 2, "n_minibatches": 2, "hidden": (8,)}


def test_the_clipped_surrogate_at_hand_computed_points() -> None:
    ratio = torch.tensor([[1.5, 1.5, 0.5, 0.5, 1.05]] * 2, dtype=torch.float64)
    advantages = torch.tensor([[2.0, -2.0, 1.0, -1.0, 1.0]] * 2, dtype=torch.float64)
    clip = torch.tensor([[0.2], [0.1]], dtype=torch.float64)  # one clip range per member
    loss = clipped_surrogate(ratio, advantages, clip)
    # -min(r A, clip(r, 1 - c, 1 + c) A): clipped where that is the smaller, else r A
    assert loss[0].tolist() == pytest.approx([-2.4, 3.0, -0.5, 0.8, -1.05])
    assert loss[1].tolist() == pytest.approx([-2.2, 3.0, -0.5, 0.9, -1.05])
    ratio.requires_grad_(True)
    (grad,) = torch.autograd.grad(clipped_surrogate(ratio, advantages, clip).sum(), ratio)
    # no gradient where the clipped term is chosen; -A where the ratio is
    assert grad[0].tolist() == pytest.approx([0.0, 2.0, -1.0, 0.0, -1.0])
    assert grad[1].tolist() == pytest.approx([0.0, 2.0, -1.0, 0.0, -1.0])


def test_an_unknown_objective_is_refused_with_the_closest() -> None:
    with pytest.raises(
        ConfigError, match=r"^objective: unknown ppo objective 'clipped'\. Did you mean 'clip'\? Valid: clip$"
    ):
        EngineConfig("CartPole-v1", objective="clipped")
    with pytest.raises(ConfigError, match="Did you mean 'clip'") as err:
        check_args({"env": "CartPole-v1", "objective": "Clip"}, [])
    assert err.value.key == "objective"


def test_the_population_calls_its_objective_through_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[torch.Size] = []

    def recorded(ratio: torch.Tensor, advantages: torch.Tensor, clip_range: torch.Tensor) -> torch.Tensor:
        calls.append(ratio.shape)
        return clipped_surrogate(ratio, advantages, clip_range)

    monkeypatch.setattr(OBJECTIVES, "_entries", dict(OBJECTIVES._entries))
    OBJECTIVES.register("recorded_clip", recorded, "the clipped surrogate, counting its calls")
    mine = Population(EngineConfig("CartPole-v1", objective="recorded_clip", **SMALL), [{}, {}], seeds=[0, 1])
    mine.train(64)
    assert calls == [torch.Size([2, 32])] * 4  # 2 epochs x 2 minibatches of 32, both members at once
    clip = Population(EngineConfig("CartPole-v1", **SMALL), [{}, {}], seeds=[0, 1])
    clip.train(64)
    assert torch.equal(mine.state_dict()["members"]["theta"], clip.state_dict()["members"]["theta"])


def test_a_state_saved_before_objectives_were_named_loads() -> None:
    pop = Population(EngineConfig("CartPole-v1", **SMALL), [{}], seeds=[0])
    pop.train(64)
    state = pop.state_dict()
    del state["config"]["objective"]
    other = Population(EngineConfig("CartPole-v1", **SMALL), [{}], seeds=[1])
    other.load_state_dict(state)
    assert torch.equal(other.state_dict()["members"]["theta"], pop.state_dict()["members"]["theta"])
    with pytest.raises(ValueError, match=r"differ in \['objective'\]"):
        state["config"]["objective"] = "other"
        other.load_state_dict(state)
