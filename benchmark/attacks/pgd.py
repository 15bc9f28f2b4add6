"""PGD in score space (Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks",
ICLR 2018): I-FGSM steps ``x_{t+1} = Π_{B∞(x,eps)} clip01(x_t + α · sgn(∇L(x_t)))`` from a uniform random
start in the ball, with optional restarts keeping, per image, the best objective (formulas.md §1).

Defaults: ``eps = 8/255``, ``steps = 10``, ``alpha = 2.5 · eps / steps`` (Madry's rule),
``random_start = true``, ``restarts = 1``, ``direction = "increase"``.
"""
from __future__ import annotations

import torch

from ..registry import ATTACKS
from .base import Attack, Direction, project_linf


@ATTACKS.register("pgd")
class PGD(Attack):
    """PGD-L∞ (Madry et al., ICLR 2018) on the IQA score: random start, signed steps, projection, restarts."""

    threat_model = "linf"

    def __init__(self, eps: float = 8 / 255, steps: int = 10, alpha: float | None = None,
                 random_start: bool = True, restarts: int = 1, direction: Direction = "increase"):
        super().__init__(direction)
        if eps <= 0 or steps < 1 or restarts < 1:
            raise ValueError(f"need eps > 0, steps >= 1, restarts >= 1 (got {eps}, {steps}, {restarts})")
        self.eps, self.steps, self.restarts = eps, steps, restarts
        self.alpha = alpha if alpha is not None else 2.5 * eps / steps
        self.random_start = random_start

    def __call__(self, model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        x = x.detach()
        best, best_obj = x.clone(), torch.full((x.shape[0],), -float("inf"), device=x.device)
        for _ in range(self.restarts):
            adv = x.clone()
            if self.random_start:
                noise = torch.rand(x.shape, generator=generator, device="cpu").to(x.device)
                adv = project_linf(x + (2 * noise - 1) * self.eps, x, self.eps)
            for _ in range(self.steps):
                grad, _ = self.gradient(model, adv)
                adv = project_linf(adv + self.alpha * grad.sign(), x, self.eps).detach()
            with torch.no_grad():
                obj = self.objective(model, adv)
            better = obj > best_obj
            best[better], best_obj[better] = adv[better], obj[better]
        return best
