"""The defense contract: an ``nn.Module`` with ``forward(x, *, generator=None) -> x_purified``.

Capabilities are attributes: ``stochastic`` (uses the generator; the runner gives the clean and the
attacked branch the same seed), ``differentiable`` (gradients flow through it), and for
non-differentiable defenses ``surrogate(x)``, the differentiable approximation BPDA backpropagates
through (identity by default, as in Athalye et al. 2018).
"""
from __future__ import annotations

import torch
from torch import nn


class Defense(nn.Module):
    stochastic: bool = False
    differentiable: bool = True

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def surrogate(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable stand-in used by BPDA for non-differentiable defenses (identity by default)."""
        return x
