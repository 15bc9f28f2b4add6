"""What one attack call did with the model: the images it passed forward and backward, and the scores of the
images it scored without a gradient, so that :meth:`Attack.__call__ <benchmark.attacks.base.Attack.__call__>`
hands back the scores of the images it returns (``last_scores``) without the attack keeping them.

A forward hook on the model, for the duration of the call, counts as :mod:`benchmark.passes` does a stage's
(``forward``: images scored; ``backward``: images whose score a gradient flowed back through) and keeps, for
each pass without a gradient, the scores and two exact 64-bit fingerprints per image (its float32 bits dotted
with two fixed random integer vectors, mod 2^64). Fingerprints stay where the images are; they are brought to
the CPU once, when the call ends, and only those that match a returned image. Passes with a gradient are
counted but not kept: their scores are what a gradient was taken of, and a score is reused only from a pass
like the harness's own (no gradient).
"""
from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

_CHUNK = 1 << 22  # pixel values fingerprinted at once (bounds the int64 product: 32 MiB)
_weights: dict[tuple[int, str], torch.Tensor] = {}  # one entry: the last (size, device)


def fingerprints(x: torch.Tensor) -> torch.Tensor:
    """B×2 int64 on ``x``'s device: two independent exact fingerprints per image (equal images always agree;
    integer sums do not depend on the order of summation)."""
    flat = x.detach().reshape(x.shape[0], -1).float().contiguous()
    key = (flat.shape[1], str(flat.device))
    if key not in _weights:
        _weights.clear()
        g = torch.Generator().manual_seed(0x5EED + flat.shape[1])
        _weights[key] = torch.randint(1, 2**62, (2, flat.shape[1]), generator=g, dtype=torch.int64).to(flat.device)
    w = _weights[key]
    rows = max(1, _CHUNK // max(1, flat.shape[1]))
    parts = [torch.stack([(bits * w[0]).sum(1), (bits * w[1]).sum(1)], 1)
             for bits in (chunk.view(torch.int32).long() for chunk in flat.split(rows))]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


class CallObserver:
    """Context manager around one attack call on ``model`` (an ``nn.Module``; anything else is not observed:
    :attr:`passes` and :meth:`scores_of` then answer None)."""

    def __init__(self, model):
        self.model = model if isinstance(model, nn.Module) else None
        self.forward = self.backward = 0
        self._fps: list[torch.Tensor] = []
        self._scores: list[torch.Tensor] = []
        self._handle = None

    def __enter__(self) -> CallObserver:
        if self.model is not None:
            self._handle = self.model.register_forward_hook(self._on_forward)
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _on_forward(self, module, args, output) -> None:
        if not args or not torch.is_tensor(args[0]) or args[0].dim() == 0:
            return
        n = args[0].shape[0]
        self.forward += n
        if not torch.is_tensor(output):
            return
        if output.requires_grad:
            output.register_hook(partial(self._on_backward, n))
        elif output.dim() >= 1 and output.shape[0] == n:
            self._fps.append(fingerprints(args[0]))
            self._scores.append(output.detach())

    def _on_backward(self, n: int, grad: torch.Tensor) -> None:
        self.backward += n

    @property
    def kept(self) -> bool:
        """Whether any pass without a gradient was kept (only then can :meth:`scores_of` find scores)."""
        return bool(self._fps)

    @property
    def passes(self) -> dict[str, int] | None:
        return None if self.model is None else {"forward": self.forward, "backward": self.backward}

    def scores_of(self, x: torch.Tensor, rank: float) -> torch.Tensor | None:
        """The model's scores of the images ``x``, when the call scored every one of them without a gradient
        and every such score is finite; else None. An image scored more than once takes the score with the
        highest ``rank · score`` (the attack's objective: the attack kept the image for that score), the first
        among equals; the scores of one image differ only in float rounding (another batch size)."""
        if not self._fps or x.shape[0] == 0:
            return None
        fps, scores = torch.cat(self._fps), torch.cat(self._scores)
        want = fingerprints(x).to(fps.device)
        rows = torch.isin(fps[:, 0], want[:, 0]).nonzero().flatten()
        if len(rows) == 0:
            return None
        keys = (rank * scores[rows].reshape(len(rows), -1)[:, 0].double()).tolist()
        best: dict[tuple[int, int], tuple[float, int]] = {}
        for fp, key, row in zip(fps[rows].tolist(), keys, rows.tolist()):
            key = key if math.isfinite(key) else -math.inf
            fp = tuple(fp)
            if fp not in best or key > best[fp][0]:
                best[fp] = (key, row)
        chosen = [best.get(tuple(fp)) for fp in want.tolist()]
        if any(c is None or c[0] == -math.inf for c in chosen):
            return None
        out = scores[torch.tensor([c[1] for c in chosen], device=scores.device)]
        return out if bool(torch.isfinite(out).all()) else None
