"""Resize down and back up as a purifier (Xie et al., "Mitigating Adversarial Effects Through
Randomization", ICLR 2018; the "resize ×½" row of the purification literature), via kornia.

Default ``scale = 0.5``, ``interpolation = "bilinear"`` (antialiased on the way down). Differentiable.
``scale > 1`` upscales first and then comes back down (the "upscale" purifier). Its output has the
input's size with every pixel in place, so it does not change geometry (``changes_geometry`` stays False).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from ..registry import DEFENSES
from .base import Defense


@DEFENSES.register("resize")
class Resize(Defense):
    """Resize by ``scale`` and back to the input size (Xie et al., ICLR 2018); default ×0.5, bilinear."""

    def __init__(self, scale: float = 0.5, interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"):
        super().__init__()
        if not 0.1 <= scale <= 4.0 or scale == 1.0:
            raise ValueError(f"scale must be within [0.1, 4] and not 1, got {scale}")
        self.scale, self.mode = scale, interpolation

    def _resize(self, x: torch.Tensor, size) -> torch.Tensor:
        kw = {} if self.mode == "nearest" else {"align_corners": False, "antialias": True}
        return F.interpolate(x, size=size, mode=self.mode, **kw)

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        h, w = x.shape[-2:]
        small = self._resize(x, (max(8, round(h * self.scale)), max(8, round(w * self.scale))))
        return self._resize(small, (h, w)).clamp(0, 1)
