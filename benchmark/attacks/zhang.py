"""Zhang et al., "Perceptual Attacks of No-Reference Image Quality Models with Human-in-the-Loop", NeurIPS 2022,
in score space: change the score as much as possible while a full-reference perceptual distance ``D(x', x)``
stays small. The paper bounds ``D`` (MSE, SSIM, LPIPS or DISTS); the IQA benchmarks run it as a Lagrangian,
and the three variants the purification study (AleksandrGushchin/adversarial_purification) and the Guardians
benchmark run are ``zhang-et-al-dists``, ``-lpips`` and ``-ssim`` (msu-video-group/adversarial-defenses-for-iqa,
``metrics/methods/zhang-et-al-dists/run.py``): Adam on the image, ``lr = 0.005``, 10 iterations, minimising
``D(x', x) − f(x')·sign / r``, clipping to [0, 1] after each step. Here, with the score objective ``L``
(docs/measures.md):

    minimise  weight · D(x', x) − L(x')    by Adam, x' clipped to [0, 1],

and, as the paper's constraint, ``D(x', x) ≤ eps`` after every step: an image beyond it is pulled back along
the segment to ``x`` (bisection on ``x + t·(x' − x)``), so the bound holds exactly (``budget_unit =
"perceptual"``, in the distance's own unit); it holds for the 8-bit image too (:meth:`keep_budget_8bit`
repeats the bisection on the grid). Distances: ``"dists"`` (pyiqa's DISTS: VGG16 from torchvision's cache and
pyiqa's DISTS weights), ``"lpips"`` (the ``lpips`` package, AlexNet backbone from torchvision's cache; as
:mod:`benchmark.perceptual`), ``"ssim"`` (``1 − SSIM``, kornia's ``metrics.ssim``: Gaussian 11×11, σ 1.5, "valid",
on RGB in [0, 1]; no weights). Missing weights raise :class:`~benchmark.errors.MissingWeightsError` naming the file and where to put
it, before any work.

Defaults: the reference's ``steps = 10``, ``lr = 0.005``, ``weight = 1``; ``distance = "dists"``; ``eps = 0.05``
(a bound the reference lacks; at the defaults the SSIM variant stays below it on the test photographs).
Ranges: ``eps`` in (0, 1], ``steps`` within 1..10⁵, ``lr`` in (0, 1], ``weight`` in [0, 10⁶]. Calibrate by
``lr`` (the parameter the Guardians presets vary), in the perceptual unit (``--targets unit:0.02``) or PSNR.
No implementation is importable here; compared by hand with the Guardians loop (same optimiser, step, clip).
"""
from __future__ import annotations

import functools
from typing import Literal

import torch

from ..params import MAX_STEPS, within
from ..registry import ATTACKS
from .base import Attack, Direction

Distance = Literal["dists", "lpips", "ssim"]
DISTANCES = ("dists", "lpips", "ssim")


@functools.lru_cache(maxsize=None)
def _dists_net(device: str):
    from pyiqa.archs.dists_arch import DISTS

    from ..weights import offline_requested, weights_guard

    with weights_guard("dists (for the zhang attack)", download=not offline_requested()):
        net = DISTS()
    return net.eval().to(device)


def distance_fn(name: str, device: torch.device):
    """``d(a, b)`` → per-image distances (differentiable) of B×3×H×W images in [0, 1]; 0 for identical images."""
    if name == "ssim":
        import kornia

        return lambda a, b: 1 - kornia.metrics.ssim(a, b, 11, max_val=1.0, padding="valid").flatten(1).mean(1)
    if name == "lpips":
        from ..perceptual import lpips_model
        from ..weights import offline_requested

        net = lpips_model(str(device), download=not offline_requested())
        return lambda a, b: net(a * 2 - 1, b * 2 - 1, normalize=False).flatten()
    net = _dists_net(str(device))
    return lambda a, b: net(a, b).flatten()


@ATTACKS.register("zhang")
class Zhang(Attack):
    """Zhang et al. (NeurIPS 2022): Adam on the image, score against a perceptual distance, D(x', x) ≤ eps."""

    threat_model = "perceptual"
    budget_unit = "perceptual"
    strength_param = "lr"

    def __init__(self, distance: Distance = "dists", eps: float = 0.05, steps: int = 10, lr: float = 0.005,
                 weight: float = 1.0, direction: Direction = "increase"):
        super().__init__(direction)
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {', '.join(DISTANCES)}, got {distance!r}")
        within("eps", eps, 0, 1, lo_open=True)
        within("steps", steps, 1, MAX_STEPS, integer=True)
        within("lr", lr, 0, 1, lo_open=True)
        within("weight", weight, 0, 1e6)
        self.distance, self.eps, self.steps, self.lr, self.weight = distance, eps, steps, lr, weight

    def _dist(self, x: torch.Tensor):
        return distance_fn(self.distance, x.device)

    @torch.no_grad()
    def _pull_back(self, adv: torch.Tensor, x: torch.Tensor, dist, grid: bool, iters: int = 10) -> torch.Tensor:
        """Images with ``D > eps`` moved to ``x + t·(adv − x)``, the largest ``t`` bisection finds within the bound
        (on the 8-bit grid with ``grid``); ``t = 0``, the clean image, always is."""
        out = adv.clone()
        over = dist(adv, x) > self.eps
        if not over.any():
            return out
        a, c = adv[over], x[over]
        lo = torch.zeros(len(a), device=x.device)
        hi = torch.ones(len(a), device=x.device)

        def at(t):
            y = c + t.view(-1, 1, 1, 1) * (a - c)
            return torch.round(y * 255) / 255 if grid else y

        for _ in range(iters):
            mid = (lo + hi) / 2
            ok = dist(at(mid), c) <= self.eps
            lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
        out[over] = at(lo)
        return out

    def measured_budget(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._dist(x)(x_adv, x).detach()

    def keep_budget_8bit(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self._pull_back(q, x, self._dist(x), grid=True)

    def perturb(self, model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        dist = self._dist(x)  # builds the distance network first: missing weights fail before any step
        adv = x.clone().requires_grad_(True)
        opt = torch.optim.Adam([adv], lr=self.lr)
        with torch.enable_grad():
            for _ in range(self.steps):
                loss = (self.weight * dist(adv, x) - self.objective(model, adv)).sum()
                opt.zero_grad()
                loss.backward()
                adv.grad = torch.nan_to_num(adv.grad)
                opt.step()
                with torch.no_grad():
                    adv.copy_(self._pull_back(torch.nan_to_num(adv).clamp(0, 1), x, dist, grid=False))
        return adv.detach()
