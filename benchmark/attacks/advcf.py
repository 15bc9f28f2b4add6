"""AdvCF, the adversarial colour filter (Zhao, Liu, Larson, "Adversarial Color Enhancement: Generating
Unrestricted Adversarial Images by Optimizing a Color Filter", BMVC 2020; journal version "Adversarial Image
Color Transformations in Explicit Color Filter Space", IEEE TIFS 2023; ZhengyuZhao/AdvColorFilter), in score
space, as the IQA benchmarks run it (``adv-cf`` in the Guardians benchmark's presets; ``cadv`` is a different,
colourisation-network attack). The image passes through a piecewise-linear, monotone colour curve per RGB
channel with ``K`` pieces of slopes ``p_c,i ≥ 0`` (identity: all equal):

    CF(x)_c = K / Σ_i p_c,i · Σ_i p_c,i · clamp(x_c − i/K, 0, 1/K)

and ``p`` is optimised by Adam for the score objective ``L`` (docs/measures.md) with the reference's
regulariser of the slopes' deviation from identity: minimise ``−L(CF(x)) + λ · Σ (p_c,i / Σ_j p_c,j − 1/K)²``.
As the IQA port does, the output is the best image (by objective) met during the optimisation, quantised to
8 bits.

Budget (``budget_unit = "colour_filter"``): every slope lies in ``[1/K, (1 + eps)/K]``, so no piece of a curve
is more than ``1 + eps`` times steeper than another (the journal version's ACE-PGD bound,
``Paras.clamp(1/K, bound/K)``, with ``bound = 1 + eps``: ``eps = 0`` is the identity, and the budget grows from
0 as the other units do). It is a bound on the parameters: quantisation cannot break it, and
:attr:`last_budget` records each image's largest slope ratio minus one.

Defaults: ``pieces = 64``, ``lr = 0.1``, ``lambda_reg = 0.5`` (the IQA port of the BMVC code), ``steps = 10``
(the Guardians preset's default iterations), ``eps = 7`` (bound 8, the journal's adversarial-training bound;
its ImageNet attack uses 16). Ranges: ``eps`` in (0, 1000], ``pieces`` within 2..256, ``steps`` within 1..10⁵,
``lr`` in (0, 10], ``lambda_reg`` in [0, 10⁶]. No implementation is importable here; the filter was compared by
hand with the reference ``CF`` (equal slopes give the identity; ``tests/attacks/test_advcf.py`` checks it).
"""
from __future__ import annotations

import torch

from ..params import MAX_STEPS, within
from ..registry import ATTACKS
from .base import Attack, Direction


def colour_filter(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``x`` (B×C×H×W in [0, 1]) through the per-channel piecewise-linear curves with slopes ``p`` (B×C×K)."""
    k = p.shape[-1]
    knots = torch.arange(k, dtype=x.dtype, device=x.device) / k
    pieces = torch.clamp(x.unsqueeze(-1) - knots, 0, 1 / k)          # B×C×H×W×K
    out = (pieces * p[:, :, None, None, :]).sum(-1)
    return out * k / (p.sum(-1)[:, :, None, None] + 1e-30)


@ATTACKS.register("advcf")
class AdvCF(Attack):
    """AdvCF (Zhao et al., BMVC 2020 / TIFS 2023): an adversarial per-channel colour curve, slope ratios ≤ 1 + eps."""

    threat_model = "colour_filter"
    budget_unit = "colour_filter"

    def __init__(self, eps: float = 7.0, pieces: int = 64, steps: int = 10, lr: float = 0.1,
                 lambda_reg: float = 0.5, direction: Direction = "increase"):
        super().__init__(direction)
        within("eps", eps, 0, 1000, lo_open=True)
        within("pieces", pieces, 2, 256, integer=True)
        within("steps", steps, 1, MAX_STEPS, integer=True)
        within("lr", lr, 0, 10, lo_open=True)
        within("lambda_reg", lambda_reg, 0, 1e6)
        self.eps, self.pieces, self.steps, self.lr, self.lambda_reg = eps, pieces, steps, lr, lambda_reg
        self.last_params: torch.Tensor | None = None

    def perturb(self, model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        k = self.pieces
        p = torch.full((x.shape[0], x.shape[1], k), 1 / k, device=x.device, dtype=x.dtype, requires_grad=True)
        opt = torch.optim.Adam([p], lr=self.lr)
        best, best_p = x.clone(), p.detach().clone()
        best_obj = torch.full((x.shape[0],), -float("inf"), device=x.device)
        with torch.enable_grad():
            for _ in range(self.steps):
                adv = colour_filter(x, p).clamp(0, 1)
                obj = self.objective(model, adv)
                reg = ((p / p.sum(-1, keepdim=True) - 1 / k) ** 2).flatten(1).sum(1)
                loss = (self.lambda_reg * reg - obj).sum()
                with torch.no_grad():
                    better = obj > best_obj
                    best[better], best_obj[better], best_p[better] = adv[better], obj[better], p[better]
                opt.zero_grad()
                loss.backward()
                p.grad = torch.nan_to_num(p.grad)
                opt.step()
                with torch.no_grad():
                    p.copy_(torch.nan_to_num(p, nan=1 / k).clamp(1 / k, (1 + self.eps) / k))
        self.last_params = best_p
        self.last_budget = (best_p.amax(-1) / best_p.amin(-1)).amax(-1) - 1
        return best
