"""Adaptive attacks: any attack run against the composite ``metric ∘ defense`` (Athalye, Carlini, Wagner,
"Obfuscated Gradients Give a False Sense of Security", ICML 2018), docs/measures.md#attacks-the-score-objective:

- EOT: a stochastic defense is averaged over ``K`` draws of its randomness,
  ``∇_x E_t L(D_t(x)) ≈ (1/K) Σ_k ∇_x L(D_{t_k}(x))``; every forward pass draws fresh randomness.
- BPDA: a non-differentiable defense is applied for real in the forward pass and replaced by its
  declared differentiable ``surrogate`` (identity by default) in the backward pass.
- A defense that ``replaces_metric`` (a fine-tuned metric) is attacked through its ``defended_metric``.

In a config: ``adaptive = true`` (and ``eot_samples = K``, default 1; AutoAttack uses 20) in an
``[[attacks]]`` table. The runner then attacks once per defense instead of once per metric.
"""
from __future__ import annotations

import torch

from ..metrics.base import Metric


def bpda(defense, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Forward: the real defense. Backward: the gradient of ``defense.surrogate``."""
    with torch.no_grad():
        real = defense(x, generator=generator)
    approx = defense.surrogate(x)
    if approx.shape != real.shape:
        raise ValueError(f"BPDA surrogate of {type(defense).__name__} returns {tuple(approx.shape)}, "
                         f"the defense {tuple(real.shape)}")
    return approx + (real - approx).detach()


class DefendedMetric(Metric):
    """``f ∘ D`` as a metric, with EOT over ``eot_samples`` draws and BPDA for non-differentiable ``D``.

    An attack called on it observes it as it observes any model (:meth:`benchmark.attacks.base.Attack.__call__`):
    ``last_passes`` counts passes of ``f ∘ D`` (each is ``eot_samples`` passes of ``f`` for a stochastic ``D``) and
    ``last_scores`` are scores of ``f ∘ D``, not of ``f``: the harness reuses them only when it attacked ``f``."""

    def __init__(self, metric: Metric, defense, eot_samples: int = 1, generator: torch.Generator | None = None):
        super().__init__()
        if eot_samples < 1:
            raise ValueError(f"eot_samples must be >= 1, got {eot_samples}")
        if defense.replaces_metric:  # a fine-tuned metric (robust_metric): attack it, not f
            metric = defense.defended_metric(metric)
        self.metric, self.defense, self.eot_samples = metric, defense, eot_samples
        self.generator = generator
        self.lower_better, self.score_range = metric.lower_better, metric.score_range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.eot_samples if self.defense.stochastic else 1
        total = 0.0
        for _ in range(k):
            if self.defense.differentiable:
                y = self.defense(x, generator=self.generator)
            else:
                y = bpda(self.defense, x, self.generator)
            total = total + self.metric(y)
        return total / k
