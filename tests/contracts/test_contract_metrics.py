"""The metric contract, checked for every registered metric that can be built here: one finite score per
image, the same scores twice (eval mode, no randomness), scores near the declared range, declared
capabilities of the right types, and a gradient at the input when the metric declares ``differentiable``.
Metrics whose weights are not on this machine are skipped with the file named (their own tests load them
from fixtures in the official layout)."""
from __future__ import annotations

import pytest
import torch

from benchmark.metrics.base import Metric

from conftest import CNNIQA_WEIGHTS
from contract_helpers import build, builtin, images

NAMES = builtin("metrics")
# Files this checkout has for metrics whose weights are required (../shared beside a development checkout).
FILES = {"cnniqa": {"weights": CNNIQA_WEIGHTS}}


def built(name):
    kwargs = {k: v for k, v in FILES.get(name, {}).items() if v.exists()}
    m = build("metrics", name, **kwargs).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


@pytest.mark.parametrize("name", NAMES)
def test_scores_are_finite_repeatable_and_in_range(name):
    m = built(name)
    assert isinstance(m, Metric)
    assert isinstance(m.lower_better, bool) and isinstance(m.differentiable, bool)
    lo, hi = (float(v) for v in m.score_range)
    assert lo < hi
    x = images(3, 64)
    with torch.no_grad():
        s1, s2 = m(x), m(x)
    assert s1.shape == (3,) and torch.isfinite(s1).all()
    assert torch.equal(s1, s2)
    r = hi - lo
    assert (s1 >= lo - 0.5 * r).all() and (s1 <= hi + 0.5 * r).all(), (s1, m.score_range)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_reaches_the_input_when_declared(name):
    m = built(name)
    if not m.differentiable:
        pytest.skip("declares differentiable = False: gradient attacks are skipped on it, with the reason")
    x = images(2, 64).requires_grad_(True)
    (g,) = torch.autograd.grad(m(x).sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
