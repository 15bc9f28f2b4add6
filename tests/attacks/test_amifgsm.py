"""AMI-FGSM (MSU benchmark): gains on the default model, its L∞ budget after 8-bit quantisation, and equality
with the MSU benchmark's loop transcribed (robustness_benchmark/methods/amifgsm/run.py)."""
from __future__ import annotations

import pytest
import torch
from attack_helpers import frozen, photos

from benchmark.attacks.amifgsm import AMIFGSM
from benchmark.metrics.default_model import DefaultModel


@pytest.fixture(scope="module")
def model():
    return frozen(DefaultModel())


def msu_amifgsm(model, image, metric_range=100.0, eps=10 / 255, iters=10, nu=1.0):
    """The MSU loop as published: loss = 1 − f/r on the batch mean, g = grad + nu·g_prev, x −= (eps/iters)·sgn g."""
    x = image.clone().requires_grad_(True)
    g_prev, lr = 0, eps / iters
    for _ in range(iters):
        loss = 1 - model(x).mean() / metric_range
        loss.backward()
        g = x.grad + g_prev * nu
        g_prev = g
        x.data -= lr * torch.sign(g)
        x.data.clamp_(0.0, 1.0)
        x.grad.zero_()
    return x.detach()


def test_defaults_raise_and_lower_the_score_within_the_budget_after_quantisation(model):
    x = photos(3, 64)
    with torch.no_grad():
        s = model(x)
    for direction, sign in (("increase", 1), ("decrease", -1)):
        attack = AMIFGSM(direction=direction)
        x_adv = attack(model, x, output_8bit=True)
        assert torch.equal(x_adv, torch.round(x_adv * 255) / 255)  # on the 8-bit grid
        assert float((x_adv - x).abs().amax()) <= 10 / 255 + 1e-6
        assert attack.describe_budget() == "10/255 L∞" and attack.budget_unit == "linf"
        with torch.no_grad():
            gain = sign * (model(x_adv) - s)
        assert bool((gain > 5).all()), (direction, gain)  # points on a 0-100 scale


def test_equals_the_msu_reference_loop_on_the_same_input(model):
    x = photos(2, 64)
    ours = AMIFGSM()(model, x)
    ref = msu_amifgsm(model, x)
    # the same signs at every step; float32 rounding of x ± k·eps/10 only
    assert float((ours - ref).abs().max()) < 1e-6


def test_differs_from_mifgsm_by_the_raw_gradient_momentum(model):
    from benchmark.attacks.mifgsm import MIFGSM

    x = photos(2, 64)
    a = AMIFGSM(eps=4 / 255, steps=4)(model, x)
    b = MIFGSM(eps=4 / 255, steps=4, alpha=1 / 255)(model, x)
    assert not torch.equal(a, b)
