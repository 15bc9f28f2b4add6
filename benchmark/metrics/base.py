"""The metric contract: an ``nn.Module`` mapping B×3×H×W images in [0,1] to B scores.

Capabilities are attributes: ``lower_better`` (direction), ``score_range`` ``(lo, hi)`` (so ``r = |hi - lo|``
in docs/measures.md#attacks-the-score-objective), ``differentiable`` (gradients flow to the input; when False the runner skips every
attack that declares ``needs_gradient``, with the reason, and score-only attacks such as ``square`` still
run), ``mode`` (``"NR"``).

``validate`` checks a metric's parameters through two classmethods declared here (:mod:`benchmark.params`):
``check_params`` (no I/O but ``stat``: files are files, ranges are ranges) and ``check_files`` (its deep
check: the metric built on the meta device, so its checkpoint is read safely and its keys and shapes checked
against the architecture, nothing allocated).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..params import bind, build_on_meta


class Metric(nn.Module):
    lower_better: bool = False
    score_range: tuple[float, float] = (0.0, 1.0)
    differentiable: bool = True
    mode: str = "NR"

    @classmethod
    def check_params(cls, params: dict[str, Any], base: Path) -> dict[str, Any]:
        """Check constructor parameters without reading any file (``validate``; :mod:`benchmark.params`): here, the
        keywords are the constructor's. Subclasses check their files' kinds and their ranges, and return the
        parameters to use; a constructor may call it with the few values it checks."""
        bind(cls, params, partial=True)
        return params

    @classmethod
    def check_files(cls, params: dict[str, Any]) -> None:
        """``validate``'s deep check: the metric built on the meta device (checkpoints read with
        ``weights_only=True``, keys and shapes checked, nothing allocated); a missing file is a
        :class:`~benchmark.errors.MissingWeightsError` saying where its release lives. A metric whose building
        needs more than its own files (pyiqa: backbones) overrides it."""
        build_on_meta(lambda: cls(**params))

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
