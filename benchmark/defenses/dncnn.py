"""A learned denoiser as a purifier: the DnCNN-style network of :mod:`benchmark.defenses.denoiser`
(Zhang et al., IEEE TIP 2017) loaded from a checkpoint written by
``python -m benchmark.defenses.train_denoiser`` (noisy and/or adversarial inputs, clean targets).
Differentiable, so adaptive attacks go straight through it. Parameter: ``weights`` (checkpoint path).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..registry import DEFENSES
from .base import Defense
from .denoiser import load_denoiser


@DEFENSES.register("dncnn")
class DnCNNPurifier(Defense):
    """DnCNN-style learned denoiser (Zhang et al., TIP 2017) from a checkpoint of train_denoiser."""

    def __init__(self, weights: Path):
        super().__init__()
        self.net, self.train_config = load_denoiser(weights)
        for p in self.net.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.net(x)
