"""Gaussian blur as a purifier (one of the filters of the Guardians and purification benchmarks), via kornia.

Default ``sigma = 1.0`` pixel; the kernel covers ±3σ. Differentiable.
"""
from __future__ import annotations

import kornia
import torch

from ..registry import DEFENSES
from .base import Defense


@DEFENSES.register("gaussian_blur")
class GaussianBlur(Defense):
    """Gaussian blur (kornia); sigma in pixels, default 1.0."""

    def __init__(self, sigma: float = 1.0):
        super().__init__()
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.sigma = sigma

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        k = 2 * max(1, round(3 * self.sigma)) + 1
        return kornia.filters.gaussian_blur2d(x, (k, k), (self.sigma, self.sigma), border_type="reflect")
