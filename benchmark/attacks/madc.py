"""MAD competition as an attack (Wang & Simoncelli, "Maximum differentiation (MAD) competition",
Journal of Vision 2008), in score space: from a random start at ``RMSE(x', x) = eps``, step along the
component of ``∇L`` orthogonal to ``∇MSE(x', x)`` (so the attack changes the score, not the MSE), then
project back onto ``RMSE(x', x) ≤ eps`` (docs/measures.md#attacks-the-score-objective).

Defaults: ``eps = 2/255`` in RMSE (PSNR ≈ 42 dB), ``steps = 10``, ``alpha = eps / 2`` (RMSE units).
Ranges: ``eps`` and ``alpha`` in (0, 1], ``steps`` within 1..10⁵.
"""
from __future__ import annotations

import torch

from ..params import MAX_STEPS, within
from ..registry import ATTACKS
from .base import Attack, Direction, l2_normalize, project_l2


@ATTACKS.register("madc")
class MADC(Attack):
    """MADC (Wang & Simoncelli 2008): score-gradient steps orthogonal to the MSE gradient, RMSE budget."""

    threat_model = "rmse"

    def __init__(self, eps: float = 2 / 255, steps: int = 10, alpha: float | None = None,
                 direction: Direction = "increase"):
        super().__init__(direction)
        within("eps", eps, 0, 1, lo_open=True)  # an RMSE on [0, 1] images
        within("steps", steps, 1, MAX_STEPS, integer=True)
        if alpha is not None:
            within("alpha", alpha, 0, 1, lo_open=True)  # the step size, an RMSE
        self.eps, self.steps = eps, steps
        self.alpha = alpha if alpha is not None else eps / 2

    def perturb(self, model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        scale = x[0].numel() ** 0.5  # RMSE r <-> L2 norm r·sqrt(N)
        noise = torch.randn(x.shape, generator=generator, device="cpu").to(x.device)
        adv = (x + l2_normalize(noise) * self.eps * scale).clamp(0, 1)
        for _ in range(self.steps):
            grad, _ = self.gradient(model, adv)
            m = (adv - x).flatten(1)  # ∝ ∇MSE(x', x)
            g = grad.flatten(1)
            coef = (g * m).sum(1, keepdim=True) / (m * m).sum(1, keepdim=True).clamp_min(1e-20)
            g_perp = (g - coef * m).view_as(x)
            adv = project_l2(adv + self.alpha * scale * l2_normalize(g_perp), x, self.eps * scale).detach()
        return adv
