"""Diffusion-denoised median smoothing: Carlini, Tramèr, Dvijotham, Rice, Sun, Kolter, "(Certified!!)
Adversarial Robustness for Free!", ICLR 2023 (docs/measures.md#certified-defenses, last bullet), as a regression certificate:
``G(x) = median_ε f(Den_t*(x + ε))``, ``ε ~ N(0, σ²I)``, with the certified interval of median smoothing
(the same order statistics, :func:`benchmark.certify.median_certificate`, for the same ``n``, ``sigma``,
``radius``, ``confidence``): the denoiser is part of the smoothed function.

``Den`` is one denoising step of a pretrained DDPM (a local diffusers directory, ``model``, as for
``diffpure``). Images in [0, 1] become [-1, 1], so the smoothing noise has std ``2σ`` there; the timestep is
``t* = argmin_t |√((1-ᾱ_t)/ᾱ_t) - 2σ|`` and ``x_t* = √ᾱ_t* · (2(x + ε) - 1)`` is the noisy image scaled to
that timestep (``x + ε`` is not clipped: clipping would change the noise the model expects). Then
``x̂0 = (x_t* - √(1-ᾱ_t*) ε̂(x_t*, t*)) / √ᾱ_t*``, mapped back to [0, 1] and clipped. This follows the public
code of the certified IQA study (katiashh/certified-iqa-defenses, ``ccrf/calc_ddrs_*.py``, after Carlini et
al.): images resized to 256×256, ``q_sample`` of ``2x - 1`` at ``t*``, ``p_sample(...)['pred_xstart']`` with
``clip_denoised = True``; that code takes the first ``t`` with ``√((1-ᾱ_t)/ᾱ_t) ≥ 2σ``, which at σ = 0.12 on
the linear 1000-step schedule is the same ``t* = 70`` (noise level 0.2414 for 2σ = 0.24).

``reverse_samples = k > 1`` is the DensePure idea (Xiao et al., ICLR 2023) as a regression variant: from each
noisy draw, ``k`` stochastic DDPM reverse chains from ``t*`` to 0 (``t* + 1`` model calls each), and the
draw's score is the median of ``f`` over the ``k`` outputs. The reverse noise does not depend on the input,
so the certificate is unchanged. One step (``k = 1``) is differentiable (EOT through the UNet for adaptive
attacks); chains are not (``differentiable = False`` then: BPDA through the identity).

The model runs at the image's own resolution (no resizing, which would change the noise level); sizes are
padded to the UNet's multiple. The certified study used OpenAI's unconditional 256×256 ADM
(``256x256_diffusion_uncond.pt`` of openai/guided-diffusion): convert it once with
``python -m benchmark.tools.convert_adm 256x256_diffusion_uncond.pt models/adm256-uncond`` and give
``model = "models/adm256-uncond"``; its output has 6 channels (learned variance) and the first 3 are ε̂.

Parameters as :class:`MedianSmoothing` (``sigma = 0.12``, ``radius = 0.05``, ``n = 100``,
``confidence = 0.999``, ``sample_batch``) plus ``model`` (required) and ``reverse_samples = 1`` (within 1..100).
Needs the optional extra ``diffpure`` (``pip install -e ".[diffpure]"``).
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..params import within
from ..registry import DEFENSES
from .diffusion_model import load_ddpm, model_output, pad_to_multiple, predict_x0, size_multiple
from .median_smoothing import NOISE_BLOCK, MedianSmoothing

log = logging.getLogger(__name__)


def matching_timestep(alphas_cumprod: torch.Tensor, sigma: float) -> int:
    """``argmin_t |√((1-ᾱ_t)/ᾱ_t) - 2σ|``: the timestep whose noise level in [-1, 1] is that of N(0, σ²) in [0, 1]."""
    a = alphas_cumprod.double()
    level = ((1 - a) / a).sqrt()
    top = float(level.max()) / 2
    if sigma > top:
        raise ValueError(f"sigma = {sigma} is beyond the scheduler's largest noise level (sigma {top:.4g})")
    return int((level - 2 * sigma).abs().argmin())


@DEFENSES.register("diffusion_smoothing")
class DiffusionSmoothing(MedianSmoothing):
    """Diffusion-denoised median smoothing (Carlini et al., ICLR 2023): median of f(DDPM one-step denoise of x + ε)."""

    def __init__(self, model: Path, sigma: float = 0.12, radius: float = 0.05, n: int = 100,
                 confidence: float = 0.999, sample_batch: int | None = None, reverse_samples: int = 1):
        if reverse_samples > 1 and sample_batch is None:
            # the reverse chains draw from the same generator as the noise blocks, so where a block falls among
            # their draws depends on the batch: keep it fixed (the noise block) rather than tuned by timing
            sample_batch = NOISE_BLOCK
        super().__init__(sigma=sigma, radius=radius, n=n, confidence=confidence, sample_batch=sample_batch)
        within("reverse_samples", reverse_samples, 1, 100, integer=True)  # each is a chain of t* + 1 UNet calls
        self.unet, self.scheduler = load_ddpm(Path(model), "diffusion_smoothing")
        self.t_star = matching_timestep(self.scheduler.alphas_cumprod, sigma)
        self.alpha_bar = float(self.scheduler.alphas_cumprod[self.t_star])
        self.reverse_samples = reverse_samples
        self.differentiable = reverse_samples == 1
        self.multiple = size_multiple(self.unet)
        size = self.unet.config.sample_size
        self.sample_size = (size, size) if isinstance(size, int) else tuple(size or ())
        self._warned_size = False
        log.info("diffusion_smoothing: sigma=%g -> t*=%d (noise level %.4f in [-1, 1], 2 sigma = %.4f)", sigma,
                 self.t_star, ((1 - self.alpha_bar) / self.alpha_bar) ** 0.5, 2 * sigma)

    def noisy(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return x + self.sigma * self.gaussian(x, generator)  # not clipped: the model expects Gaussian noise

    def to_timestep(self, noisy: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """``x_t* = √ᾱ_t* (2 noisy - 1)``, padded to the UNet's multiple; returns it and the image size."""
        if self.sample_size and tuple(noisy.shape[-2:]) != self.sample_size and not self._warned_size:
            log.warning("diffusion_smoothing: images of %s px, the model was trained at %s px",
                        tuple(noisy.shape[-2:]), self.sample_size)
            self._warned_size = True
        return pad_to_multiple(self.alpha_bar ** 0.5 * (2 * noisy - 1), self.multiple)

    def denoise(self, noisy: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One denoising step at ``t*`` (or, with ``reverse_samples > 1``, one reverse chain from ``t*``)."""
        z, (h, w) = self.to_timestep(noisy)
        if self.reverse_samples == 1:
            z = predict_x0(self.scheduler, model_output(self.unet, z, self.t_star), z, self.t_star)
        else:
            for step in range(self.t_star, -1, -1):
                out = model_output(self.unet, z, step, self.scheduler)
                z = self.scheduler.step(out, step, z, generator=generator).prev_sample
        return ((z[..., :h, :w] + 1) / 2).clamp(0, 1)

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.denoise(self.noisy(x, generator), generator)

    def batch_scores(self, metric, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if self.reverse_samples == 1:
            return super().batch_scores(metric, x, generator)
        noisy = self.noisy(x, generator)
        scores = torch.stack([metric(self.denoise(noisy, generator)).float()
                              for _ in range(self.reverse_samples)])
        return scores.quantile(0.5, dim=0)
