"""The median filter defense (benchmark/defenses/median.py): a gradient reaches the input through it."""
from __future__ import annotations

from benchmark.defenses.median import MedianFilter

from helpers.images import batch


def test_median_gradient_flows():
    x = batch(1).requires_grad_(True)
    MedianFilter(3)(x).sum().backward()
    assert x.grad.abs().sum() > 0
