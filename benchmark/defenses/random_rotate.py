"""Random rotation as a purifier (a geometric transform of the Guardians benchmark and of Xie et al.,
ICLR 2018's randomisation defenses), via kornia: each image is rotated by an angle drawn uniformly from
``[-max_degrees, max_degrees]`` (the runner gives clean and attacked branches the same draw), reflect
padding. Stochastic and differentiable. Default ``max_degrees = 10``. It changes geometry: ``align``
rotates the clean image by the same angles (same draws), so full-reference quality can also be measured
against the rotated clean image (docs/measures.md#defense).
"""
from __future__ import annotations

import kornia
import torch

from ..registry import DEFENSES
from .base import GeometricDefense


@DEFENSES.register("random_rotate")
class RandomRotate(GeometricDefense):
    """Random rotation by up to ±max_degrees (kornia, reflect padding); default 10°."""

    stochastic = True

    def __init__(self, max_degrees: float = 10.0):
        super().__init__()
        if not 0 < max_degrees <= 180:
            raise ValueError(f"max_degrees must be within (0, 180], got {max_degrees}")
        self.max_degrees = max_degrees

    def draw(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """One angle in degrees per image, uniform in [-max_degrees, max_degrees]."""
        return (torch.rand(x.shape[0], generator=generator) * 2 - 1) * self.max_degrees

    @staticmethod
    def apply(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
        return kornia.geometry.transform.rotate(x, angle.to(x.device), padding_mode="reflection").clamp(0, 1)
