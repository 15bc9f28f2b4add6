"""Graded synthetic distortions (five levels each), for the built-in dataset and the default model.

Types follow the common IQA databases (LIVE, TID2013, KADID-10k): additive Gaussian noise, Gaussian
blur, JPEG compression, contrast reduction, desaturation, and darkening (gamma). Levels 1..5 go from
barely visible to strong. All are deterministic given the generator.
"""
from __future__ import annotations

import kornia
import torch

from ..images import gaussian_blur, jpeg_roundtrip

LEVELS = {
    "noise": [0.01, 0.025, 0.05, 0.08, 0.12],       # Gaussian noise std on [0,1]
    "blur": [0.8, 1.3, 2.0, 3.0, 4.5],              # Gaussian blur sigma in pixels
    "jpeg": [60, 35, 20, 10, 5],                    # JPEG quality
    "contrast": [0.8, 0.65, 0.5, 0.35, 0.22],       # blend factor towards the mean grey
    "saturation": [0.7, 0.5, 0.3, 0.15, 0.0],       # saturation factor
    "darken": [1.3, 1.6, 2.0, 2.5, 3.2],            # gamma
}
DISTORTIONS = tuple(LEVELS)


def distort(img: torch.Tensor, kind: str, level: int, generator: torch.Generator) -> torch.Tensor:
    """Apply distortion ``kind`` at ``level`` (1..5) to a 3×H×W image in [0,1]; returns an 8-bit image."""
    if kind not in LEVELS:
        raise ValueError(f"unknown distortion {kind!r}; expected one of {DISTORTIONS}")
    if not 1 <= level <= 5:
        raise ValueError(f"distortion level must be 1..5, got {level}")
    p = LEVELS[kind][level - 1]
    x = img[None]
    if kind == "noise":
        out = x + p * torch.randn(x.shape, generator=generator)
    elif kind == "blur":
        out = gaussian_blur(x, p)
    elif kind == "jpeg":
        out = jpeg_roundtrip(img, int(p))[None]
    elif kind == "contrast":
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        out = mean + p * (x - mean)
    elif kind == "saturation":
        out = kornia.enhance.adjust_saturation(x, p)
    else:  # darken
        out = x.clamp(0, 1) ** p
    return (out.clamp(0, 1)[0] * 255).round() / 255
