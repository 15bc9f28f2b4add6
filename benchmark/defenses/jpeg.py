"""JPEG compression as a purifier (Dziugaite et al. 2016, "A study of the effect of JPG compression on
adversarial images"; Guo et al., ICLR 2018), through the real codec (PIL/libjpeg), 4:2:0 chroma subsampling.

Default ``quality = 50``. Not differentiable: BPDA uses the identity surrogate (Athalye et al. 2018).
"""
from __future__ import annotations

import torch

from ..datasets.distortions import jpeg_roundtrip
from ..registry import DEFENSES
from .base import Defense


@DEFENSES.register("jpeg")
class JPEG(Defense):
    """JPEG re-compression with the real codec (Guo et al., ICLR 2018); quality 1..95, default 50."""

    differentiable = False

    def __init__(self, quality: int = 50):
        super().__init__()
        if not 1 <= quality <= 95:
            raise ValueError(f"JPEG quality must be within 1..95, got {quality}")
        self.quality = quality

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.stack([jpeg_roundtrip(img, self.quality) for img in x])
