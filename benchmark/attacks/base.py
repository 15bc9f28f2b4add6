"""The attack contract and the one score-space objective every attack uses (docs/measures.md#attacks-the-score-objective).

Attacks push a score, not a class: the objective to maximise is ``L(x') = d · sign · f(x') / r`` with
``sign = -1`` for lower-is-better metrics, ``r`` the metric's score range and ``d = +1`` to raise the
predicted quality (the benchmark-cheating threat, default) or ``-1`` to lower it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, final

import torch

from .observe import CallObserver

Direction = Literal["increase", "decrease"]

# Budget units: key -> (short label for tables, what the number measures). An attack's ``budget`` is a bound in
# its unit that its output keeps, after 8-bit quantisation too (:meth:`Attack.finish`).
BUDGET_UNITS: dict[str, tuple[str, str]] = {
    "linf": ("L∞", "max |x' − x| over pixels and channels, on [0, 1] values"),
    "l2": ("L2", "‖x' − x‖₂ over the whole image, on [0, 1] values"),
    "rmse": ("RMSE", "‖x' − x‖₂ / √(3·H·W), on [0, 1] values"),
    "l0_pixels": ("L0 px", "number of pixels (any channel) that differ from x"),
    "patch_area": ("patch area", "fraction of the image's pixels that the patch covers"),
    "colour_filter": ("colour filter", "bound on the colour filter's parameters (AdvCF: how much steeper, minus 1, "
                      "one piece of a colour curve may be than another; 0 is the identity)"),
    "flow": ("flow px", "largest displacement of a pixel by the flow field, in pixels"),
    "perceptual": ("perceptual", "perceptual distance d(x', x) of the attack's constraint (LPIPS, DISTS, 1 − SSIM)"),
}


class Attack:
    """Base class of every attack. A subclass implements one hook, :meth:`perturb`
    ``(model, x, *, generator) -> x_adv``, and declares its capabilities; it never overrides ``__call__``.

    ``attack(model, x, *, generator=None, output_8bit=False) -> x_adv`` (:meth:`__call__`, defined here once)
    runs the hook and does the rest: it clears the per-call state (:attr:`last_scores`, :attr:`last_budget`,
    :attr:`last_passes`); sets :attr:`output_8bit` for the call (the attacked images are stored as 8-bit files),
    so that an attack that scores its output can put it on the 8-bit grid first (:meth:`finish`); puts the hook's
    output on that grid with the budget kept (:meth:`finish`, idempotent, so an attack that already did so is
    unchanged); counts the model's forward and backward image passes (:attr:`last_passes`); and, where the
    attack already scored exactly the images it returns without a gradient, hands those scores back
    (:attr:`last_scores`), so the harness need not score them again. An attack keeps no score of its own for
    that: calling :meth:`finish` before a final scoring pass (as PGD does, to compare restarts as they will be
    stored) is an optimisation, never a rule.

    Capabilities (class attributes the harness reads, with their defaults): ``threat_model`` (``"linf"``,
    ``"l2"``, ``"universal"``, ...); ``budget_unit`` (the unit its budget is given and kept in, a key of
    :data:`BUDGET_UNITS`: ``"linf"``, ``"l2"``, ``"rmse"``, ``"l0_pixels"``, ``"patch_area"``,
    ``"colour_filter"``, ``"flow"``, ``"perceptual"``; by default the threat model's where it is one, else
    ``"linf"``); ``budget`` (the radius it guarantees in that unit, or None; :meth:`measured_budget` measures it
    per image, :meth:`finish` keeps it on the 8-bit grid);
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
    # Set by the base call: the model's scores of the images the last call returned, when the attack scored
    # exactly those images without a gradient (else None); the harness then need not score them again.
    last_scores: torch.Tensor | None = None
    # Set by the base call: the model's forward and backward image passes during the last call, as
    # {"forward": n, "backward": m} (None when the model is not an nn.Module and so cannot be observed).
    last_passes: dict[str, int] | None = None
    # True for the duration of a call with output_8bit=True (the attacked images are stored as 8-bit files):
    # :meth:`finish` then puts an image on the 8-bit grid, so that an attack scores what will be stored.
    output_8bit: bool = False

    def __init__(self, direction: Direction = "increase"):
        if direction not in ("increase", "decrease"):
            raise ValueError(f"direction must be 'increase' or 'decrease', got {direction!r}")
        self.direction = direction

    @property
    def budget(self) -> float | None:
        """The bound the attack keeps, in :attr:`budget_unit`."""
        return getattr(self, "eps", None)

    @property
    def budget_unit(self) -> str:
        """A key of :data:`BUDGET_UNITS`. Subclasses declare it as a class attribute (``budget_unit = "flow"``);
        undeclared, it is the threat model where that is a unit (``linf``, ``l2``, ``rmse``), else ``linf``."""
        return self.threat_model if self.threat_model in ("linf", "l2", "rmse") else "linf"

    def describe_budget(self) -> str:
        """The budget with its unit, for logs and tables: ``"8/255 L∞"``, ``"0.5 flow px"``, ``"none"``."""
        b = self.budget
        if b is None:
            return "none"
        from ..registry import number_text

        text = number_text(float(b))
        return f"{text if '/' in text or len(text) <= 6 else f'{b:.4g}'} {BUDGET_UNITS[self.budget_unit][0]}"

    # Per image, the budget the last call used, in budget_unit, for attacks whose budget is a bound on their own
    # parameters (flow, colour filter) and so not measurable from (x', x) alone; None otherwise.
    last_budget: torch.Tensor | None = None

    def measured_budget(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per image, the budget ``x_adv`` spends in :attr:`budget_unit` (what ``calibrate`` targets in the
        attack's own unit and what the tests check against :attr:`budget`)."""
        d = (x_adv - x).flatten(1)
        unit = self.budget_unit
        if unit == "linf":
            return d.abs().amax(1)
        if unit == "l2":
            return d.norm(dim=1)
        if unit == "rmse":
            return d.norm(dim=1) / d.shape[1] ** 0.5
        if unit in ("l0_pixels", "patch_area"):
            changed = ((x_adv - x).abs() > 0.5 / 255).any(dim=1).flatten(1).sum(1).to(x.dtype)
            return changed if unit == "l0_pixels" else changed / (x.shape[-1] * x.shape[-2])
        if self.last_budget is not None and len(self.last_budget) == len(x):
            return self.last_budget
        raise NotImplementedError(f"{type(self).__name__} does not measure its {unit} budget from images")

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
        """The output as the harness will store it: on the 8-bit grid when ``output_8bit``, else unchanged.
        Idempotent: the base call applies it to every output, so an attack calls it only to score (or compare)
        images as they will be stored.

        Quantisation keeps the budget: an L∞ one by clipping the levels (:func:`benchmark.images.quantize_8bit`),
        an L2/RMSE one by shrinking the perturbation towards ``x`` (:func:`shrink_8bit`), any other unit by
        :meth:`keep_budget_8bit`, which attacks of that unit override."""
        if not self.output_8bit:
            return x_adv
        from ..images import quantize_8bit

        unit, b = self.budget_unit, self.budget
        q = quantize_8bit(x_adv, x, b if unit == "linf" else None)
        if unit in ("l2", "rmse") and b is not None:
            q = shrink_8bit(q, x, b * (x[0].numel() ** 0.5 if unit == "rmse" else 1.0))
        return self.keep_budget_8bit(q, x)

    def keep_budget_8bit(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``q`` (``x'`` on the 8-bit grid) brought back within the budget where rounding took it out; units
        that rounding cannot break (L0 and patch area: an unchanged pixel stays unchanged; parameter bounds
        such as flow and colour filter) need nothing."""
        return q

    def fit_params(self) -> dict:
        """What determines the fitted state (the key of its stored artifact); ``needs_fit`` attacks override."""
        return {}

    def fit(self, model, *, generator: torch.Generator, artifact: Path, provenance: dict,
            progress: bool = True) -> None:
        """Train the attack's state on ``model`` (or load it from ``artifact``); ``needs_fit`` attacks override."""
        raise NotImplementedError(f"{type(self).__name__} has nothing to fit (needs_fit is False)")

    def perturb(self, model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """The attack: ``x'`` for the B×3×H×W images ``x`` in [0, 1] against ``model`` (a metric, or the
        composite ``metric ∘ defense`` of an adaptive attack), drawing any randomness from ``generator``. The one
        hook a subclass implements; the base :meth:`__call__` runs it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement perturb(model, x, *, generator)")

    @final
    def __call__(self, model, x: torch.Tensor, *, generator: torch.Generator | None = None,
                 output_8bit: bool = False) -> torch.Tensor:
        """``x'`` of :meth:`perturb`, detached, on the 8-bit grid within the budget when ``output_8bit``; sets
        :attr:`last_scores`, :attr:`last_passes` (and the attack's :attr:`last_budget`) for this call."""
        if self.output_8bit and not output_8bit:  # set on the instance, as the harness did before this call
            raise TypeError(f"{type(self).__name__}.output_8bit is set on the attack; ask for 8-bit output per "
                            "call instead: attack(model, x, generator=..., output_8bit=True)")
        self.last_scores = self.last_budget = self.last_passes = None
        x = x.detach()
        previous, self.output_8bit = self.output_8bit, bool(output_8bit)
        try:
            with CallObserver(model) as seen:
                out = self.finish(self.perturb(model, x, generator=generator).detach(), x)
        finally:
            self.output_8bit = previous
        self.last_passes = seen.passes
        if seen.kept:  # some images were scored without a gradient: are they the returned ones?
            self.last_scores = seen.scores_of(out, (1.0 if self.direction == "increase" else -1.0) * model.sign)
        return out

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__call__" in cls.__dict__:
            raise TypeError(f"{cls.__module__}.{cls.__qualname__} overrides Attack.__call__: implement "
                            "perturb(self, model, x, *, generator) -> x_adv instead (the base call quantises, "
                            "counts passes and reuses scores around it)")

    @classmethod
    def check_params(cls, params: dict, base: Path) -> dict:
        """``validate``: the attack is built (cheap), so a value its constructor refuses is a config error naming
        the key before any work (:func:`benchmark.params.checked_by_building`; the four families' one route)."""
        from ..params import checked_by_building

        return checked_by_building(cls, params)


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


def shrink_8bit(q: torch.Tensor, x: torch.Tensor, radius: float) -> torch.Tensor:
    """``q`` (on the 8-bit grid, as ``x``) with, per image whose ``‖q − x‖₂`` exceeds ``radius``, its
    perturbation scaled by ``radius / ‖q − x‖₂`` and rounded towards ``x`` level by level: on the grid and
    within the L2 ball (no level moves away from ``x``). Images within the ball are unchanged."""
    base = torch.round(x * 255)
    levels = torch.round(q * 255) - base
    norm = levels.flatten(1).norm(dim=1) / 255
    scale = torch.clamp(radius / norm.clamp_min(1e-12), max=1.0).view(-1, *[1] * (q.dim() - 1))
    shrunk = torch.trunc(levels * scale)
    return (base + torch.where(scale < 1, shrunk, levels)).clamp(0, 255) / 255
