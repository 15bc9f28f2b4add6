"""The defense contract, checked for every registered defense without its author writing a test
(kornia's BaseTester, benchopt's generic plugin tests): built from its defaults; the batch's shape and the
[0, 1] range kept; the same output for the same generator seed; a deterministic defense ignores the
generator; a gradient reaches the input through it (``differentiable``) or through its BPDA surrogate;
``align`` in ``forward``'s geometry; a ``wraps_metric`` defense returns a score and a certificate per image."""
from __future__ import annotations

import pytest
import torch

from benchmark.defenses.base import Defense

from contract_helpers import build, builtin, default_metric, gen, images, small_kwargs

NAMES = builtin("defenses")


@pytest.mark.parametrize("name", NAMES)
def test_builds_from_defaults(name):
    d = build("defenses", name)
    assert isinstance(d, Defense)
    for cap in ("stochastic", "differentiable", "baseline", "wraps_metric", "changes_geometry"):
        assert isinstance(getattr(type(d), cap), bool), cap


def small(name):
    return build("defenses", name, **small_kwargs("defenses", name)).eval()


@pytest.mark.parametrize("name", NAMES)
def test_shape_range_determinism(name):
    d = small(name)
    if d.wraps_metric:
        pytest.skip("scores through the metric: see test_wraps_metric_scores_and_certifies")
    x = images()
    with torch.no_grad():
        y1, y2 = d(x, generator=gen(3)), d(x, generator=gen(3))
    assert y1.shape == x.shape and y1.dtype == x.dtype
    assert torch.isfinite(y1).all() and y1.min() >= 0 and y1.max() <= 1
    assert torch.equal(y1, y2), "the same generator seed must give the same output"
    if not d.stochastic:
        with torch.no_grad():
            assert torch.equal(y1, d(x, generator=gen(4))), "a deterministic defense must ignore the generator"


@pytest.mark.parametrize("name", NAMES)
def test_gradient_reaches_the_input(name):
    d = small(name)
    if d.wraps_metric:
        pytest.skip("scores through the metric")
    x = images().requires_grad_(True)
    y = d(x, generator=gen(0)) if d.differentiable else d.surrogate(x)
    assert y.shape == x.shape
    (g,) = torch.autograd.grad((y * torch.linspace(0, 1, y.numel()).view_as(y)).sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_align_matches_forward_geometry(name):
    d = small(name)
    if d.wraps_metric:
        pytest.skip("scores through the metric")
    x = images()
    with torch.no_grad():
        a = d.align(x, generator=gen(5))
        y = d(x, generator=gen(5))
    assert a.shape == y.shape
    if not d.changes_geometry:
        assert torch.equal(a, x), "a defense that moves no pixels aligns to the clean image itself"


@pytest.mark.parametrize("name", NAMES)
def test_wraps_metric_scores_and_certifies(name):
    d = small(name)
    if not d.wraps_metric:
        pytest.skip("purifies images (forward), not through the metric")
    x = images()
    with torch.no_grad():
        scores, certs = d.score(default_metric(), x, generator=gen(0))
        again, _ = d.score(default_metric(), x, generator=gen(0))
    assert scores.shape == (len(x),) and torch.isfinite(scores).all()
    assert len(certs) == len(x) and all(isinstance(c, dict) for c in certs)
    assert torch.equal(scores, again)
