"""Median randomized smoothing of an IQA score with its certificate (Chiang et al., NeurIPS 2020; used on
IQA by the "Stochastic BIQA" line of work), formulas.md §5.

``G(x) = median_ε f(clip01(x + ε))``, ``ε ~ N(0, σ²I)``, estimated from ``n`` samples, with the certified
interval ``[y_(q_l), y_(q_u)]`` for every L2 perturbation of norm ≤ ``radius`` at ``confidence``
(:mod:`benchmark.certify`). The defense wraps the metric (``wraps_metric``): the runner asks it for
scores and certificates instead of purified images. For adaptive attacks its ``forward`` is one noisy
draw ``clip01(x + ε)``, so EOT over it attacks the smoothed model.

Defaults: ``sigma = 0.12``, ``radius = 0.05``, ``confidence = 0.999`` (the public IQA code), ``n = 100``
(the public code uses 1000: set ``n = 1000`` on a GPU; with 100 samples the certified order statistics
are y_(20) and y_(81) instead of y_(293) and y_(708) of 1000, a wider interval), ``sample_batch = 50``.
"""
from __future__ import annotations

import numpy as np
import torch

from ..certify import median_certificate
from ..registry import DEFENSES
from .base import Defense


@DEFENSES.register("median_smoothing")
class MedianSmoothing(Defense):
    """Median smoothing (Chiang et al., NeurIPS 2020): median of f(x + N(0, σ²)) with a certified interval."""

    stochastic = True
    differentiable = True
    wraps_metric = True

    def __init__(self, sigma: float = 0.12, radius: float = 0.05, n: int = 100, confidence: float = 0.999,
                 sample_batch: int = 50):
        super().__init__()
        if sigma <= 0 or radius < 0 or n < 1 or not 0 < confidence < 1 or sample_batch < 1:
            raise ValueError("need sigma > 0, radius >= 0, n >= 1, 0 < confidence < 1, sample_batch >= 1")
        self.sigma, self.radius, self.n, self.confidence = sigma, radius, n, confidence
        self.sample_batch = sample_batch

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        """What runs between the noise and the metric (nothing for plain median smoothing)."""
        return x

    def noisy(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if x.device.type == "cpu" or generator is None:
            eps = torch.randn(x.shape, generator=generator, device="cpu").to(x.device)
        else:
            # Drawn on the GPU from a generator seeded by the given one: drawing n = 1000 copies on the CPU and
            # copying them over made the GPU wait (1.5 s per 256-px image on an H100). Reproducible per device,
            # not bit-equal to a CPU run's draws.
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            eps = torch.randn(x.shape, generator=torch.Generator(device=x.device).manual_seed(seed), device=x.device)
        return (x + self.sigma * eps).clamp(0, 1)

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.denoise(self.noisy(x, generator))

    @torch.no_grad()
    def samples(self, metric, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """B×n metric scores of noisy (and denoised) copies of each image, in batches of ``sample_batch``."""
        out = []
        for img in x:
            ys = []
            for start in range(0, self.n, self.sample_batch):
                k = min(self.sample_batch, self.n - start)
                ys.append(metric(self.forward(img.expand(k, *img.shape), generator=generator)).float().cpu())
            out.append(torch.cat(ys))
        return torch.stack(out)

    def score(self, metric, x: torch.Tensor, *, generator: torch.Generator | None = None
              ) -> tuple[torch.Tensor, list[dict]]:
        ys = self.samples(metric, x, generator).numpy()
        certs = [median_certificate(y, self.radius, self.sigma, self.confidence) for y in ys]
        scores = torch.tensor(np.array([c["smoothed"] for c in certs]), dtype=torch.float32)
        return scores, certs
