"""One-pixel attack (Su, Vargas, Sakurai, "One Pixel Attack for Fooling Deep Neural Networks", IEEE TEVC
2019), L0, in score space (the score objective of docs/measures.md): differential evolution over ``pixels``
pixels, each a candidate ``(row, column, r, g, b)``, with scores only, no backward pass.

Per image, :func:`scipy.optimize.differential_evolution` searches the ``5 · pixels`` coordinates (positions in
``[0, H) × [0, W)``, colours in ``[0, 256)``, floored to whole pixels and 8-bit levels) to maximise the
objective, scoring its whole population in one vectorised call (forward passes of ``batch_size`` images). As
in the authors' code and the Guardians ``onepixel``: strategy ``best1bin``, mutation dithered in
``(0.5, 1)``, ``recombination = 1``, no convergence stop (``atol = -1``, ``tol = 0``) and no polishing, a
population of ``max(1, popsize // (5 · pixels)) · 5 · pixels`` candidates evolved for ``iters`` generations
(``(iters + 1) ×`` that many queries per image). The best candidate is returned, or the clean image when no
candidate beat it. At most ``pixels`` pixels change (fewer where two candidates share a place); their new
values are 8-bit levels, so the output is what a PNG stores and every other pixel is bit-identical to ``x``.

Defaults are the Guardians ``onepixel``: ``pixels = 3`` (presets 1..50), ``iters = 10``, ``popsize = 300``,
``batch_size = 32``; Su et al. use 1, 3 or 5 pixels, a population of 400 and 100 generations (their Keras code
75). With the default model, its 3 300 queries took about 7 s per 64-px image on one busy CPU core (mean gain +6
points on four photographs); tests pass fewer.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import differential_evolution

from ..params import MAX_IMAGE_SIDE, MAX_STEPS, within
from ..registry import ATTACKS
from .base import Attack, Direction


@ATTACKS.register("onepixel")
class OnePixel(Attack):
    """One-pixel attack (Su et al., IEEE TEVC 2019): differential evolution of a few pixels, L0, score-only."""

    threat_model = "l0"
    budget_unit = "l0_pixels"
    strength_param = "pixels"
    needs_gradient = False

    def __init__(self, pixels: int = 3, iters: int = 10, popsize: int = 300, batch_size: int = 32,
                 direction: Direction = "increase"):
        super().__init__(direction)
        within("pixels", pixels, 1, MAX_IMAGE_SIDE ** 2, integer=True)
        within("iters", iters, 1, MAX_STEPS, integer=True)
        within("popsize", popsize, 1, MAX_STEPS, integer=True)
        within("batch_size", batch_size, 1, MAX_STEPS, integer=True)
        self.pixels, self.iters, self.popsize, self.batch_size = pixels, iters, popsize, batch_size

    @property
    def budget(self) -> float:
        return float(self.pixels)

    def apply(self, x: torch.Tensor, cand: np.ndarray) -> torch.Tensor:
        """``x`` (C×H×W) with the pixels of each candidate row ``(row, col, r, g, b) × pixels`` set: K×C×H×W."""
        h, w = x.shape[-2:]
        v = torch.from_numpy(np.floor(cand)).long().view(len(cand), self.pixels, 5)
        rows, cols = v[..., 0].clamp(0, h - 1), v[..., 1].clamp(0, w - 1)
        colour = v[..., 2:].clamp(0, 255).to(x).div(255)
        out = x.unsqueeze(0).repeat(len(cand), 1, 1, 1)
        k = torch.arange(len(cand))
        for j in range(self.pixels):  # in order: a later pixel at the same place wins
            out[k, :, rows[:, j], cols[:, j]] = colour[:, j, :x.shape[0]]
        return out

    def search(self, model, x: torch.Tensor, seed: int) -> tuple[np.ndarray, float]:
        """Differential evolution for one image: the best candidate and its objective."""
        h, w = x.shape[-2:]

        def negative_objective(pop: np.ndarray) -> np.ndarray:  # pop: (5·pixels, S), one column per candidate
            cand = np.ascontiguousarray(pop.T)
            out = np.empty(len(cand))
            for i in range(0, len(cand), self.batch_size):
                obj, _ = self.scored_objective(model, self.apply(x, cand[i:i + self.batch_size]))
                out[i:i + len(obj)] = -obj.double().cpu().numpy()
            return np.nan_to_num(out, nan=np.inf)  # an unscoreable candidate is never the best

        bounds = [(0, h), (0, w), (0, 256), (0, 256), (0, 256)] * self.pixels
        res = differential_evolution(
            negative_objective, bounds, maxiter=self.iters, popsize=max(1, self.popsize // len(bounds)),
            recombination=1, mutation=(0.5, 1), strategy="best1bin", tol=0, atol=-1, polish=False,
            init="latinhypercube", updating="deferred", vectorized=True, rng=np.random.default_rng(seed))
        return res.x, -float(res.fun)

    @torch.no_grad()
    def perturb(self, model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        clean_obj, _ = self.scored_objective(model, x)
        seeds = torch.randint(0, 2**63 - 1, (len(x),), generator=generator).tolist()
        out = x.clone()
        for b in range(len(x)):
            cand, obj = self.search(model, x[b], seeds[b])
            if obj > float(clean_obj[b]):
                out[b] = self.apply(x[b], cand[None])[0]
        return out
