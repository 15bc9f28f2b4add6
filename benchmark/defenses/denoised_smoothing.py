"""Denoised median smoothing (DMS, the "Stochastic BIQA" method), docs/measures.md#certified-defenses:
``G(x) = median_ε f(Den(clip01(x + ε)))`` with a convolutional denoiser ``Den`` trained on noisy images at
the smoothing σ with a reconstruction loss plus a ranking loss on the metric's outputs
(``python -m benchmark.training.denoiser``), so the smoothed metric keeps the rank order of the
reference scores that plain median smoothing loses. The certificate is the same as median smoothing's:
the denoiser is part of the smoothed function.

Parameters as :class:`MedianSmoothing` (``sample_batch = None``: tuned, once per denoiser architecture),
plus ``denoiser`` (a checkpoint path, required). The checkpoint's training σ is checked against ``sigma``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..registry import DEFENSES
from .denoiser import load_frozen_denoiser
from .median_smoothing import MedianSmoothing

log = logging.getLogger(__name__)


@DEFENSES.register("denoised_smoothing")
class DenoisedSmoothing(MedianSmoothing):
    """Denoised median smoothing (DMS / Stochastic BIQA): median of f(Den(x + N(0, σ²))) with a certificate."""

    def __init__(self, denoiser: Path, sigma: float = 0.12, radius: float = 0.05, n: int = 100,
                 confidence: float = 0.999, sample_batch: int | None = None):
        super().__init__(sigma=sigma, radius=radius, n=n, confidence=confidence, sample_batch=sample_batch)
        self.den, self.den_config = load_frozen_denoiser(denoiser, "denoiser")  # errors name the file and key
        trained = self.den_config.get("sigma")
        if trained is not None and abs(trained - sigma) > 1e-9:
            log.warning("denoiser %s was trained at sigma=%s but is used at sigma=%s", denoiser, trained, sigma)

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        return self.den(x)
