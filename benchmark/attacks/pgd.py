"""PGD in score space (Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks",
ICLR 2018): steps ``x_{t+1} = Π_{B(x,eps)} clip01(x_t + α · step(∇L(x_t)))`` from a uniform random
start in the ball, with optional restarts keeping, per image, the best objective (docs/measures.md#attacks-the-score-objective).
``norm = "linf"``: signed steps, L∞ ball; ``norm = "l2"``: steps ``α · g/‖g‖₂``, L2 ball.

Defaults: ``eps = 8/255`` (L∞; use e.g. 0.5 for L2), ``steps = 10``, ``alpha = 2.5 · eps / steps``
(Madry's rule), ``random_start = true``, ``restarts = 1``, ``direction = "increase"``. Ranges: ``eps`` and
``alpha`` in (0, 1] for L∞, (0, √3·4096] for L2; ``steps`` within 1..10⁵, ``restarts`` within 1..1000.
"""
from __future__ import annotations

from typing import Literal

import torch

from ..params import MAX_L2, MAX_RESTARTS, MAX_STEPS, within
from ..registry import ATTACKS
from .base import Attack, Direction, l2_normalize, project_l2, project_linf


@ATTACKS.register("pgd")
class PGD(Attack):
    """PGD (Madry et al., ICLR 2018) on the IQA score, L∞ or L2: random start, steps, projection, restarts."""

    def __init__(self, eps: float = 8 / 255, steps: int = 10, alpha: float | None = None,
                 random_start: bool = True, restarts: int = 1, norm: Literal["linf", "l2"] = "linf",
                 direction: Direction = "increase"):
        super().__init__(direction)
        if norm not in ("linf", "l2"):
            raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
        cap = 1 if norm == "linf" else MAX_L2  # the largest L∞ or L2 distance between two [0, 1] images
        within("eps", eps, 0, cap, lo_open=True)
        within("steps", steps, 1, MAX_STEPS, integer=True)
        within("restarts", restarts, 1, MAX_RESTARTS, integer=True)
        if alpha is not None:
            within("alpha", alpha, 0, cap, lo_open=True)  # the step size, in the norm's units
        self.eps, self.steps, self.restarts, self.norm = eps, steps, restarts, norm
        self.alpha = alpha if alpha is not None else 2.5 * eps / steps
        self.random_start = random_start
        self.threat_model = norm

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return project_linf(x_adv, x, self.eps) if self.norm == "linf" else project_l2(x_adv, x, self.eps)

    def step(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.sign() if self.norm == "linf" else l2_normalize(grad)

    def start(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if not self.random_start:
            return x.clone()
        noise = torch.rand(x.shape, generator=generator, device="cpu").to(x.device) * 2 - 1
        if self.norm == "l2":  # uniform direction, radius uniform in [0, eps]
            r = torch.rand(x.shape[0], generator=generator, device="cpu").to(x.device)
            noise = l2_normalize(noise) * r.view(-1, 1, 1, 1)
        return self.project(x + noise * self.eps, x)

    def perturb(self, model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        best, best_obj = x.clone(), torch.full((x.shape[0],), -float("inf"), device=x.device)
        for _ in range(self.restarts):
            adv = self.start(x, generator)
            for _ in range(self.steps):
                grad, _ = self.gradient(model, adv)
                adv = self.project(adv + self.alpha * self.step(grad), x).detach()
            adv = self.finish(adv, x)  # restarts are compared, and scored, as they will be stored
            obj, _ = self.scored_objective(model, adv)
            better = obj > best_obj  # an image whose objective is never finite stays clean
            best[better], best_obj[better] = adv[better], obj[better]
        return best


@ATTACKS.register("ifgsm")
class IFGSM(PGD):
    """I-FGSM / BIM (Kurakin et al., ICLR-W 2017): PGD-L∞ from the clean image; MSU defaults eps 10/255, α 1/255, 10 steps."""

    def __init__(self, eps: float = 10 / 255, steps: int = 10, alpha: float = 1 / 255,
                 direction: Direction = "increase"):
        super().__init__(eps=eps, steps=steps, alpha=alpha, random_start=False, direction=direction)
