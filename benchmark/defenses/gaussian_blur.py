"""Gaussian blur as a purifier (one of the filters of the Guardians and purification benchmarks), via kornia.

Default ``sigma = 1.0`` pixel; the kernel covers ±3σ. Differentiable.
"""
from __future__ import annotations

import torch

from ..images import gaussian_blur
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
        return gaussian_blur(x, self.sigma)
