"""MI-FGSM (Dong et al., "Boosting Adversarial Attacks with Momentum", CVPR 2018) in score space:
``g_t = μ g_{t-1} + ∇L/‖∇L‖₁``, ``x_{t+1} = Π_{B∞(x,eps)} clip01(x_t + α · sgn(g_t))`` (docs/measures.md#attacks-the-score-objective).

Defaults: ``eps = 8/255``, ``steps = 10``, ``alpha = eps / steps``, ``decay μ = 1.0``. Ranges: ``eps`` and
``alpha`` in (0, 1], ``steps`` within 1..10⁵, ``decay`` in [0, 10].
"""
from __future__ import annotations

import torch

from ..params import MAX_STEPS, within
from ..registry import ATTACKS
from .base import Attack, Direction, project_linf


@ATTACKS.register("mifgsm")
class MIFGSM(Attack):
    """MI-FGSM (Dong et al., CVPR 2018): momentum on L1-normalised gradients, signed steps, L∞ ball."""

    threat_model = "linf"

    def __init__(self, eps: float = 8 / 255, steps: int = 10, alpha: float | None = None, decay: float = 1.0,
                 direction: Direction = "increase"):
        super().__init__(direction)
        within("eps", eps, 0, 1, lo_open=True)
        within("steps", steps, 1, MAX_STEPS, integer=True)
        if alpha is not None:
            within("alpha", alpha, 0, 1, lo_open=True)  # the step size (L∞)
        within("decay", decay, 0, 10.0)
        self.eps, self.steps, self.decay = eps, steps, decay
        self.alpha = alpha if alpha is not None else eps / steps

    def perturb(self, model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        adv, g = x.clone(), torch.zeros_like(x)
        for _ in range(self.steps):
            grad, _ = self.gradient(model, adv)
            g = self.decay * g + self.momentum_term(grad)
            adv = project_linf(adv + self.alpha * g.sign(), x, self.eps).detach()
        return adv

    @staticmethod
    def momentum_term(grad: torch.Tensor) -> torch.Tensor:
        """What each step adds to the momentum: the gradient normalised by its L1 norm (Dong et al.)."""
        return grad / grad.abs().flatten(1).sum(1).clamp_min(1e-12).view(-1, 1, 1, 1)
