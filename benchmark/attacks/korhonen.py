"""Korhonen & You, "Adversarial Attacks against Blind Image Quality Assessment Models", QoEVMA 2022,
in score space: the perturbation is masked by a spatial-activity map (Sobel gradient magnitude of
luma, normalised to [0,1] per image, dilated) so it hides in texture, and optimised with Adam
(docs/measures.md#attacks-the-score-objective). For comparison at equal budget it is also projected onto the L∞ ball of radius eps.

Defaults: ``eps = 8/255``, ``steps = 10``, ``lr = 0.005``, ``dilation = 3``. Ranges: ``eps`` in (0, 1],
``steps`` within 1..10⁵, ``lr`` in (0, 1], ``dilation`` odd within 1..63.
"""
from __future__ import annotations

import kornia
import torch
import torch.nn.functional as F

from ..params import MAX_KERNEL, MAX_STEPS, within
from ..registry import ATTACKS
from .base import Attack, Direction


def activity_map(x: torch.Tensor, dilation: int = 3) -> torch.Tensor:
    """B×1×H×W in [0,1]: Sobel magnitude of luma, normalised by its per-image maximum, dilated."""
    luma = kornia.color.rgb_to_grayscale(x)
    mag = kornia.filters.sobel(luma)
    mag = mag / mag.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    if dilation > 1:
        mag = F.max_pool2d(mag, dilation, stride=1, padding=dilation // 2)
    return mag


@ATTACKS.register("korhonen")
class Korhonen(Attack):
    """Korhonen & You (QoEVMA 2022): texture-masked perturbation optimised with Adam, within an L∞ budget."""

    threat_model = "linf"

    def __init__(self, eps: float = 8 / 255, steps: int = 10, lr: float = 0.005, dilation: int = 3,
                 direction: Direction = "increase"):
        super().__init__(direction)
        within("eps", eps, 0, 1, lo_open=True)
        within("steps", steps, 1, MAX_STEPS, integer=True)
        within("lr", lr, 0, 1, lo_open=True)  # the perturbation lives in [-eps, eps]: a larger step is meaningless
        within("dilation", dilation, 1, MAX_KERNEL, integer=True, odd=True)  # an even window shifts the mask
        self.eps, self.steps, self.lr, self.dilation = eps, steps, lr, dilation

    def perturb(self, model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        mask = activity_map(x, self.dilation)
        delta = torch.zeros_like(x, requires_grad=True)
        opt = torch.optim.Adam([delta], lr=self.lr)
        with torch.enable_grad():
            for _ in range(self.steps):
                adv = (x + mask * delta.clamp(-self.eps, self.eps)).clamp(0, 1)
                loss = -self.objective(model, adv).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
        return (x + mask * delta.detach().clamp(-self.eps, self.eps)).clamp(0, 1)
