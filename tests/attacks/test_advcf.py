"""AdvCF (Zhao et al., BMVC 2020 / TIFS 2023): the piecewise-linear colour filter, gains both ways on the default
model, and its parameters within the slope-ratio bound (a parameter bound quantisation cannot break)."""
from __future__ import annotations

import torch
from attack_helpers import frozen, photos

from benchmark.attacks.advcf import AdvCF, colour_filter
from benchmark.metrics.default_model import DefaultModel


def test_equal_slopes_are_the_identity_and_slopes_shape_the_curve():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(colour_filter(x, torch.full((2, 3, 64), 1 / 64)), x, atol=1e-6)
    # two pieces, the first three times steeper: [0, .5] maps onto [0, .75], [.5, 1] onto [.75, 1]
    p = torch.tensor([3.0, 1.0]).expand(1, 1, 2)
    v = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]).view(1, 1, 1, 5)
    assert torch.allclose(colour_filter(v, p), torch.tensor([0.0, 0.375, 0.75, 0.875, 1.0]).view(1, 1, 1, 5))


def test_defaults_raise_and_lower_the_score_with_parameters_in_range():
    model = frozen(DefaultModel())
    x = photos(3, 64)
    with torch.no_grad():
        s = model(x)
    for direction, sign in (("increase", 1), ("decrease", -1)):
        attack = AdvCF(direction=direction)
        x_adv = attack(model, x, output_8bit=True)
        assert torch.equal(x_adv, torch.round(x_adv * 255) / 255)
        p, k = attack.last_params, attack.pieces
        assert float(p.min()) >= 1 / k - 1e-7 and float(p.max()) <= (1 + attack.eps) / k + 1e-6
        assert bool((attack.measured_budget(x_adv, x) <= attack.eps + 1e-5).all())
        # the stored image is that filter applied to x, quantised
        assert torch.equal(x_adv, torch.round(colour_filter(x, p).clamp(0, 1) * 255) / 255)
        with torch.no_grad():
            gain = sign * (model(x_adv) - s)
        assert bool((gain > 1).all()), (direction, gain)


def test_a_tighter_bound_changes_the_colours_less():
    model = frozen(DefaultModel())
    x = photos(2, 64)
    loose, tight = AdvCF(eps=7.0, steps=4), AdvCF(eps=0.5, steps=4)
    d_loose = (loose(model, x) - x).abs().mean()
    d_tight = (tight(model, x) - x).abs().mean()
    assert float(tight.last_budget.max()) <= 0.5 + 1e-5 and float(d_tight) < float(d_loose)
    assert tight.describe_budget() == "0.5 colour filter"
