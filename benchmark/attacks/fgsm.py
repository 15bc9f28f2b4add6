"""FGSM in score space (Goodfellow, Shlens, Szegedy, "Explaining and Harnessing Adversarial Examples",
ICLR 2015): ``x' = clip01(x + eps · sgn(∇L(x)))`` with the score objective of docs/measures.md#attacks-the-score-objective.

Defaults: ``eps = 8/255`` (a Guardians budget category), ``direction = "increase"``.
"""
from __future__ import annotations

import torch

from ..registry import ATTACKS
from .base import Attack, Direction, project_linf


@ATTACKS.register("fgsm")
class FGSM(Attack):
    """FGSM (Goodfellow et al., ICLR 2015) on the IQA score; one signed-gradient step of size eps (L∞)."""

    threat_model = "linf"

    def __init__(self, eps: float = 8 / 255, direction: Direction = "increase"):
        super().__init__(direction)
        if not 0 < eps <= 1:
            raise ValueError(f"eps must be within (0, 1] (an L∞ radius on [0, 1] images), got {eps}")
        self.eps = eps

    def perturb(self, model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        grad, _ = self.gradient(model, x)
        return project_linf(x + self.eps * grad.sign(), x, self.eps).detach()
