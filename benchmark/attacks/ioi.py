"""IOI: Invisible One-Iteration attack (Shumitskaya, Antsiferova, Vatolin, "IOI: Invisible One-Iteration
Adversarial Attack on No-Reference Image- and Video-Quality Metrics", ICML 2024; code: katiashh/ioi-attack,
``IOI_demo.ipynb``), docs/measures.md §1.

One signed-gradient step, then two modules that hide it:

    I^p = clip01(I + eps · sgn ∇L(I))                                 (one iteration: the reference takes
                                                                        one Adam step of lr = eps on sgn ∇)
    d   = P_high(I^p − I)        P_high: per channel, the 2-D FFT with the ``keep`` fraction of the
                                 clean image's largest-magnitude coefficients removed (the reference's
                                 ``I_low + (I^p)_high`` split, ``keep = 0.07``)
    I^a = clip01(I + m ⊙ d)      m: the texture mask, per channel the 3×3 local coefficient of variation
                                 std/mean of I (valid window, zero border), divided by its largest value in
                                 the image, zeroed below 0.01, square-rooted

so the perturbation lives in the image's weak frequencies and textured regions. The reference computes
``I_low + m·(I^p)_high + (1 − m)·I_high``, which is the same ``I + m ⊙ P_high(I^p − I)``; it puts a
coefficient equal to the threshold in neither part (that frequency of the image is lost), here it goes to
the high part, so a zero step returns ``I`` exactly. The reference rounds ``I^p`` down to 8 bits before the
FFT; here ``I^p`` stays in float (the harness stores the final image on the 8-bit grid). The paper bounds
``‖I^a − I‖∞`` by the spectral mean absolute error of ``I^p − I``; for a budget comparable with the other L∞
attacks the output is also projected onto ``B∞(I, eps)`` (on the test photographs it rarely binds: the mask
and the removed frequencies leave most pixels well inside). Gradients go through ``model``, so the attack
is adaptive when the harness wraps the metric with a defense.

Defaults: ``eps = 0.1`` (the demo's ``attack(im, 0.1)``: the Adam step, i.e. the FGSM step), ``keep = 0.07``,
``window = 3``, ``mask_floor = 0.01`` as the reference. Ranges: ``eps`` in (0, 1], ``keep`` in [0, 1),
``window`` odd within 3..15, ``mask_floor`` in [0, 1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..params import within
from ..registry import ATTACKS
from .base import Attack, Direction, project_linf


def texture_mask(x: torch.Tensor, window: int = 3, floor: float = 0.01) -> torch.Tensor:
    """The reference's ``std_convoluted`` mask: per channel, local std/mean over ``window``×``window``
    (valid), zero-padded back to H×W, over its per-image maximum, zeroed below ``floor``, square-rooted."""
    mean = F.avg_pool2d(x, window, stride=1)
    var = (F.avg_pool2d(x * x, window, stride=1) - mean ** 2).clamp_min(0)
    cv = var.sqrt() / torch.where(mean == 0, torch.ones_like(mean), mean)
    cv = F.pad(cv, [window // 2] * 4)
    top = cv.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    m = cv / top
    return torch.where(m < floor, torch.zeros_like(m), m).sqrt()


def high_part(d: torch.Tensor, x: torch.Tensor, keep: float) -> torch.Tensor:
    """``d`` without, per image and channel, the frequencies where ``x`` has its ``keep`` fraction of
    largest-magnitude FFT coefficients (the reference's threshold: the ``floor((1 − keep)·N)``-th smallest)."""
    mag = torch.fft.fft2(x).abs()
    # |X(k)| = |X(−k)| for a real image, but not to the last bit: average the pair, so that both members of a
    # conjugate pair fall on the same side of the threshold and the split stays real
    mag = ((mag + torch.roll(torch.flip(mag, (-2, -1)), (1, 1), (-2, -1))) / 2).flatten(-2)
    n = mag.shape[-1]
    idx = min(n - 1, int((1 - keep) * n))
    thr = mag.sort(dim=-1).values[..., idx:idx + 1]
    high = (mag <= thr).view_as(x)
    return torch.fft.ifft2(torch.fft.fft2(d) * high).real


@ATTACKS.register("ioi")
class IOI(Attack):
    """IOI (Shumitskaya et al., ICML 2024): one FGSM step, kept in weak frequencies and textured regions."""

    threat_model = "linf"

    def __init__(self, eps: float = 0.1, keep: float = 0.07, window: int = 3, mask_floor: float = 0.01,
                 direction: Direction = "increase"):
        super().__init__(direction)
        within("eps", eps, 0, 1, lo_open=True)
        within("keep", keep, 0, 1, hi_open=True)
        within("window", window, 3, 15, integer=True, odd=True)  # a centred local window
        within("mask_floor", mask_floor, 0, 1, hi_open=True)
        self.eps, self.keep, self.window, self.mask_floor = eps, keep, window, mask_floor

    def perturb(self, model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        grad, _ = self.gradient(model, x)
        d = (x + self.eps * grad.sign()).clamp(0, 1) - x
        x_adv = x + texture_mask(x, self.window, self.mask_floor) * high_part(d, x, self.keep)
        return project_linf(x_adv, x, self.eps)
