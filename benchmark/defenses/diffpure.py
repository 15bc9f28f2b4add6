"""DiffPure (Nie, Guo, Huang, Xiao, Vahdat, Anandkumar, "Diffusion Models for Adversarial Purification",
ICML 2022), docs/measures.md#diffpure: diffuse the image to ``t*``, ``x_t* = √ᾱ_t* x + √(1 - ᾱ_t*) ε`` (images in
[-1, 1]), then run the reverse process from ``t*`` to 0 with a pretrained diffusion model.

The model is a local directory in the ``diffusers`` format: ``unet/`` (a ``UNet2DModel``) and
``scheduler/`` (a ``DDPMScheduler``), as written by ``save_pretrained`` (nothing is downloaded); OpenAI's
guided-diffusion (ADM) checkpoints convert to one with ``python -m benchmark.tools.convert_adm``. Images
are resized to the UNet's ``sample_size`` and back. Presets of the IQA literature: ``t*`` ∈ {5, 10, 20,
30, 50} of 1000. Stochastic (noise from the run's generator); not differentiated through: full gradients
through the reverse chain are memory-hungry, so BPDA uses the identity and EOT averages the randomness.

Needs the optional extra ``diffpure`` (``pip install -e ".[diffpure]"``). Default ``t_star = 10``.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..params import MAX_STEPS, within
from ..registry import DEFENSES
from .base import Defense
from .diffusion_model import load_ddpm, model_output


@DEFENSES.register("diffpure")
class DiffPure(Defense):
    """DiffPure (Nie et al., ICML 2022): diffuse to t*, reverse DDPM from t* with a local diffusers model."""

    stochastic = True
    differentiable = False

    def __init__(self, model_dir: Path, t_star: int = 10):
        super().__init__()
        within("t_star", t_star, 0, MAX_STEPS, integer=True)  # checked against the model's schedule below
        self.unet, self.scheduler = load_ddpm(Path(model_dir), "diffpure")
        steps = self.scheduler.config.num_train_timesteps
        if not 0 <= t_star < steps:
            raise ValueError(f"t_star must be within [0, {steps}), got {t_star}")
        self.t_star = t_star

    @torch.no_grad()
    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        h, w = x.shape[-2:]
        size = self.unet.config.sample_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        z = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False) if (h, w) != size else x
        z = z * 2 - 1
        t = torch.full((x.shape[0],), self.t_star, dtype=torch.long, device=x.device)
        noise = torch.randn(z.shape, generator=generator, device="cpu").to(x.device)
        z = self.scheduler.add_noise(z, noise, t)
        for step in range(self.t_star, -1, -1):
            eps = model_output(self.unet, z, step, self.scheduler)
            # DDPM's posterior noise, drawn from the run's generator for reproducibility
            z = self.scheduler.step(eps, step, z, generator=generator).prev_sample
        out = ((z.clamp(-1, 1) + 1) / 2)
        if (h, w) != size:
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
        return out.clamp(0, 1)
