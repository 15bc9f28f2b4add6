"""No defense: the reference row of every table (``s'_D = s'``); ``baseline`` = True, so reports show it as
the reference and never rank it."""
from __future__ import annotations

import torch

from ..registry import DEFENSES
from .base import Defense


@DEFENSES.register("identity")
class Identity(Defense):
    """No purification (the undefended baseline)."""

    baseline = True

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return x
