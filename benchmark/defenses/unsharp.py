"""Unsharp masking as a purifier (a sharpening transform of the Guardians benchmark), via kornia:
``x + amount · (x - blur(x))``. Differentiable. Defaults: ``sigma = 1.0`` (pixels, within (0, 10], at least
``MIN_BLUR_SIGMA`` ≈ 0.1734 below which the blur, and so the mask, is the identity in float32),
``amount = 1.0`` (within (0, 100]).
"""
from __future__ import annotations

import torch

from ..images import gaussian_blur
from ..params import BLUR_SIGMA_WHY, MAX_BLUR_SIGMA, MIN_BLUR_SIGMA, at_least, within
from ..registry import DEFENSES
from .base import Defense


@DEFENSES.register("unsharp")
class UnsharpMask(Defense):
    """Unsharp mask x + amount·(x − blur(x)) (kornia); sigma 1.0, amount 1.0."""

    def __init__(self, sigma: float = 1.0, amount: float = 1.0):
        super().__init__()
        within("sigma", sigma, 0, MAX_BLUR_SIGMA, lo_open=True)
        at_least("sigma", sigma, MIN_BLUR_SIGMA, BLUR_SIGMA_WHY)
        within("amount", amount, 0, 100.0, lo_open=True)
        self.sigma, self.amount = sigma, amount

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        blurred = gaussian_blur(x, self.sigma)
        return (x + self.amount * (x - blurred)).clamp(0, 1)
