"""Patch-RS (Croce, Andriushchenko, Singh, Flammarion, Hein, "Sparse-RS: a Versatile Framework for
Query-Efficient Sparse Black-Box Adversarial Attacks", AAAI 2022), the image-specific patch attack, in score
space (the score objective of docs/measures.md): random search with scores only, no backward pass.

One square patch of side ``s = ⌊√(area · H · W)⌋`` pixels replaces the image where it lies; its pixels take
any colour, so the budget is the patch's share of the image (unit ``patch_area``: at most ``area`` of the
pixels change, and every other pixel stays bit-identical). Each query proposes, per image, either a new
location (every ``update_loc_period``-th query while the allowed shift ``0.75 · (1 − t/queries) · H`` is at
least a pixel) or new content: a random sub-square of the patch, of side ``√p_t · s`` on Square's halving
schedule of ``p_t`` from ``p_init`` (rescaled to ``queries``), takes a random vertex colour of the RGB cube;
once that side is one pixel, half of the remaining queries flip one channel of one pixel. The proposal is kept
where it raises the objective. Colours are whole 8-bit levels, so the output is already what a PNG stores.

Defaults are the Guardians ``patch-rs`` (Sparse-RS code's ``norm = "patches"``): ``queries = 10000``,
``p_init = 0.8``, ``update_loc_period = 4``, except two. ``area = 0.01`` is a fraction of the image (the
Guardians give pixels, 169 by default, presets 16..625, 0.09 % of a 512×384 KonIQ image; the paper's 20×20
patch on 224-px ImageNet is 0.8 %). ``init = "clean"`` starts the patch as a copy of the pixels under it, so
the search starts from the clean image's score: the paper's ``init = "random_squares"`` (a patch of random
coloured squares) starts from a distortion, which for a quality score is a loss to recover first. With the
default model, 10 000 queries took about 42 s per 64-px image on one busy CPU core (a 6×6 patch on 64 px: mean
gain +47 points on four photographs); tests pass fewer.
"""
from __future__ import annotations

import math
from typing import Literal

import torch

from ..params import MAX_STEPS, within
from ..registry import ATTACKS
from .base import Attack, Direction

_SCHEDULE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)  # of 10 000 queries: p halves after each


@ATTACKS.register("patch_rs")
class PatchRS(Attack):
    """Sparse-RS patch attack (Croce et al., AAAI 2022): random search over a patch's place and colours, score-only."""

    threat_model = "patch"
    budget_unit = "patch_area"
    strength_param = "area"
    needs_gradient = False

    def __init__(self, area: float = 0.01, queries: int = 10000, p_init: float = 0.8, update_loc_period: int = 4,
                 init: Literal["clean", "random_squares"] = "clean", direction: Direction = "increase"):
        super().__init__(direction)
        within("area", area, 0, 1, lo_open=True)
        within("queries", queries, 1, MAX_STEPS, integer=True)
        within("p_init", p_init, 0, 1, lo_open=True)
        within("update_loc_period", update_loc_period, 2, MAX_STEPS, integer=True)
        if init not in ("clean", "random_squares"):
            raise ValueError(f"init must be 'clean' or 'random_squares', got {init!r}")
        self.area, self.queries, self.p_init, self.update_loc_period, self.init = \
            area, queries, p_init, update_loc_period, init

    @property
    def budget(self) -> float:
        return self.area

    def side(self, h: int, w: int) -> int:
        s = math.isqrt(math.floor(self.area * h * w + 1e-9))
        if not 1 <= s <= min(h, w):
            raise ValueError(f"patch area {self.area:g} of a {h}×{w} image is {self.area * h * w:.3g} pixels: "
                             "less than one pixel; raise area")
        return s

    def p_at(self, it: int) -> float:
        return self.p_init / 2 ** sum(int(it / self.queries * 10000) > t for t in _SCHEDULE)

    def _int(self, high, shape, generator) -> torch.Tensor:
        """Uniform integers in ``[0, high)`` (``high`` a number or a tensor of bounds), from ``generator``."""
        return (torch.rand(shape, generator=generator) * high).long()

    def start_patches(self, x: torch.Tensor, loc: torch.Tensor, s: int, generator) -> torch.Tensor:
        n, c = x.shape[:2]
        if self.init == "clean":
            return torch.stack([x[b, :, loc[b, 0]:loc[b, 0] + s, loc[b, 1]:loc[b, 1] + s] for b in range(n)])
        patches = torch.zeros((n, c, s, s), dtype=x.dtype)  # the paper's random coloured squares
        top = max(1, math.ceil(s ** 0.5))
        for b in range(n):
            sizes = 1 + self._int(top - 1, (1000,), generator)
            corner = (torch.rand((1000, 2), generator=generator) * (s - sizes + 1).unsqueeze(1)).long()
            colour = self._int(2, (1000, c), generator).to(x.dtype)
            for k in range(1000):
                i, j, z = int(corner[k, 0]), int(corner[k, 1]), int(sizes[k])
                patches[b, :, i:i + z, j:j + z] = colour[k].view(c, 1, 1)
        return patches.to(x.device)

    @staticmethod
    def paste(x: torch.Tensor, patches: torch.Tensor, loc: torch.Tensor) -> torch.Tensor:
        """``x`` with each image's patch at its location; every other pixel is ``x``'s own, bit for bit."""
        out, s = x.clone(), patches.shape[-1]
        for b in range(len(x)):
            out[b, :, loc[b, 0]:loc[b, 0] + s, loc[b, 1]:loc[b, 1] + s] = patches[b]
        return out

    @torch.no_grad()
    def perturb(self, model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        n, c, h, w = x.shape
        s = self.side(h, w)
        loc = torch.stack([self._int(h - s + 1, (n,), generator), self._int(w - s + 1, (n,), generator)], 1)
        patches = self.start_patches(x, loc, s, generator)
        best_obj, _ = self.scored_objective(model, self.paste(x, patches, loc))
        it_single = next((t for t in range(self.queries) if int(self.p_at(t) ** 0.5 * s) <= 1), self.queries)
        it_single += (self.queries - it_single) // 2  # single-channel flips from here on
        for it in range(1, self.queries):
            s_it = max(int(self.p_at(it) ** 0.5 * s), 1)
            shift = 0.75 * max(1 - it / self.queries, 0.0)
            sh, sw = int(shift * h), int(shift * w)
            new_p, new_l = patches.clone(), loc.clone()
            if it % self.update_loc_period == 0 and max(sh, sw) > 0:
                move = torch.stack([self._int(2 * sh + 1, (n,), generator) - sh,
                                    self._int(2 * sw + 1, (n,), generator) - sw], 1)
                new_l[:, 0] = (loc[:, 0] + move[:, 0]).clamp(0, h - s)
                new_l[:, 1] = (loc[:, 1] + move[:, 1]).clamp(0, w - s)
            else:
                at = self._int(s - s_it + 1, (n, 2), generator)
                colour = self._int(2, (n, c), generator).to(x)
                channel = self._int(c, (n,), generator)
                for b in range(n):
                    sq = (slice(None), slice(int(at[b, 0]), int(at[b, 0]) + s_it),
                          slice(int(at[b, 1]), int(at[b, 1]) + s_it))
                    if s_it > 1 or it < it_single:
                        if s_it == 1 and bool((new_p[b][sq].view(c) == colour[b]).all()):
                            colour[b, channel[b]] = 1 - colour[b, channel[b]]  # a colour other than the old
                        new_p[b][sq] = colour[b].view(c, 1, 1)
                    else:  # the opposite level of one channel of one pixel
                        k = int(channel[b])
                        new_p[b, k][sq[1:]] = torch.round((1 - new_p[b, k][sq[1:]]) * 255) / 255
            obj, _ = self.scored_objective(model, self.paste(x, new_p, new_l))
            better = obj > best_obj
            patches[better], loc[better.cpu()] = new_p[better], new_l[better.cpu()]
            best_obj = torch.where(better, obj, best_obj)
        return self.paste(x, patches, loc)
