"""PPO's policy objectives by name (:data:`OBJECTIVES`, kept in :mod:`autorl.engine.parts` so that a
config is checked without torch); ``EngineConfig.objective`` chooses one.

An objective maps the probability ratios of a minibatch, its advantages and the clip range to the
per-sample policy loss that the update minimises (its mean per member). A learned or alternative
objective is one function and one ``OBJECTIVES.register(name, fn, description)`` call.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from autorl.engine.parts import OBJECTIVES as OBJECTIVES  # where a user registers one


class PolicyObjective(Protocol):
    def __call__(self, ratio: Tensor, advantages: Tensor, clip_range: Tensor) -> Tensor:
        """The per-sample policy loss ``[k, n]`` to minimise.

        Args:
            ratio: ``[k, n]``: pi(a | s) / pi_old(a | s) of each member's samples, differentiable.
            advantages: ``[k, n]``: normalised per minibatch per member.
            clip_range: ``[k, 1]``: each member's clip range after its schedule.
        """
        ...


def clipped_surrogate(ratio: Tensor, advantages: Tensor, clip_range: Tensor) -> Tensor:
    """PPO's clipped surrogate (Schulman et al., 2017) as a loss: ``-min(r A, clip(r, 1 - c, 1 + c) A)``."""
    clipped = torch.maximum(torch.minimum(ratio, 1 + clip_range), 1 - clip_range)
    return -torch.minimum(advantages * ratio, advantages * clipped)
