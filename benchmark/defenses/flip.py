"""Flip as a purifier (one of the geometric transforms of the Guardians and purification benchmarks).

Default: horizontal flip, always applied (``p = 1``); with ``p < 1`` it is stochastic and the runner
gives clean and attacked branches the same draw. Differentiable. It breaks the pixel alignment an
attack relies on, and for the same reason costs purified quality measured against the clean image.
"""
from __future__ import annotations

from typing import Literal

import torch

from ..registry import DEFENSES
from .base import Defense


@DEFENSES.register("flip")
class Flip(Defense):
    """Horizontal or vertical flip, with probability p (default: horizontal, p = 1)."""

    def __init__(self, axis: Literal["horizontal", "vertical"] = "horizontal", p: float = 1.0):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be within [0, 1], got {p}")
        self.dim = -1 if axis == "horizontal" else -2
        self.p = p
        self.stochastic = p < 1.0

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.p >= 1.0:
            return torch.flip(x, dims=[self.dim])
        draw = torch.rand(x.shape[0], generator=generator) < self.p
        out = x.clone()
        out[draw] = torch.flip(x[draw], dims=[self.dim])
        return out
