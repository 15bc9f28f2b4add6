"""Differentiable JPEG as a purifier (Reich, Debnath, Siegismund, Cremers, "Differentiable JPEG: The Devil is
in the Details", WACV 2024; after Shin & Song, "JPEG-resistant Adversarial Images", 2017), the ``diffjpeg``
defense of the Guardians benchmark (msu-video-group/adversarial-defenses-for-iqa,
``metrics/defences/diffjpeg``: quality 50).

The codec is kornia's ``jpeg_codec_differentiable`` (Reich et al.'s implementation, the same function the
``jpeg`` defense's BPDA surrogate runs): colour conversion, 4:2:0 chroma subsampling, 8×8 DCT, quantisation
with the standard tables scaled to ``quality``, with a differentiable rounding (``x_r + (x − x_r)³``, Reich
et al.'s polynomial rounding; the Guardians run uses a straight-through estimator instead), so gradients
flow through it and an attack needs no BPDA: the defense is ``differentiable``. Sides that are not a
multiple of 16 are padded by the codec and cropped back.

Default ``quality = 50``, within 1..100.
"""
from __future__ import annotations

import torch

from ..params import within
from ..registry import DEFENSES
from .base import Defense


def differentiable_jpeg(x: torch.Tensor, quality: float) -> torch.Tensor:
    """kornia's differentiable JPEG of B×3×H×W images in [0, 1] at ``quality`` (one for the batch)."""
    import kornia

    q = torch.full((x.shape[0],), float(quality), device=x.device, dtype=torch.float32)
    return kornia.enhance.jpeg_codec_differentiable(x, q)


@DEFENSES.register("diffjpeg")
class DiffJPEG(Defense):
    """Differentiable JPEG (Reich et al., WACV 2024) at ``quality`` (default 50): a purifier gradients flow through."""

    differentiable = True

    def __init__(self, quality: int = 50):
        super().__init__()
        within("quality", quality, 1, 100, integer=True)
        self.quality = quality

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return differentiable_jpeg(x, self.quality).clamp(0, 1)
