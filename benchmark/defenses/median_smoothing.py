"""Median randomized smoothing of an IQA score with its certificate (Chiang et al., NeurIPS 2020; used on
IQA by the "Stochastic BIQA" line of work), formulas.md §5.

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

``sample_batch`` is the number of noisy copies per forward pass of the metric. ``None`` (default) tunes
it once per (metric, cost of the defense, device, image shape) in this process (the cost: the defense's class,
settings and the architecture of the modules it runs, :meth:`MedianSmoothing.tune_key`): the first chunks of
real samples try 1, 2, 4, … (up to 64 on a CPU, 512 on a GPU, stopping past the peak or at an out-of-memory
error) and the fastest per sample is kept (the bare metric's best batched throughput is the yardstick:
``benchmarks/smoothing_throughput.py``). The noise does not depend on the batch chosen: on the CPU each
sample's noise is one ``torch.randn`` of the image's shape (drawn into a reused buffer; torch draws normals
in groups of 16 from consecutive uniforms, so where an image's size is a multiple of 16 these are the same
numbers as the former blocks of 50 samples), on a GPU it is drawn on the device in blocks of
``NOISE_BLOCK = 50`` samples, each from a device generator seeded by the given one.
"""
from __future__ import annotations

import logging
import time
import weakref

import numpy as np
import torch

from ..certify import median_certificate
from ..params import MAX_L2, MAX_NOISE_SIGMA, MAX_SAMPLES, within
from ..registry import DEFENSES
from .base import Defense

log = logging.getLogger(__name__)

NOISE_BLOCK = 50  # noisy copies per draw on a GPU, whatever the forward batch
TUNE_REPEATS = 2  # timed chunks per candidate batch size (after one warm-up chunk)
TUNE_CANDIDATES = {"cpu": (1, 2, 4, 8, 16, 32, 64), "cuda": (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)}
PAST_PEAK = 1.25  # stop trying larger batches once one is this much slower per sample than the best


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


class BatchTuner:
    """Tries forward batch sizes on real samples (no extra work) and settles on the fastest per sample."""

    def __init__(self, candidates: tuple[int, ...]):
        self.candidates, self.i, self.warm = list(candidates), 0, False
        self.times: dict[int, list[float]] = {}
        self.chosen: int | None = None

    def next_batch(self, n: int) -> int:
        if self.chosen is None and self.warm and self.candidates[self.i] > n:
            self._choose()  # this defense's n cannot measure the larger candidates
        return self.chosen or min(self.candidates[self.i], n)

    def record(self, k: int, seconds: float) -> None:
        if self.chosen is not None or k != self.candidates[self.i]:
            return  # a chunk cut short by the end of the image measures nothing
        if not self.warm:
            self.warm = True
            return
        self.times.setdefault(k, []).append(seconds / k)
        if len(self.times[k]) < TUNE_REPEATS:
            return
        best = min(min(v) for v in self.times.values())
        if min(self.times[k]) > PAST_PEAK * best or self.i + 1 == len(self.candidates):
            self._choose()
        else:
            self.i += 1

    def too_big(self, k: int) -> None:
        """``k`` samples did not fit in memory: settle among the smaller ones."""
        self.candidates = [c for c in self.candidates if c < k] or [1]
        self.i = min(self.i, len(self.candidates) - 1)
        if self.times:
            self._choose()

    def _choose(self) -> None:
        self.chosen = min(self.times, key=lambda b: min(self.times[b])) if self.times else self.candidates[0]
        log.info("median smoothing: %d noisy samples per forward pass (%s)", self.chosen,
                 ", ".join(f"{b}: {1e3 * min(t):.2f} ms/sample" for b, t in sorted(self.times.items())))


_TUNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # metric -> {(cost, device, shape): tuner}


def tuner_for(metric, defense, img: torch.Tensor) -> BatchTuner:
    """The in-process tuner of (metric, the defense's :meth:`~MedianSmoothing.tune_key`, device, image shape),
    created on first use."""
    try:
        per_metric = _TUNERS.setdefault(metric, {})
    except TypeError:  # a metric object that cannot be weakly referenced: one tuning per defense instance
        per_metric = defense.__dict__.setdefault("_own_tuners", {})
    key = (defense.tune_key(), str(img.device), tuple(img.shape), img.dtype)
    if key not in per_metric:
        per_metric[key] = BatchTuner(TUNE_CANDIDATES["cuda" if img.device.type == "cuda" else "cpu"])
    return per_metric[key]


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

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        """What runs between the noise and the metric (nothing for plain median smoothing)."""
        return x

    def tune_key(self) -> tuple:
        """What the cost of a forward pass depends on, keying the batch tuner: the class, the settings (public
        scalar attributes) and the architecture of the modules it runs (the shapes of their parameters and
        buffers), so two denoisers of different sizes get a tuning each and two checkpoints of one
        architecture share one."""
        settings = sorted((k, v) for k, v in vars(self).items()
                          if not k.startswith("_") and isinstance(v, (bool, int, float, str)))
        arch = tuple((k, tuple(v.shape), v.dtype) for k, v in self.state_dict().items())
        return type(self).__qualname__, tuple(settings), arch

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
        """B×n metric scores of noisy (and denoised) copies of each image, ``sample_batch`` (or the tuned
        number) per forward pass; the noise comes from one :class:`NoiseStream` per image."""
        out = []
        for img in x:
            ys, done = [], 0
            tuner = tuner_for(metric, self, img) if self.sample_batch is None else None
            self._stream = NoiseStream(self.draw_gaussian, img, self.n, generator)
            try:
                while done < self.n:
                    k = self.sample_batch or tuner.next_batch(self.n)
                    k = min(k, self.n - done)
                    t0 = time.perf_counter()
                    try:
                        ys.append(self.batch_scores(metric, img.expand(k, *img.shape), generator).float().cpu())
                    except torch.cuda.OutOfMemoryError:
                        if tuner is None or tuner.chosen is not None or k == 1:
                            raise
                        self._stream.unread_last()
                        tuner.too_big(k)
                        torch.cuda.empty_cache()
                        continue
                    if tuner is not None:
                        tuner.record(k, time.perf_counter() - t0)
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
