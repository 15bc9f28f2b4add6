"""NES attack (Ilyas, Engstrom, Athalye, Lin, "Black-box Adversarial Attacks with Limited Queries and
Information", ICML 2018), L∞, in score space: the gradient of the score objective (docs/measures.md) is
estimated from scores alone by natural evolution strategies, and PGD-L∞ steps on the estimate. No backward pass.

Each iteration draws ``samples`` antithetic Gaussian directions ``±u`` (half of them mirrored), scores
``x_t + σ·u``, and estimates ``g = mean(L(x_t + σu) · u) / σ``; the step is ``x_{t+1} = Π(x_t + lr · sgn(ĝ))``
with momentum ``ĝ = m·ĝ_prev + (1 − m)·g``. As in the authors' code (labsix/limited-blackbox-attacks),
``lr`` halves (down to ``min_lr``) when the mean sampled objective of the last ``plateau_length`` iterations
fell. Each iterate is also scored, as it will be stored (on the 8-bit grid when the run stores PNGs), and the
best-scoring image is returned (the clean one if no iterate beat it): an iteration costs ``samples + 1``
queries, the clean image one, and no image is scored more than ``queries`` times.

Defaults are those of the authors' code: ``queries = 10000``, ``samples = 50`` per draw, ``sigma = 1e-3``,
``lr = 1e-2`` (their ``max_lr``), ``min_lr = 5e-5``, ``momentum = 0.9``, ``plateau_length = 5``,
``plateau_drop = 2``; except ``eps = 8/255`` (a Guardians budget category; theirs is 0.05, the Guardians
``grad-est`` uses 0.1 with presets 0.01..0.2). ``batch_size`` (their 50) is the samples per forward pass and
image. With the default model, 10 000 queries took about 23 s per 64-px image on one busy CPU core (mean gain
+27 points on four photographs); tests pass fewer. The Guardians ``grad-est`` differs: it tiles a 32×32
direction over the image and takes L2-normalised steps; this is the paper's attack.
"""
from __future__ import annotations

import torch

from ..params import MAX_STEPS, within
from ..registry import ATTACKS
from .base import Attack, Direction, project_linf


@ATTACKS.register("nes")
class NES(Attack):
    """NES gradient estimation + PGD-L∞ (Ilyas et al., ICML 2018): score-only, no gradients, L∞ budget."""

    threat_model = "linf"
    budget_unit = "linf"
    needs_gradient = False

    def __init__(self, eps: float = 8 / 255, queries: int = 10000, samples: int = 50, sigma: float = 1e-3,
                 lr: float = 1e-2, min_lr: float = 5e-5, momentum: float = 0.9, plateau_length: int = 5,
                 plateau_drop: float = 2.0, batch_size: int = 50, direction: Direction = "increase"):
        super().__init__(direction)
        within("eps", eps, 0, 1, lo_open=True)
        within("samples", samples, 2, MAX_STEPS, integer=True)
        within("queries", queries, samples + 2, MAX_STEPS, integer=True)  # the clean image and one iteration
        within("sigma", sigma, 0, 1, lo_open=True)
        within("lr", lr, 0, 1, lo_open=True)
        within("min_lr", min_lr, 0, lr, lo_open=True)
        within("momentum", momentum, 0, 1, hi_open=True)
        within("plateau_length", plateau_length, 2, MAX_STEPS, integer=True)
        within("plateau_drop", plateau_drop, 1, 1000, lo_open=True)
        within("batch_size", batch_size, 2, samples, integer=True)
        if samples % 2 or batch_size % 2 or samples % batch_size:
            raise ValueError(f"samples ({samples}) and batch_size ({batch_size}) must be even, and batch_size must "
                             "divide samples (antithetic pairs ±u are drawn per forward pass)")
        self.eps, self.queries, self.samples, self.sigma = eps, queries, samples, sigma
        self.lr, self.min_lr, self.momentum = lr, min_lr, momentum
        self.plateau_length, self.plateau_drop, self.batch_size = plateau_length, plateau_drop, batch_size

    def estimate(self, model, adv: torch.Tensor, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """NES estimate of the objective's gradient at ``adv`` and the mean sampled objective, per image."""
        b, half = adv.shape[0], self.batch_size // 2
        grad, mean_obj = torch.zeros_like(adv), torch.zeros(b, dtype=adv.dtype, device=adv.device)
        for _ in range(self.samples // self.batch_size):
            u = torch.randn((b, half, *adv.shape[1:]), generator=generator, device="cpu").to(adv)
            u = torch.cat([u, -u], dim=1)  # antithetic pairs
            pts = (adv.unsqueeze(1) + self.sigma * u).flatten(0, 1)
            obj, _ = self.scored_objective(model, pts)
            obj = obj.view(b, self.batch_size)
            grad += (obj.view(b, -1, 1, 1, 1) * u).sum(1)
            mean_obj += obj.sum(1)
        return grad / (self.samples * self.sigma), mean_obj / self.samples

    @torch.no_grad()
    def perturb(self, model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        best = x.clone()
        best_obj, _ = self.scored_objective(model, x)
        adv, g = x.clone(), torch.zeros_like(x)
        lr = torch.full((x.shape[0],), self.lr, dtype=x.dtype, device=x.device)
        history: list[torch.Tensor] = []  # mean sampled objective per iteration since the last anneal
        for _ in range((self.queries - 1) // (self.samples + 1)):
            est, mean_obj = self.estimate(model, adv, generator)
            g = self.momentum * g + (1 - self.momentum) * est
            history = (history + [mean_obj])[-self.plateau_length:]
            if len(history) == self.plateau_length:
                fell = history[-1] < history[0]
                if bool(fell.any()):
                    lr = torch.where(fell, (lr / self.plateau_drop).clamp_min(self.min_lr), lr)
                    history = [torch.where(fell, h.new_full(h.shape, float("nan")), h) for h in history]
                    history = [] if bool(fell.all()) else history
            adv = project_linf(adv + lr.view(-1, 1, 1, 1) * g.sign(), x, self.eps)
            stored = self.finish(adv, x)
            obj, _ = self.scored_objective(model, stored)
            better = obj > best_obj
            best[better], best_obj[better] = stored[better], obj[better]
        return best
