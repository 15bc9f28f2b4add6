"""Median randomized smoothing of an IQA score with its certificate (Chiang et al., NeurIPS 2020; used on
IQA by the "Stochastic BIQA" line of work), docs/measures.md#certified-defenses.

``G(x) = median_ε f(clip01(x + ε))``, ``ε ~ N(0, σ²I)``, estimated from ``n`` samples, with the certified
interval ``[y_(q_l), y_(q_u)]`` for every L2 perturbation of norm ≤ ``radius`` at ``confidence``
(:mod:`benchmark.certify`). The defense wraps the metric (``wraps_metric``): the runner asks it for
scores and certificates instead of purified images. For adaptive attacks its ``forward`` is one noisy
draw ``clip01(x + ε)``, so EOT over it attacks the smoothed model.

Defaults: ``sigma = 0.12``, ``radius = 0.05``, ``confidence = 0.999`` (the public IQA code), ``n = 100``
(the public code uses 1000: set ``n = 1000`` on a GPU; with 100 samples the certified order statistics
are y_(20) and y_(81) instead of y_(293) and y_(708) of 1000, a wider interval), ``sample_batch = None``.
Ranges: ``sigma`` in (0, 10], ``radius`` in [0, √3·4096] (L2 on [0, 1] images), ``n`` and ``sample_batch``
within 1..10⁶, ``confidence`` in (0, 1).

``sample_batch`` is the number of noisy copies per forward pass of the metric. A metric's float32 output
depends on its batch size (a CNN's kernels sum in another order: up to 1e-5 relative), so the batch is never
chosen by timing: ``None`` (default) is :func:`auto_sample_batch`, a rule of the device type and the image size
alone (the largest power of two whose copies hold at most 2¹⁶ pixels on a CPU, 2²⁴ on a GPU; at most 64 and
512, and ``n``), so a run's records are the same on a fast machine and a slow one, and after a resume in
another process. An explicit ``sample_batch`` is part of the config, the content key and the manifest. Only
running out of GPU memory changes an automatic batch (halved, with a warning naming the image size): set
``sample_batch`` to fix it. ``benchmarks/smoothing_throughput.py`` compares the automatic batch with fixed
ones against the bare metric's best batched throughput. The noise does not depend on the batch: on the CPU
each sample's noise is one ``torch.randn`` of the image's shape (drawn into a reused buffer; torch draws
normals in groups of 16 from consecutive uniforms, so where an image's size is a multiple of 16 these are
the same numbers as the former blocks of 50 samples), on a GPU it is drawn on the device in blocks of
``NOISE_BLOCK = 50`` samples, each from a device generator seeded by the given one.
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from ..certify import median_certificate
from ..params import MAX_L2, MAX_NOISE_SIGMA, MAX_SAMPLES, within
from ..registry import DEFENSES
from .base import Defense

log = logging.getLogger(__name__)

NOISE_BLOCK = 50  # noisy copies per draw on a GPU, whatever the forward batch
AUTO_PIXELS = {"cpu": 2**16, "cuda": 2**24}  # pixels per forward pass of the automatic batch (auto_sample_batch)
AUTO_MAX = {"cpu": 64, "cuda": 512}  # its largest value


class NoiseStream:
    """Standard normal noise for the ``n`` samples of one image, handed out in chunks of any size: the k-th
    sample's noise is the same whatever the chunking. On the CPU each sample is one draw of the image's shape,
    into a buffer reused from chunk to chunk (no allocation, and a sample stays in cache for the forward pass:
    drawing 50 samples at once was slower); on a GPU, blocks of :data:`NOISE_BLOCK` samples are drawn by
    ``draw``. A chunk is the caller's to overwrite until the next :meth:`take`."""

    def __init__(self, draw, img: torch.Tensor, n: int, generator: torch.Generator | None):
        self.draw, self.img, self.left = draw, img, n
        self.cpu = img.device.type == "cpu"
        self.generator = generator if generator is not None or not self.cpu else torch.default_generator
        self.buffer: torch.Tensor | None = None  # CPU: the chunk buffer; GPU: drawn samples not handed out
        self.last: torch.Tensor | None = None  # what unread_last gives back (GPU) ...
        self.state: torch.Tensor | None = None  # ... or the generator's state before the last chunk (CPU)
        self.last_k = 0

    def take(self, k: int) -> torch.Tensor:
        if k > self.left + (0 if self.cpu or self.buffer is None else len(self.buffer)):
            raise RuntimeError("more noisy samples asked for than n")
        return self._take_cpu(k) if self.cpu else self._take_blocks(k)

    def _take_cpu(self, k: int) -> torch.Tensor:
        if self.buffer is None or len(self.buffer) < k:
            self.buffer = torch.empty((k, *self.img.shape))
        self.state, self.last_k, self.left = self.generator.get_state(), k, self.left - k
        chunk = self.buffer[:k]
        for eps in chunk:
            torch.randn(self.img.shape, generator=self.generator, out=eps)
        return chunk

    def _take_blocks(self, k: int) -> torch.Tensor:
        parts = [] if self.buffer is None or not len(self.buffer) else [self.buffer]
        have = sum(len(p) for p in parts)
        while have < k:  # whole blocks of NOISE_BLOCK draws, concatenated once
            b = min(NOISE_BLOCK, self.left)
            parts.append(self.draw(self.img.expand(b, *self.img.shape), self.generator))
            self.left -= b
            have += b
        self.buffer = parts[0] if len(parts) == 1 else torch.cat(parts)
        self.last, self.buffer = self.buffer[:k], self.buffer[k:]
        return self.last.clone()  # the caller may overwrite it; unread_last needs the draws

    def unread_last(self) -> None:
        """Give the last chunk back (its forward pass failed and is retried in smaller chunks)."""
        if self.cpu:  # drawn again from the same generator state
            self.generator.set_state(self.state)
            self.left, self.state, self.last_k = self.left + self.last_k, None, 0
        else:
            self.buffer, self.last = torch.cat([self.last, self.buffer]), None


def auto_sample_batch(n: int, img: torch.Tensor) -> int:
    """Noisy copies of ``img`` (C×H×W) per forward pass when ``sample_batch`` is unset: the largest power of two
    whose copies hold at most :data:`AUTO_PIXELS` pixels of the device type, at least 1, at most
    :data:`AUTO_MAX` and ``n``. A rule of the device type and the image size alone, never of timing."""
    kind = "cuda" if img.device.type == "cuda" else "cpu"
    fit = max(1, AUTO_PIXELS[kind] // max(1, img.shape[-1] * img.shape[-2]))
    return max(1, min(1 << (fit.bit_length() - 1), AUTO_MAX[kind], n))


@DEFENSES.register("median_smoothing")
class MedianSmoothing(Defense):
    """Median smoothing (Chiang et al., NeurIPS 2020): median of f(x + N(0, σ²)) with a certified interval."""

    stochastic = True
    differentiable = True
    wraps_metric = True

    def __init__(self, sigma: float = 0.12, radius: float = 0.05, n: int = 100, confidence: float = 0.999,
                 sample_batch: int | None = None):
        super().__init__()
        within("sigma", sigma, 0, MAX_NOISE_SIGMA, lo_open=True)
        within("radius", radius, 0, MAX_L2)
        within("n", n, 1, MAX_SAMPLES, integer=True)
        within("confidence", confidence, 0, 1, lo_open=True, hi_open=True)
        if sample_batch is not None:
            within("sample_batch", sample_batch, 1, MAX_SAMPLES, integer=True)
        self.sigma, self.radius, self.n, self.confidence = sigma, radius, n, confidence
        self.sample_batch = sample_batch
        self._stream: NoiseStream | None = None  # set while samples() runs
        self._fits: dict[tuple, int] = {}  # image shape -> automatic batch halved after running out of GPU memory

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        """What runs between the noise and the metric (nothing for plain median smoothing)."""
        return x

    def gaussian(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Standard normal noise of ``x``'s shape, the caller's to overwrite: the next samples of the image's
        noise stream inside :meth:`samples`, else drawn from ``generator``."""
        if self._stream is not None and x.shape[1:] == self._stream.img.shape:
            return self._stream.take(x.shape[0])
        return self.draw_gaussian(x, generator)

    def draw_gaussian(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if x.device.type == "cpu":
            return torch.randn(x.shape, generator=generator)
        if generator is None:
            return torch.randn(x.shape, device=x.device)
        # Drawn on the GPU from a generator seeded by the given one: drawing n = 1000 copies on the CPU and
        # copying them over made the GPU wait (1.5 s per 256-px image on an H100). Reproducible per device,
        # not bit-equal to a CPU run's draws.
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        return torch.randn(x.shape, generator=torch.Generator(device=x.device).manual_seed(seed), device=x.device)

    def noisy(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """``clip01(x + σ ε)``, computed in the noise's own memory (the same numbers as out of place); the noise
        is float32, as ``x + σ ε`` would promote it."""
        eps = self.gaussian(x, generator).to(torch.promote_types(x.dtype, torch.float32))
        return eps.mul_(self.sigma).add_(x).clamp_(0, 1)

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.denoise(self.noisy(x, generator))

    def batch_scores(self, metric, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Metric scores of one noisy (and denoised) draw of each image of ``x``."""
        return metric(self.forward(x, generator=generator))

    @torch.no_grad()
    def samples(self, metric, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """B×n metric scores of noisy (and denoised) copies of each image, ``sample_batch`` (or
        :func:`auto_sample_batch`) per forward pass; the noise comes from one :class:`NoiseStream` per image."""
        out = []
        for img in x:
            ys, done = [], 0
            batch = self.sample_batch or self._fits.get(tuple(img.shape), auto_sample_batch(self.n, img))
            self._stream = NoiseStream(self.draw_gaussian, img, self.n, generator)
            try:
                while done < self.n:
                    k = min(batch, self.n - done)
                    try:
                        ys.append(self.batch_scores(metric, img.expand(k, *img.shape), generator).float().cpu())
                    except torch.cuda.OutOfMemoryError:
                        if self.sample_batch is not None or k == 1:
                            raise
                        self._stream.unread_last()
                        batch = self._fits[tuple(img.shape)] = max(1, k // 2)
                        log.warning("median smoothing: %d noisy copies of a %s image do not fit in GPU memory; %d "
                                    "per forward pass from now on (float rounding may differ from a run where "
                                    "they fitted: set sample_batch to fix the batch)", k, tuple(img.shape), batch)
                        torch.cuda.empty_cache()
                        continue
                    done += k
            finally:
                self._stream = None
            out.append(torch.cat(ys))
        return torch.stack(out)

    def score(self, metric, x: torch.Tensor, *, generator: torch.Generator | None = None
              ) -> tuple[torch.Tensor, list[dict]]:
        ys = self.samples(metric, x, generator).numpy()
        certs = [median_certificate(y, self.radius, self.sigma, self.confidence) for y in ys]
        scores = torch.tensor(np.array([c["smoothed"] for c in certs]), dtype=torch.float32)
        return scores, certs
