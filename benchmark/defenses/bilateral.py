"""Bilateral filter as a purifier (Tomasi & Manduchi, ICCV 1998; used against adversarial examples by
Xu et al.'s feature-squeezing line of work), via kornia. Edge-preserving smoothing; differentiable.

Defaults: ``kernel = 5``, ``sigma_color = 0.1``, ``sigma_space = 1.5``. Ranges: ``kernel`` odd within 3..63,
``sigma_color`` in (0, 100] and at least ``MIN_SIGMA_COLOR`` ≈ 3.83e-20 (kornia's colour factor ``-0.5/σ²`` must be
a finite float32, else the centre weight is NaN), ``sigma_space`` in (0, 10] pixels and at least
``MIN_BLUR_SIGMA`` ≈ 0.1734 (the spatial Gaussian's, as for ``gaussian_blur``).
"""
from __future__ import annotations

import kornia
import torch

from ..params import (
    BLUR_SIGMA_WHY,
    MAX_BLUR_SIGMA,
    MAX_KERNEL,
    MIN_BLUR_SIGMA,
    MIN_SIGMA_COLOR,
    at_least,
    within,
)
from ..registry import DEFENSES
from .base import Defense


@DEFENSES.register("bilateral")
class Bilateral(Defense):
    """Bilateral filter (kornia); kernel 5, sigma_color 0.1, sigma_space 1.5."""

    def __init__(self, kernel: int = 5, sigma_color: float = 0.1, sigma_space: float = 1.5):
        super().__init__()
        within("kernel", kernel, 3, MAX_KERNEL, integer=True, odd=True)
        within("sigma_color", sigma_color, 0, 100.0, lo_open=True)
        within("sigma_space", sigma_space, 0, MAX_BLUR_SIGMA, lo_open=True)
        at_least("sigma_color", sigma_color, MIN_SIGMA_COLOR, "kornia's colour factor -0.5/sigma_color² must be a "
                 "finite float32, else the filter returns NaN")
        at_least("sigma_space", sigma_space, MIN_BLUR_SIGMA, BLUR_SIGMA_WHY)
        self.kernel, self.sigma_color, self.sigma_space = kernel, sigma_color, sigma_space

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return kornia.filters.bilateral_blur(x, self.kernel, self.sigma_color, (self.sigma_space, self.sigma_space))
