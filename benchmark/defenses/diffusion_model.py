"""A local DDPM in the ``diffusers`` format, shared by the diffusion defenses (``diffpure``,
``diffusion_smoothing``): loading, the model's noise prediction and the one-step estimate of the clean image.

A model directory holds ``unet/`` (a ``UNet2DModel``) and ``scheduler/`` (a ``DDPMScheduler``), as written by
their ``save_pretrained``; nothing is downloaded. OpenAI's guided-diffusion checkpoints (ADM, e.g.
``256x256_diffusion_uncond.pt``) become such a directory with ``python -m benchmark.tools.convert_adm``.
Models that learn their variance (ADM's ``learn_sigma``) output 2·C channels; the first C are the noise.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import MissingWeightsError

DIRECTORY_HINT = ("expected a diffusers model directory with unet/ and scheduler/ (as written by "
                  "UNet2DModel/DDPMScheduler.save_pretrained, or by python -m benchmark.tools.convert_adm "
                  "from a guided-diffusion checkpoint)")


def load_ddpm(model_dir: Path, what: str):
    """``(unet, scheduler)`` of a local diffusers directory; a missing part names the path and ``what``."""
    try:
        from diffusers import DDPMScheduler, UNet2DModel
    except ImportError:
        raise MissingWeightsError(what, "the diffusers package", "pip install -e \".[diffpure]\"") from None
    model_dir = Path(model_dir)
    for sub in ("unet", "scheduler"):
        if not (model_dir / sub).is_dir():
            raise MissingWeightsError(what, str(model_dir / sub), DIRECTORY_HINT)
    unet = UNet2DModel.from_pretrained(model_dir / "unet", local_files_only=True)
    scheduler = DDPMScheduler.from_pretrained(model_dir / "scheduler", local_files_only=True)
    for p in unet.parameters():
        p.requires_grad_(False)
    return unet.eval(), scheduler


def model_output(unet, z: torch.Tensor, t: int, scheduler=None) -> torch.Tensor:
    """The UNet's output at timestep ``t``; for a learned-variance model whose scheduler does not use the
    variance (or when no scheduler is given), only its first C channels (the noise prediction)."""
    out = unet(z, torch.full((z.shape[0],), t, dtype=torch.long, device=z.device)).sample
    learned = scheduler is not None and scheduler.config.variance_type in ("learned", "learned_range")
    if out.shape[1] == 2 * z.shape[1] and not learned:
        out = out[:, : z.shape[1]]
    return out


def predict_x0(scheduler, out: torch.Tensor, z: torch.Tensor, t: int) -> torch.Tensor:
    """The clean-image estimate from the UNet output at ``t`` (``x̂0 = (z - √(1-ᾱ_t) ε̂)/√ᾱ_t`` for ε-prediction)."""
    out = out[:, : z.shape[1]]
    a = float(scheduler.alphas_cumprod[t])
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return (z - (1 - a) ** 0.5 * out) / a ** 0.5
    if kind == "v_prediction":
        return a ** 0.5 * z - (1 - a) ** 0.5 * out
    if kind == "sample":
        return out
    raise ValueError(f"unsupported prediction_type {kind!r}")


def size_multiple(unet) -> int:
    """Height and width the UNet accepts must be multiples of this (2 per downsampling block)."""
    return 2 ** sum(getattr(b, "downsamplers", None) is not None for b in unet.down_blocks)


def pad_to_multiple(z: torch.Tensor, m: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad ``z`` on the bottom and right to multiples of ``m``; returns it and the original size."""
    h, w = z.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
        z = F.pad(z, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
    return z, (h, w)


__all__ = ["load_ddpm", "model_output", "pad_to_multiple", "predict_x0", "size_multiple"]
