"""Square attack (Andriushchenko, Croce, Flammarion, Hein, "Square Attack: a query-efficient black-box
adversarial attack via random search", ECCV 2020), L∞, in score space: needs only scores, no gradients,
so it also attacks metrics that are not differentiable (docs/measures.md#attacks-the-score-objective objective).

Each query redraws one random square window with ±eps per channel and keeps it for the images whose
objective improved. The window covers a fraction ``p`` of the image, halved on the paper's schedule.
The paper starts from vertical stripes of ±eps, which helps a classifier attack; for an attack that
*raises* a quality score, random stripes are a distortion that lowers it, so the default here starts
from the clean image (``init = "clean"``); ``init = "stripes"`` gives the paper's start.
Defaults: ``eps = 8/255``, ``queries = 200``, ``p_init = 0.05``, ``init = "clean"``. Ranges: ``eps`` and
``p_init`` in (0, 1], ``queries`` within 1..10⁵.
"""
from __future__ import annotations

import math
from typing import Literal

import torch

from ..params import MAX_STEPS, within
from ..registry import ATTACKS
from .base import Attack, Direction

# The paper's schedule (for 10 000 iterations): p halves at these iterations; rescaled to ``queries``.
_SCHEDULE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


@ATTACKS.register("square")
class Square(Attack):
    """Square attack (Andriushchenko et al., ECCV 2020): score-only random search, L∞ budget, no gradients."""

    threat_model = "linf"
    needs_gradient = False

    def __init__(self, eps: float = 8 / 255, queries: int = 200, p_init: float = 0.05,
                 init: Literal["clean", "stripes"] = "clean", direction: Direction = "increase"):
        super().__init__(direction)
        within("eps", eps, 0, 1, lo_open=True)
        within("queries", queries, 1, MAX_STEPS, integer=True)
        within("p_init", p_init, 0, 1, lo_open=True)
        if init not in ("clean", "stripes"):
            raise ValueError(f"init must be 'clean' or 'stripes', got {init!r}")
        self.eps, self.queries, self.p_init, self.init = eps, queries, p_init, init

    def p_at(self, i: int) -> float:
        it = i * 10000 / self.queries
        return self.p_init / 2 ** sum(it > s for s in _SCHEDULE)

    def _rand(self, shape, generator, device) -> torch.Tensor:
        return torch.rand(shape, generator=generator, device="cpu").to(device)

    @torch.no_grad()
    def perturb(self, model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        adv = x.clone()
        if self.init == "stripes":
            stripes = torch.where(self._rand((b, c, 1, w), generator, x.device) < 0.5, -self.eps, self.eps)
            adv = (x + stripes).clamp(0, 1)
        best = self.objective(model, adv)
        for i in range(1, self.queries):
            s = max(1, min(h, w, int(round(math.sqrt(self.p_at(i) * h * w)))))
            top = int(self._rand((1,), generator, "cpu") * (h - s + 1))
            left = int(self._rand((1,), generator, "cpu") * (w - s + 1))
            signs = torch.where(self._rand((b, c, 1, 1), generator, x.device) < 0.5, -self.eps, self.eps)
            cand = adv.clone()
            window = x[:, :, top:top + s, left:left + s] + signs
            cand[:, :, top:top + s, left:left + s] = window.clamp(0, 1)
            obj = self.objective(model, cand)
            better = obj > best
            adv[better], best[better] = cand[better], obj[better]
        return adv
