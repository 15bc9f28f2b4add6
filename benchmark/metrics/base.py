"""The metric contract: an ``nn.Module`` mapping B×3×H×W images in [0,1] to B scores.

Capabilities are attributes: ``lower_better`` (direction), ``score_range`` ``(lo, hi)`` (so ``r = |hi - lo|``
in docs/measures.md#attacks-the-score-objective), ``differentiable`` (gradients flow to the input; when False the runner skips every
attack that declares ``needs_gradient``, with the reason, and score-only attacks such as ``square`` still
run), ``mode`` (``"NR"``).
"""
from __future__ import annotations

import torch
from torch import nn


class Metric(nn.Module):
    lower_better: bool = False
    score_range: tuple[float, float] = (0.0, 1.0)
    differentiable: bool = True
    mode: str = "NR"

    @property
    def score_scale(self) -> float:
        """``r = |hi - lo|`` of docs/measures.md#attacks-the-score-objective."""
        lo, hi = self.score_range
        return abs(float(hi) - float(lo))

    @property
    def sign(self) -> int:
        """``-1`` for lower-is-better metrics, ``+1`` otherwise (docs/measures.md#attacks-the-score-objective)."""
        return -1 if self.lower_better else 1

    def metadata(self) -> dict:
        return {"lower_better": bool(self.lower_better), "range_lo": float(self.score_range[0]),
                "range_hi": float(self.score_range[1]), "differentiable": bool(self.differentiable)}


def check_images(x: torch.Tensor, who: str) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{who}: expected B×3×H×W images, got shape {tuple(x.shape)}")
