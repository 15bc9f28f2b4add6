"""Randomised smoothing by score bins (Cohen, Rosenfeld, Kolter, "Certified Adversarial Robustness via
Randomized Smoothing", ICML 2019), the classification baseline the IQA certification work compares with
(docs/measures.md#certified-defenses): the score range is cut into ``bins`` classes, ``g(x) = argmax_c P(f(x + ε) ∈ bin c)``;
``n0`` selection samples choose the top bin, ``n`` estimation samples give the Clopper–Pearson lower bound
``p̲_A`` of its probability at ``1 - alpha`` and the certified L2 radius ``R = σ Φ⁻¹(p̲_A)``; abstain if
``p̲_A ≤ ½``. The smoothed score is the centre of the top bin.

Defaults: ``sigma = 0.12``, ``bins = 10``, ``n0 = 20``, ``n = 100``, ``alpha = 0.001``, ``sample_batch = None``
(noisy copies per forward pass, tuned as median smoothing's; the noise does not depend on it). Ranges:
``sigma`` in (0, 10], ``bins`` within 2..10⁴, ``n0 + n`` at most 10⁶, ``alpha`` in [10⁻¹², 1), ``sample_batch``
within 1..10⁶.

``denoiser`` (optional, a checkpoint of ``python -m benchmark.training.denoiser``): denoised smoothing
(Salman et al., "Denoised Smoothing: A Provable Defense for Pretrained Classifiers", NeurIPS 2020), the
classes being score bins: ``f(Den(clip01(x + ε)))`` is binned instead of ``f(clip01(x + ε))``; the denoiser
is part of the smoothed function, so the certificate is unchanged (the certified IQA study's denoised
variants, as ``denoised_smoothing`` does for median smoothing). Its training σ is checked against ``sigma``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..certify import cohen_certificate
from ..params import MAX_SAMPLES, within
from ..registry import DEFENSES
from .denoiser import load_frozen_denoiser
from .median_smoothing import MedianSmoothing

log = logging.getLogger(__name__)


@DEFENSES.register("cohen_smoothing")
class CohenSmoothing(MedianSmoothing):
    """Randomised smoothing over score bins (Cohen et al., ICML 2019): top bin, Clopper–Pearson bound, L2 radius;
    denoised (Salman et al., NeurIPS 2020) with a ``denoiser`` checkpoint."""

    def __init__(self, sigma: float = 0.12, bins: int = 10, n0: int = 20, n: int = 100, alpha: float = 0.001,
                 sample_batch: int | None = None, denoiser: Path | None = None):
        within("bins", bins, 2, 10_000, integer=True)
        within("n0", n0, 1, MAX_SAMPLES, integer=True)
        within("n", n, 1, MAX_SAMPLES, integer=True)
        if n + n0 > MAX_SAMPLES:
            raise ValueError(f"n + n0 (the noisy samples per image) must be at most {MAX_SAMPLES}, got {n + n0}")
        within("alpha", alpha, 1e-12, 1, hi_open=True)  # 1 - alpha stays below 1 in floating point
        super().__init__(sigma=sigma, radius=0.0, n=n + n0, confidence=1 - alpha, sample_batch=sample_batch)
        self.bins, self.n0, self.alpha = bins, n0, alpha
        self.den = None
        if denoiser is not None:  # errors name the file and the key
            self.den, config = load_frozen_denoiser(denoiser, "denoiser")
            trained = config.get("sigma")
            if trained is not None and abs(trained - sigma) > 1e-9:
                log.warning("denoiser %s was trained at sigma=%s but is used at sigma=%s", denoiser, trained, sigma)

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.den is None else self.den(x)

    def score(self, metric, x: torch.Tensor, *, generator: torch.Generator | None = None
              ) -> tuple[torch.Tensor, list[dict]]:
        lo, hi = metric.score_range
        edges = np.linspace(lo, hi, self.bins + 1)
        ys = self.samples(metric, x, generator).numpy()
        scores, certs = [], []
        for y in ys:
            b = np.clip(np.digitize(y, edges[1:-1]), 0, self.bins - 1)
            c = cohen_certificate(b[: self.n0], b[self.n0:], self.sigma, self.alpha)
            centre = float((edges[c["bin"]] + edges[c["bin"] + 1]) / 2)
            scores.append(centre)
            width = edges[1] - edges[0]
            certs.append({"smoothed": centre, "cert_lo": centre - width / 2, "cert_hi": centre + width / 2,
                          "cert_delta": width / 2, "abstain": c["abstain"], "cert_radius": c["radius"]})
        return torch.tensor(scores, dtype=torch.float32), certs
