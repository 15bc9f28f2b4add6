"""Random crop and resize back as a purifier (Guo, Rana, Cissé, van der Maaten, "Countering Adversarial
Images using Input Transformations", ICLR 2018; a geometric transform of the Guardians benchmark).

Each image is cropped to ``scale`` of its height and width at a random position drawn from the
generator (the runner gives the clean and the attacked branch the same draw) and resized back to its
size (bilinear, differentiable). Default ``scale = 0.9``. Stochastic: evaluate it with EOT.
It changes geometry: ``align`` crops and resizes the clean image at the same positions (same draws), so
full-reference quality can also be measured against the cropped clean image (docs/measures.md#defense).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..registry import DEFENSES
from .base import GeometricDefense


@DEFENSES.register("random_crop")
class RandomCrop(GeometricDefense):
    """Random crop to scale·H × scale·W, resized back (Guo et al., ICLR 2018); default scale 0.9."""

    stochastic = True

    def __init__(self, scale: float = 0.9):
        super().__init__()
        if not 0.2 <= scale < 1.0:
            raise ValueError(f"scale must be within [0.2, 1), got {scale}")
        self.scale = scale

    def draw(self, x: torch.Tensor, generator: torch.Generator | None) -> tuple[int, int, list[int], list[int]]:
        """Crop height, width and each image's top and left corner (tops drawn first, then lefts)."""
        b, _, h, w = x.shape
        ch, cw = max(1, round(h * self.scale)), max(1, round(w * self.scale))
        tops = torch.randint(0, h - ch + 1, (b,), generator=generator).tolist()
        lefts = torch.randint(0, w - cw + 1, (b,), generator=generator).tolist()
        return ch, cw, tops, lefts

    @staticmethod
    def apply(x: torch.Tensor, crop: tuple[int, int, list[int], list[int]]) -> torch.Tensor:
        ch, cw, tops, lefts = crop
        h, w = x.shape[-2:]
        crops = [x[i:i + 1, :, t:t + ch, l:l + cw] for i, (t, l) in enumerate(zip(tops, lefts))]
        return torch.cat([F.interpolate(c, size=(h, w), mode="bilinear", align_corners=False) for c in crops])
