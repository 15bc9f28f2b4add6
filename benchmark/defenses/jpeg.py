"""JPEG compression as a purifier (Dziugaite et al. 2016, "A study of the effect of JPG compression on
adversarial images"; Guo et al., ICLR 2018), through the real codec (PIL/libjpeg), 4:2:0 chroma subsampling.

Default ``quality = 50``. Not differentiable: BPDA backpropagates through kornia's differentiable JPEG
(Reich et al., "Differentiable JPEG: The Devil is in the Details", WACV 2024) at the same quality,
or through the identity (Athalye et al. 2018) with ``surrogate = "identity"``. Images whose sides are
not multiples of 16 fall back to the identity surrogate.
"""
from __future__ import annotations

from typing import Literal

import torch

from ..images import jpeg_roundtrip
from ..registry import DEFENSES
from .base import Defense


@DEFENSES.register("jpeg")
class JPEG(Defense):
    """JPEG re-compression with the real codec (Guo et al., ICLR 2018); quality 1..95, default 50."""

    differentiable = False

    def __init__(self, quality: int = 50, surrogate: Literal["differentiable_jpeg", "identity"] = "differentiable_jpeg"):
        super().__init__()
        if not 1 <= quality <= 95:
            raise ValueError(f"JPEG quality must be within 1..95, got {quality}")
        if surrogate not in ("differentiable_jpeg", "identity"):
            raise ValueError(f"surrogate must be 'differentiable_jpeg' or 'identity', got {surrogate!r}")
        self.quality, self.surrogate_kind = quality, surrogate

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        if self.surrogate_kind == "identity" or x.shape[-1] % 16 or x.shape[-2] % 16:
            return x
        import kornia

        q = torch.full((x.shape[0],), float(self.quality), device=x.device)
        return kornia.enhance.jpeg_codec_differentiable(x, q)

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.stack([jpeg_roundtrip(img, self.quality) for img in x])
