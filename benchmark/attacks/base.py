"""The attack contract and the one score-space objective every attack uses (formulas.md §1).

Attacks push a score, not a class: the objective to maximise is ``L(x') = d · sign · f(x') / r`` with
``sign = -1`` for lower-is-better metrics, ``r`` the metric's score range and ``d = +1`` to raise the
predicted quality (the benchmark-cheating threat, default) or ``-1`` to lower it.
"""
from __future__ import annotations

from typing import Literal

import torch

Direction = Literal["increase", "decrease"]


class Attack:
    """Base class. Subclasses implement ``__call__(model, x, *, generator) -> x_adv``.

    Capabilities: ``threat_model`` (``"linf"``, ``"l2"``, ``"universal"``, ...), ``adaptive`` (attacks
    ``metric ∘ defense``, so runs per defense), ``budget`` (the L∞/L2 radius it guarantees, or None).
    """

    threat_model: str = "linf"
    adaptive: bool = False
    strength_param: str = "eps"  # the constructor keyword the budget calibration varies

    def __init__(self, direction: Direction = "increase"):
        if direction not in ("increase", "decrease"):
            raise ValueError(f"direction must be 'increase' or 'decrease', got {direction!r}")
        self.direction = direction

    @property
    def budget(self) -> float | None:
        return getattr(self, "eps", None)

    def objective(self, model, x: torch.Tensor) -> torch.Tensor:
        """Per-image ``d · sign · f(x) / r`` (to maximise)."""
        d = 1.0 if self.direction == "increase" else -1.0
        return d * model.sign * model(x).to(x.dtype) / model.score_scale

    def gradient(self, model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradient of the summed objective w.r.t. ``x`` (images are independent), and the objective."""
        with torch.enable_grad():  # attacks may be called from no_grad code
            x = x.detach().requires_grad_(True)
            obj = self.objective(model, x)
            (grad,) = torch.autograd.grad(obj.sum(), x)
        if not torch.isfinite(grad).all():
            raise FloatingPointError("non-finite gradient of the metric; cannot attack it by gradient")
        return grad, obj.detach()

    def __call__(self, model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError


def project_linf(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Π onto ``B∞(x, eps) ∩ [0,1]``: the budget holds exactly, up to float32 rounding of ``x ± eps``."""
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0.0, 1.0)


def project_l2(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Π onto ``B2(x, eps) ∩ [0,1]`` per image (clipping to [0,1] only shrinks the perturbation)."""
    delta = (x_adv - x).flatten(1)
    norm = delta.norm(dim=1, keepdim=True).clamp_min(1e-12)
    delta = delta * torch.clamp(eps / norm, max=1.0)
    return (x + delta.view_as(x)).clamp(0.0, 1.0)


def l2_normalize(g: torch.Tensor) -> torch.Tensor:
    return g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (g.dim() - 1))
