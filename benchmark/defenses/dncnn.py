"""A learned denoiser as a purifier: the DnCNN-style network of :mod:`benchmark.defenses.denoiser`
(Zhang et al., IEEE TIP 2017) loaded from a checkpoint written by
``python -m benchmark.training.denoiser`` (noisy and/or adversarial inputs, clean targets).
Differentiable, so adaptive attacks go straight through it. Parameter: ``weights`` (checkpoint path; a
missing, corrupt or foreign file is one error naming it: :func:`.denoiser.load_frozen_denoiser`).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..registry import DEFENSES
from .base import CheckpointDefense
from .denoiser import load_frozen_denoiser


@DEFENSES.register("dncnn")
class DnCNNPurifier(CheckpointDefense):
    """DnCNN-style learned denoiser (Zhang et al., TIP 2017) from a checkpoint of benchmark.training.denoiser."""

    def __init__(self, weights: Path):
        super().__init__()
        self.net, self.train_config = load_frozen_denoiser(weights, "weights")

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.net(x)
