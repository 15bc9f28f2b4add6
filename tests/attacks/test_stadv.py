"""stAdv (Xiao et al., ICLR 2018): the warp and smoothness loss, gains both ways on the default model, and the
flow bound, which 8-bit quantisation of the warped image cannot break."""
from __future__ import annotations

import pytest
import torch
from attack_helpers import frozen, photos

from benchmark.attacks.stadv import StAdv, flow_loss, project_flow, warp
from benchmark.metrics.default_model import DefaultModel


def test_warp_moves_pixels_by_an_integer_flow_and_keeps_them_at_zero_flow():
    x = torch.rand(1, 3, 8, 9, generator=torch.Generator().manual_seed(0))
    flow = torch.zeros(1, 2, 8, 9)
    assert torch.allclose(warp(x, flow), x, atol=1e-6)
    flow[:, 0] = 1.0  # sample one row below: the image moves up, the last row repeats (border)
    out = warp(x, flow)
    assert torch.allclose(out[..., :-1, :], x[..., 1:, :], atol=1e-5)
    assert torch.allclose(out[..., -1, :], x[..., -1, :], atol=1e-5)
    flow = torch.zeros(1, 2, 8, 9)
    flow[:, 1] = 0.5  # half a column: the mean of neighbours (bilinear)
    assert torch.allclose(warp(x, flow)[..., :-1], (x[..., :-1] + x[..., 1:]) / 2, atol=1e-5)


def test_flow_loss_is_the_papers_sum_over_diagonal_neighbours():
    zero = torch.zeros(1, 2, 6, 7)
    assert float(flow_loss(zero)) == pytest.approx(4 * 6 * 7 * 1e-4, rel=1e-4)  # sqrt(1e-8) per term
    one = torch.zeros(1, 2, 6, 7)
    one[0, 0, 3, 3] = 1.0  # one displaced pixel: 4 terms at it and 1 at each of its 4 diagonal neighbours
    assert float(flow_loss(one) - flow_loss(zero)) == pytest.approx(8 * (1 - 1e-4), rel=1e-3)
    big = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1).expand(1, 2, 4, 4)
    assert torch.allclose(project_flow(big, 1.0).norm(dim=1), torch.ones(1, 4, 4))


def test_defaults_raise_and_lower_the_score_within_the_flow_bound():
    model = frozen(DefaultModel())
    x = photos(3, 64)
    with torch.no_grad():
        s = model(x)
    for direction, sign in (("increase", 1), ("decrease", -1)):
        attack = StAdv(direction=direction)
        x_adv = attack(model, x, output_8bit=True)
        assert torch.equal(x_adv, torch.round(x_adv * 255) / 255)
        flow = attack.last_flow
        assert float(flow.norm(dim=1).amax()) <= attack.eps + 1e-5
        assert torch.equal(attack.measured_budget(x_adv, x), flow.norm(dim=1).flatten(1).amax(1))
        # the stored image is the quantised warp of x by that flow
        assert torch.equal(x_adv, torch.round(warp(x, flow).clamp(0, 1) * 255) / 255)
        with torch.no_grad():
            gain = sign * (model(x_adv) - s)
        assert bool((gain > 1).all()), (direction, gain)
    tight = StAdv(eps=0.2)
    tight(model, x)
    assert float(tight.last_budget.max()) <= 0.2 + 1e-6 and tight.describe_budget() == "0.2 flow px"


def test_images_are_attacked_independently_of_their_batch():
    model = frozen(DefaultModel())
    x = photos(2, 64)
    both = StAdv(steps=2)(model, x)
    alone = StAdv(steps=2)(model, x[1:])
    assert torch.allclose(both[1:], alone, atol=1e-5)
