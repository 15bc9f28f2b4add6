"""Flip as a purifier (one of the geometric transforms of the Guardians and purification benchmarks).

Default: horizontal flip, always applied (``p = 1``); with ``p < 1`` it is stochastic and the runner
gives clean and attacked branches the same draw. Differentiable. It breaks the pixel alignment an
attack relies on, and for the same reason costs purified quality measured against the clean image.
It changes geometry: ``align`` flips the clean image the same way (same draws), so full-reference
quality can also be measured against the mirrored clean image (docs/measures.md#defense).
"""
from __future__ import annotations

from typing import Literal

import torch

from ..registry import DEFENSES
from .base import GeometricDefense


@DEFENSES.register("flip")
class Flip(GeometricDefense):
    """Horizontal or vertical flip, with probability p (default: horizontal, p = 1)."""

    def __init__(self, axis: Literal["horizontal", "vertical"] = "horizontal", p: float = 1.0):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be within [0, 1], got {p}")
        self.dim = -1 if axis == "horizontal" else -2
        self.p = p
        self.stochastic = p < 1.0

    def draw(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor | None:
        """Which images of the batch are flipped (None: all of them, p = 1, nothing drawn)."""
        if self.p >= 1.0:
            return None
        return torch.rand(x.shape[0], generator=generator) < self.p

    def apply(self, x: torch.Tensor, flipped: torch.Tensor | None) -> torch.Tensor:
        if flipped is None:
            return torch.flip(x, dims=[self.dim])
        out = x.clone()
        out[flipped] = torch.flip(x[flipped], dims=[self.dim])
        return out
