"""Parsimonious black-box attack (Moon, An, Song, "Parsimonious Black-Box Adversarial Attacks via Efficient
Combinatorial Optimization", ICML 2019), L∞, in score space (the score objective of docs/measures.md): scores
only, no backward pass.

The perturbation is restricted to the vertices of the L∞ ball, ``x' = clip01(x + eps · s)`` with a sign
``s = ±1`` per block of a coarse grid and per channel, and the objective is maximised over the signs by
accelerated lazy greedy local search: the blocks are shuffled and taken ``block_batch`` at a time; for each
mini-batch, every block whose sign is − is flipped once and scored, the best flip is kept, and the rest are
re-scored lazily in the order of their last gains and kept while they improve the objective (insertion); the
same then for the blocks whose sign is + (deletion); ``max_iters`` rounds of both. When every mini-batch of
the grid is done, each block splits into four (the grid doubles, down to one pixel per block), and at the
finest grid the blocks are shuffled again, until ``queries`` scores per image are spent. Only improvements
are kept, so the returned image is the best found; it starts, as in the paper, from ``s = −1`` everywhere.
Images of a batch are searched in lockstep, their candidate images scored in shared forward passes.

Defaults are those of the authors' code (snu-mllab/parsimonious-blackbox-attack) and of the Guardians
``parsimonious``: ``queries = 10000``, ``block_batch = 64`` (their ``batch_size``), ``max_iters = 1``, and an
initial grid of ``grid = 8`` blocks per side (their 32-px blocks on a 256-px noise); ``eps = 8/255`` (a
Guardians budget category; theirs is 0.05, Guardians presets 0.01..0.2). The blocks here are on the image's own
pixel grid (the reference resizes a 256-px noise to the image), so the finest level is one pixel on any size.
With the default model, 10 000 queries took about 43 s per 64-px image on one busy CPU core (mean gain +21
points on four photographs); tests pass fewer.
"""
from __future__ import annotations

import heapq

import torch

from ..params import MAX_STEPS, within
from ..registry import ATTACKS
from .base import Attack, Direction

_PASS = 128  # candidate images per forward pass


def _cells(n: int, size: int, device) -> torch.Tensor:
    """The grid cell of each of ``size`` pixels when ``n ≤ size`` cells split them (``⌊i·n/size⌋``)."""
    return torch.div(torch.arange(size, device=device) * n, size, rounding_mode="floor")


def _parents(n: int, m: int, size: int, device) -> torch.Tensor:
    """For each of ``m`` finer cells of ``size`` pixels, the one of ``n`` coarser cells that holds its pixels."""
    first = torch.searchsorted(_cells(m, size, device), torch.arange(m, device=device))  # each cell's first pixel
    return _cells(n, size, device)[first]


@ATTACKS.register("parsimonious")
class Parsimonious(Attack):
    """Parsimonious attack (Moon et al., ICML 2019): lazy-greedy sign flips of coarse-to-fine blocks, L∞, score-only."""

    threat_model = "linf"
    budget_unit = "linf"
    needs_gradient = False

    def __init__(self, eps: float = 8 / 255, queries: int = 10000, grid: int = 8, block_batch: int = 64,
                 max_iters: int = 1, direction: Direction = "increase"):
        super().__init__(direction)
        within("eps", eps, 0, 1, lo_open=True)
        within("queries", queries, 2, MAX_STEPS, integer=True)
        within("grid", grid, 1, 4096, integer=True)
        within("block_batch", block_batch, 1, 4096, integer=True)
        within("max_iters", max_iters, 1, 100, integer=True)
        self.eps, self.queries, self.grid, self.block_batch, self.max_iters = eps, queries, grid, block_batch, max_iters

    # -- the state: signs (B, C, gh, gw) of ±1, rendered on the image ---------------------------------------
    def render(self, x: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        noise = signs[:, :, _cells(signs.shape[2], h, x.device)][:, :, :, _cells(signs.shape[3], w, x.device)]
        return self.finish((x + self.eps * noise).clamp(0, 1), x)

    def score_flips(self, model, x, signs, pairs) -> list[float]:
        """Objective of each ``(image, block)`` flip of ``pairs``, in shared forward passes."""
        objs = []
        for i in range(0, len(pairs), _PASS):
            chunk = pairs[i:i + _PASS]
            idx = torch.tensor([b for b, _ in chunk], device=x.device)
            s = signs[idx].clone()
            flat = s.view(len(chunk), -1)
            flat[torch.arange(len(chunk)), torch.tensor([j for _, j in chunk], device=x.device)] *= -1
            o, _ = self.scored_objective(model, self.render(x[idx], s))
            objs += o.tolist()
        return objs

    def local_search(self, model, x, st, blocks: list[int]) -> None:
        """Lazy-greedy insertion (flip − to +) then deletion (+ to −) over ``blocks``, ``max_iters`` rounds."""
        signs, n = st["signs"], x.shape[0]
        for _ in range(self.max_iters):
            for target in (1.0, -1.0):  # insert: flip blocks now −, to +; delete: flip blocks now +, to −
                live = [b for b in range(n) if st["used"][b] < self.queries]
                flat = signs.view(n, -1)
                pairs = []
                for b in live:
                    cand = [j for j in blocks if flat[b, j] != target]
                    pairs += [(b, j) for j in cand[:self.queries - st["used"][b]]]
                objs = self.score_flips(model, x, signs, pairs)
                heaps: dict[int, list] = {b: [] for b in live}
                for (b, j), o in zip(pairs, objs):
                    st["used"][b] += 1
                    heaps[b].append((-(o - st["obj"][b]), j))  # a block is once in its image's heap
                for b, hp in heaps.items():  # take the best flip where it improves
                    heapq.heapify(hp)
                    if hp and -hp[0][0] > 0:
                        gain, j = heapq.heappop(hp)
                        self.accept(st, b, j, st["obj"][b] - gain)
                    else:
                        hp.clear()
                # lazy greedy: re-score each image's top candidate, keep it if it still beats the next one
                while True:
                    active = [b for b, hp in heaps.items() if hp and st["used"][b] < self.queries]
                    if not active:
                        break
                    tops = {b: heapq.heappop(heaps[b]) for b in active}
                    objs = self.score_flips(model, x, signs, [(b, tops[b][1]) for b in active])
                    for k, b in enumerate(active):
                        st["used"][b] += 1
                        gain, j = objs[k] - st["obj"][b], tops[b][1]
                        hp = heaps[b]
                        if not hp or gain >= -hp[0][0]:
                            if gain > 0:
                                self.accept(st, b, j, objs[k])
                            else:
                                hp.clear()  # nothing left improves
                        else:
                            heapq.heappush(hp, (-gain, j))

    @staticmethod
    def accept(st, b: int, j: int, obj: float) -> None:
        st["signs"].view(st["signs"].shape[0], -1)[b, j] *= -1
        st["obj"][b] = obj

    @torch.no_grad()
    def perturb(self, model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        n, c, h, w = x.shape
        gh, gw = min(self.grid, h), min(self.grid, w)
        signs = -torch.ones((n, c, gh, gw), dtype=x.dtype, device=x.device)
        obj, _ = self.scored_objective(model, self.render(x, signs))
        st = {"signs": signs, "obj": obj.tolist(), "used": [1] * n}
        while min(st["used"]) < self.queries:
            blocks = torch.randperm(c * gh * gw, generator=generator).tolist()
            for i in range(0, len(blocks), self.block_batch):
                self.local_search(model, x, st, blocks[i:i + self.block_batch])
            if gh < h or gw < w:  # split every block into four (its children keep its sign)
                nh, nw = min(2 * gh, h), min(2 * gw, w)
                rows, cols = _parents(gh, nh, h, x.device), _parents(gw, nw, w, x.device)
                st["signs"] = st["signs"][:, :, rows][:, :, :, cols].contiguous()
                gh, gw = nh, nw
        return self.render(x, st["signs"])
