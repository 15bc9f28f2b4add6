"""SSAH (Luo, Ma, Gao, Yu, "Frequency-driven Imperceptible Adversarial Attack on Semantic Similarity",
CVPR 2022) adapted to IQA as the Guardians benchmark does (msu-video-group/adversarial-defenses-for-iqa,
``metrics/methods/ssah/run.py``): the paper's semantic-similarity loss on a classifier's features becomes the
score objective, and its low-frequency constraint is kept. With ``L`` the score objective (docs/measures.md)
and ``LF(x)`` the low-frequency part of ``x`` (the Haar DWT's LL band, inverse-transformed alone, which is the
2×2 block mean; the reference pads an odd side with zeros, as here):

    minimise  −L(x') + λ_lf · Σ SmoothL1(LF(x') − LF(x))    by Adam on the image, x' clipped to [0, 1]

Defaults of the reference: ``steps = 10``, ``lr = 0.001``, ``lambda_lf = 0.1`` (the SmoothL1 summed over the
image, as there), Haar wavelet. The reference has no norm bound; for comparison at equal budget the image is
also kept within ``B∞(x, eps)`` (``eps = 10/255`` by default, which 10 Adam steps of 0.001 do not reach: each
moves a pixel by about ``lr``). Calibrate by ``lr``, the parameter the Guardians presets vary. Ranges: ``eps``
and ``lr`` in (0, 1], ``steps`` within 1..10⁵, ``lambda_lf`` in [0, 10⁶]. No implementation is importable here;
``LF`` was compared by hand with pywavelets' ``dwt2``/``idwt2`` (``tests/attacks/test_ssah.py`` checks it when
pywavelets is installed) and the loop with the reference's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..params import MAX_STEPS, within
from ..registry import ATTACKS
from .base import Attack, Direction, project_linf


def low_frequency(x: torch.Tensor) -> torch.Tensor:
    """The Haar LL band of ``x`` inverse-transformed alone: each 2×2 block replaced by its mean (an odd side
    padded with a zero row or column first, then cropped back, as the reference does)."""
    h, w = x.shape[-2:]
    xp = F.pad(x, (0, w % 2, 0, h % 2))
    return F.interpolate(F.avg_pool2d(xp, 2), scale_factor=2, mode="nearest")[..., :h, :w]


@ATTACKS.register("ssah")
class SSAH(Attack):
    """SSAH (Luo et al., CVPR 2022) for IQA: Adam on the image, the score against a low-frequency SmoothL1 term."""

    threat_model = "linf"
    budget_unit = "linf"
    strength_param = "lr"

    def __init__(self, eps: float = 10 / 255, steps: int = 10, lr: float = 0.001, lambda_lf: float = 0.1,
                 direction: Direction = "increase"):
        super().__init__(direction)
        within("eps", eps, 0, 1, lo_open=True)
        within("steps", steps, 1, MAX_STEPS, integer=True)
        within("lr", lr, 0, 1, lo_open=True)
        within("lambda_lf", lambda_lf, 0, 1e6)
        self.eps, self.steps, self.lr, self.lambda_lf = eps, steps, lr, lambda_lf

    def perturb(self, model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        lf = low_frequency(x)
        adv = x.clone().requires_grad_(True)
        opt = torch.optim.Adam([adv], lr=self.lr)
        with torch.enable_grad():
            for _ in range(self.steps):
                lf_cost = F.smooth_l1_loss(low_frequency(adv), lf, reduction="none").flatten(1).sum(1)
                loss = (self.lambda_lf * lf_cost - self.objective(model, adv)).sum()
                opt.zero_grad()
                loss.backward()
                adv.grad = torch.nan_to_num(adv.grad)
                opt.step()
                with torch.no_grad():
                    adv.copy_(project_linf(torch.nan_to_num(adv), x, self.eps))
        return adv.detach()
