"""Gaussian blur as a purifier (one of the filters of the Guardians and purification benchmarks), via kornia.

Default ``sigma = 1.0`` pixel, within (0, 10] (the kernel covers ±3σ and must fit a 32-pixel image) and at least
``MIN_BLUR_SIGMA`` ≈ 0.1734 (below it the kernel's off-centre weights vanish in float32: the identity).
Differentiable.
"""
from __future__ import annotations

import torch

from ..images import gaussian_blur
from ..params import BLUR_SIGMA_WHY, MAX_BLUR_SIGMA, MIN_BLUR_SIGMA, at_least, within
from ..registry import DEFENSES
from .base import Defense


@DEFENSES.register("gaussian_blur")
class GaussianBlur(Defense):
    """Gaussian blur (kornia); sigma in pixels, default 1.0."""

    def __init__(self, sigma: float = 1.0):
        super().__init__()
        within("sigma", sigma, 0, MAX_BLUR_SIGMA, lo_open=True)
        at_least("sigma", sigma, MIN_BLUR_SIGMA, BLUR_SIGMA_WHY)
        self.sigma = sigma

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return gaussian_blur(x, self.sigma)
