"""The attack contract and the one score-space objective every attack uses (formulas.md §1).

Attacks push a score, not a class: the objective to maximise is ``L(x') = d · sign · f(x') / r`` with
``sign = -1`` for lower-is-better metrics, ``r`` the metric's score range and ``d = +1`` to raise the
predicted quality (the benchmark-cheating threat, default) or ``-1`` to lower it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

Direction = Literal["increase", "decrease"]


class Attack:
    """Base class. Subclasses implement ``__call__(model, x, *, generator) -> x_adv``.

    Capabilities (class attributes the harness reads, with their defaults): ``threat_model`` (``"linf"``,
    ``"l2"``, ``"universal"``, ...); ``budget`` (the L∞/L2 radius it guarantees, or None);
    ``strength_param`` (the constructor keyword the budget calibration varies); ``needs_gradient`` (True:
    it differentiates the metric, so the runner skips it, with the reason, on a metric that declares
    ``differentiable = False``; score-only attacks set False); ``needs_fit`` (False: True when the attack
    is trained once before it is applied; the runner then calls ``fit`` with an artifact path keyed by
    ``fit_params()``). Whether an attack is adaptive (attacks ``metric ∘ defense``) is a setting of the
    matrix (``adaptive = true`` in its ``[[attacks]]`` table), not of the class.
    """

    threat_model: str = "linf"
    strength_param: str = "eps"  # the constructor keyword the budget calibration varies
    needs_gradient: bool = True
    needs_fit: bool = False
    # The model's scores of the images the last call returned, when the attack computed them on exactly
    # those images (its final forward pass), else None: the harness then need not score them again.
    last_scores: torch.Tensor | None = None
    # Set by the harness when attacked images are stored as 8-bit files (run.attacked_images = "png"): an
    # attack that scores its output quantises it first (:meth:`finish`), so those scores are the stored file's.
    output_8bit: bool = False

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

    def scored_objective(self, model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image objective of ``x`` and the model's scores it came from, without gradients."""
        with torch.no_grad():
            scores = model(x)
        d = 1.0 if self.direction == "increase" else -1.0
        return d * model.sign * scores.to(x.dtype) / model.score_scale, scores.detach()

    def gradient(self, model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradient of the summed objective w.r.t. ``x`` (images are independent), and the objective."""
        with torch.enable_grad():  # attacks may be called from no_grad code
            x = x.detach().requires_grad_(True)
            obj = self.objective(model, x)
            (grad,) = torch.autograd.grad(obj.sum(), x)
        if not torch.isfinite(grad).all():
            raise FloatingPointError("non-finite gradient of the metric; cannot attack it by gradient")
        return grad, obj.detach()

    def finish(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The output as the harness will store it: on the 8-bit grid when ``output_8bit`` (keeping an L∞
        budget, :func:`benchmark.images.quantize_8bit`), else unchanged."""
        if not self.output_8bit:
            return x_adv
        from ..images import quantize_8bit

        return quantize_8bit(x_adv, x, self.budget if self.threat_model == "linf" else None)

    def fit_params(self) -> dict:
        """What determines the fitted state (the key of its stored artifact); ``needs_fit`` attacks override."""
        return {}

    def fit(self, model, *, generator: torch.Generator, artifact: Path, provenance: dict,
            progress: bool = True) -> None:
        """Train the attack's state on ``model`` (or load it from ``artifact``); ``needs_fit`` attacks override."""
        raise NotImplementedError(f"{type(self).__name__} has nothing to fit (needs_fit is False)")

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
