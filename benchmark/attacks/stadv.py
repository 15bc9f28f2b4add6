"""stAdv (Xiao, Zhu, Li, He, Liu, Song, "Spatially Transformed Adversarial Examples", ICLR 2018) in score space:
the image is not perturbed additively but resampled along a per-pixel flow field ``f = (Δu, Δv)``,
``x' = warp(x, f)`` (bilinear, the border repeated; ``torch.nn.functional.grid_sample``), and the flow is
optimised for the score objective ``L`` (docs/measures.md) with the paper's smoothness loss

    minimise  −α · L(warp(x, f)) + β · L_flow(f),
    L_flow(f) = Σ_p Σ_{q ∈ N(p)} sqrt(‖Δu_p − Δu_q‖² + ‖Δv_p − Δv_q‖² + 1e-8)

(paper Eq. 4; ``N(p)`` the four diagonal neighbours with zero padding, as the authors' released code and the
Guardians port shift the flow). The Guardians benchmark (msu-video-group/adversarial-defenses-for-iqa,
``metrics/methods/stadv/run.py``) optimises with L-BFGS, ``lr = 2.5``, one iteration (at most 25 evaluations)
per step, 3 steps, ``α = 50`` on the rank loss ``s_o / (s + s_o)``, ``β = 1e-5``; this port keeps the optimiser
and its settings, uses the benchmark's score objective for the rank loss (both are increasing in the score)
and the paper's square-root smoothness term. Each image is optimised alone (L-BFGS's history would otherwise
couple the images of a batch).

Budget (``budget_unit = "flow"``): every pixel's displacement ``‖f_p‖₂`` is at most ``eps`` pixels; the flow is
projected onto that bound after each step (the reference has none). Quantising the warped image to 8 bits does
not touch the flow, so the bound holds for the stored image; :attr:`last_budget` records each image's largest
displacement. Defaults: ``eps = 1.0`` px, ``steps = 3``, ``lr = 2.5``, ``alpha = 50``, ``beta = 1e-5``.
Ranges: ``eps`` in (0, 64] px, ``steps`` within 1..10⁵, ``lr`` in (0, 100], ``alpha`` in (0, 10⁶],
``beta`` in [0, 10⁶]. No implementation is importable here; the warp was compared by hand with the Guardians
``flow_st`` (an integer flow moves pixels exactly; ``tests/attacks/test_stadv.py`` checks it).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..params import MAX_STEPS, within
from ..registry import ATTACKS
from .base import Attack, Direction


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``x`` (B×C×H×W) sampled at ``p + flow_p`` (flow B×2×H×W in pixels, channel 0 rows, 1 columns),
    bilinear, coordinates clamped to the image (the border repeated)."""
    b, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=x.device, dtype=x.dtype),
                            torch.arange(w, device=x.device, dtype=x.dtype), indexing="ij")
    gy = (ys + flow[:, 0]) * (2 / max(h - 1, 1)) - 1
    gx = (xs + flow[:, 1]) * (2 / max(w - 1, 1)) - 1
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def flow_loss(flow: torch.Tensor) -> torch.Tensor:
    """Per image, the paper's smoothness loss: Σ_p Σ_{q diagonal neighbour} sqrt(‖f_p − f_q‖² + 1e-8)."""
    padded = F.pad(flow, (1, 1, 1, 1))
    total = flow.new_zeros(flow.shape[0])
    for shifted in (padded[:, :, 2:, 2:], padded[:, :, 2:, :-2], padded[:, :, :-2, 2:], padded[:, :, :-2, :-2]):
        total = total + ((flow - shifted) ** 2).sum(1).add(1e-8).sqrt().flatten(1).sum(1)
    return total


def project_flow(flow: torch.Tensor, eps: float) -> torch.Tensor:
    """Each pixel's displacement vector scaled down to length at most ``eps``."""
    norm = flow.norm(dim=1, keepdim=True)
    return flow * torch.clamp(eps / norm.clamp_min(1e-12), max=1.0)


@ATTACKS.register("stadv")
class StAdv(Attack):
    """stAdv (Xiao et al., ICLR 2018): a smooth flow field, L-BFGS, displacement bounded by eps pixels."""

    threat_model = "spatial"
    budget_unit = "flow"

    def __init__(self, eps: float = 1.0, steps: int = 3, lr: float = 2.5, alpha: float = 50.0,
                 beta: float = 1e-5, direction: Direction = "increase"):
        super().__init__(direction)
        within("eps", eps, 0, 64, lo_open=True)  # pixels
        within("steps", steps, 1, MAX_STEPS, integer=True)
        within("lr", lr, 0, 100, lo_open=True)
        within("alpha", alpha, 0, 1e6, lo_open=True)
        within("beta", beta, 0, 1e6)
        self.eps, self.steps, self.lr, self.alpha, self.beta = eps, steps, lr, alpha, beta
        self.last_flow: torch.Tensor | None = None

    def _one(self, model, x: torch.Tensor) -> torch.Tensor:
        flow = torch.zeros(1, 2, *x.shape[-2:], device=x.device, dtype=x.dtype, requires_grad=True)
        opt = torch.optim.LBFGS([flow], lr=self.lr, max_iter=1, max_eval=25)

        def closure():
            opt.zero_grad()
            loss = -self.alpha * self.objective(model, warp(x, flow)).sum() + self.beta * flow_loss(flow).sum()
            loss.backward()
            flow.grad = torch.nan_to_num(flow.grad)
            return loss

        with torch.enable_grad():
            for _ in range(self.steps):
                opt.step(closure)
                with torch.no_grad():
                    flow.copy_(project_flow(torch.nan_to_num(flow), self.eps))
        return flow.detach()

    def perturb(self, model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        flow = torch.cat([self._one(model, x[i:i + 1]) for i in range(len(x))])
        self.last_flow = flow
        self.last_budget = flow.norm(dim=1).flatten(1).amax(1)
        with torch.no_grad():
            adv = warp(x, flow).clamp(0, 1)
        return adv
