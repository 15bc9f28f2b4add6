"""Additive random Gaussian noise as a purifier (the randomisation baseline of Liu et al., "Towards
Robust Neural Networks via Random Self-ensemble", ECCV 2018, and of the purification benchmarks).
Stochastic and differentiable. Default ``sigma = 0.03``, within (0, 10] (images in [0, 1]).
"""
from __future__ import annotations

import torch

from ..params import MAX_NOISE_SIGMA, within
from ..registry import DEFENSES
from .base import Defense


@DEFENSES.register("random_noise")
class RandomNoise(Defense):
    """Additive Gaussian noise N(0, sigma²), clipped to [0,1]; default sigma 0.03."""

    stochastic = True

    def __init__(self, sigma: float = 0.03):
        super().__init__()
        within("sigma", sigma, 0, MAX_NOISE_SIGMA, lo_open=True)
        self.sigma = sigma

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=generator, device="cpu").to(x.device)
        return (x + self.sigma * noise).clamp(0, 1)
