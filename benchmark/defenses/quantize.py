"""Colour bit-depth reduction as a purifier (Xu, Evans, Qi, "Feature Squeezing", NDSS 2018): each channel
is quantised to ``bits`` bits. Not differentiable (zero gradient almost everywhere): BPDA uses the
identity. Default ``bits = 5``.
"""
from __future__ import annotations

import torch

from ..registry import DEFENSES
from .base import Defense


@DEFENSES.register("quantize")
class Quantize(Defense):
    """Bit-depth reduction to ``bits`` bits per channel (Xu et al., NDSS 2018); default 5."""

    differentiable = False

    def __init__(self, bits: int = 5):
        super().__init__()
        if not 1 <= bits <= 7:
            raise ValueError(f"bits must be within 1..7, got {bits}")
        self.bits = bits

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        levels = 2 ** self.bits - 1
        return torch.round(x * levels) / levels
