"""Cumulative UAP (Shumitskaya, Antsiferova, Vatolin, "Towards adversarial robustness verification of
no-reference image- and video-quality metrics", CVIU 240, 2024; code: katiashh/fast-attacks-on-NR-metrics,
``Cumulative_UAP_training.ipynb``, and the MSU metrics-robustness benchmark's
``robustness_benchmark/methods/cumulative-uap/train.py``), docs/measures.md §1.

A universal perturbation accumulated from raw gradients: for each training batch,

    δ ← clip_[-eps, eps](δ + lr · ∇_δ mean L(x + δ))

with no optimizer and no normalisation of the gradient (the reference subtracts the gradient of
``1 − f/r`` itself: ``lr = 1``), so the step is as large as the metric's gradient. At test time, as ``uap``:
``x' = clip01(x + a · tile(δ))``; trained once per (metric, fit parameters, seed) on the training split
disjoint from the evaluated images (:func:`benchmark.training.trainset.uap_images`), stored in
``<run>/artifacts/`` and reused across amplitudes and defenses. ``perturbation = "file.npy"`` applies a
published one instead (the MSU benchmark's ``res/cumulative-uap_maniqa_{COCO,VOC2012}.npy``).

Reference defaults: the authors' notebook: ``eps = 10/255``, batch 1, 10 epochs, 256×256 crops, ``δ₀ = 0``;
the MSU benchmark: ``eps = 0.1``, batch 8, 5 epochs, ``δ₀ = 0.0001``, trained on COCO or VOC2012 and applied
with amplitudes 0.2, 0.4, 0.8 (``eps = 0.1, amplitude = [0.2, 0.4, 0.8]`` here reproduces that setting on
this benchmark's training split: COCO and VOC are not shipped). Defaults here: ``eps = 10/255`` (the authors'
and ``uap``'s), ``amplitude = 1.0``, ``size = 256``, ``epochs = 5``, ``batch_size = 8`` (MSU's), ``lr = 1.0``
(the reference's implicit step). Neither the clipped input (the MSU code adds δ unclipped in training) nor
δ₀ = 0.0001 is kept: training sees ``clip01(x + δ)`` as test time does, from ``δ₀ = 0``.
At ``size = 64`` training takes a few seconds on 2 CPU cores with the default model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..registry import ATTACKS
from .base import Direction
from .uap import UAP


@ATTACKS.register("cumulative_uap")
class CumulativeUAP(UAP):
    """Cumulative UAP (Shumitskaya et al., CVIU 2024): δ accumulates raw score gradients, clipped to eps."""

    max_lr = 1000.0  # a multiple of the raw gradient, not an Adam step size

    def __init__(self, eps: float = 10 / 255, amplitude: float = 1.0, size: int = 256, epochs: int = 5,
                 lr: float = 1.0, batch_size: int = 8, direction: Direction = "increase",
                 perturbation: Path | None = None):
        super().__init__(eps=eps, amplitude=amplitude, size=size, epochs=epochs, lr=lr, batch_size=batch_size,
                         direction=direction, perturbation=perturbation)

    def init_state(self, device: torch.device, generator: torch.Generator) -> dict[str, Any]:
        return {"delta": torch.zeros(3, self.size, self.size, device=device)}

    def train_step(self, model, state: dict[str, Any], xb: torch.Tensor) -> None:
        delta = state["delta"]
        d = delta.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(self.objective(model, (xb + d).clamp(0, 1)).mean(), d)
        with torch.no_grad():
            delta.add_(self.lr * grad).clamp_(-self.eps, self.eps)
