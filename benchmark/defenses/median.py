"""Median filtering as a purifier (Xu, Evans, Qi, "Feature Squeezing", NDSS 2018), via kornia.

Default ``kernel = 3`` (odd, within 3..63). Differentiable almost everywhere (the gradient flows to the
selected pixels).
"""
from __future__ import annotations

import kornia
import torch

from ..params import MAX_KERNEL, within
from ..registry import DEFENSES
from .base import Defense


@DEFENSES.register("median")
class MedianFilter(Defense):
    """k×k median filter (Xu et al., NDSS 2018, feature squeezing); odd kernel, default 3."""

    def __init__(self, kernel: int = 3):
        super().__init__()
        within("kernel", kernel, 3, MAX_KERNEL, integer=True, odd=True)
        self.kernel = kernel

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return kornia.filters.median_blur(x, (self.kernel, self.kernel))
