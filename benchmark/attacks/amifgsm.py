"""AMI-FGSM as the MSU metrics-robustness benchmark runs it (Antsiferova et al., "Comparing the robustness of
modern no-reference image- and video-quality metrics to adversarial attacks", AAAI 2024;
``robustness_benchmark/methods/amifgsm/run.py``): momentum iterative FGSM (Dong et al., CVPR 2018) whose step
is derived from the budget, ``α = eps / steps``, on the image itself, in score space (docs/measures.md):

    g_t = μ · g_{t-1} + ∇L(x_t),    x_{t+1} = Π_{B∞(x, eps)} clip01(x_t + α · sgn(g_t))

It differs from :mod:`benchmark.attacks.mifgsm` as the MSU code does: the momentum accumulates the raw
gradient (MI-FGSM normalises each gradient by its L1 norm first), and the step is ``eps / steps`` so that
``steps`` steps exactly span the budget (the MSU code has no projection; here Π keeps the budget when ``alpha``
is set larger, and is the identity at the default).

Defaults of the reference code: ``eps = 10/255``, ``steps = 10``, ``alpha = eps / steps``, ``decay μ = 1.0``.
Ranges: ``eps`` and ``alpha`` in (0, 1], ``steps`` within 1..10⁵, ``decay`` in [0, 10]. No implementation is
importable (torchattacks has none): ``tests/attacks/test_amifgsm.py`` transcribes the MSU loop (its
``loss = 1 − f/r``, ``g = grad + g_prev · nu``, ``x −= lr · sgn(g)``) and checks equality on the same input.
"""
from __future__ import annotations

import torch

from ..registry import ATTACKS
from .base import Direction
from .mifgsm import MIFGSM


@ATTACKS.register("amifgsm")
class AMIFGSM(MIFGSM):
    """AMI-FGSM (MSU benchmark): momentum on raw gradients, signed steps of eps/steps, L∞ ball."""

    budget_unit = "linf"

    def __init__(self, eps: float = 10 / 255, steps: int = 10, alpha: float | None = None, decay: float = 1.0,
                 direction: Direction = "increase"):
        super().__init__(eps=eps, steps=steps, alpha=alpha, decay=decay, direction=direction)

    @staticmethod
    def momentum_term(grad: torch.Tensor) -> torch.Tensor:
        """The raw gradient (the MSU loop accumulates it unnormalised)."""
        return grad
