"""Parsimonious attack (Moon et al., ICML 2019): lazy-greedy block sign flips, L∞ budget, no backward pass."""
from __future__ import annotations

import pytest
import torch
from attack_helpers import counted_model, one_thread, photos  # noqa: F401  (one_thread: a fixture)

from benchmark import passes
from benchmark.attacks.parsimonious import Parsimonious
from benchmark.images import quantize_8bit

pytestmark = pytest.mark.usefixtures("one_thread")

EPS = 8 / 255


@pytest.mark.parametrize("direction", ["increase", "decrease"])
def test_parsimonious_moves_the_score_within_linf_after_8bit_without_backward(direction):
    model, x = counted_model(), photos()
    attack = Parsimonious(eps=EPS, queries=200, direction=direction)  # the default is 10 000 queries
    with passes.counting() as c:
        adv = attack(model, x, generator=torch.Generator().manual_seed(0), output_8bit=True)
    assert c.backward == 0 and c.forward <= len(x) * attack.queries  # the query budget, per image
    with torch.no_grad():
        gain = model(adv) - model(x)
    sign = 1 if direction == "increase" else -1
    assert (sign * gain > 0.5).all() and sign * gain.mean() > 1.0, gain  # points on the 0..100 scale
    assert torch.equal(quantize_8bit(adv, x, EPS), adv)                  # already what the PNG will hold
    assert float((adv - x).abs().max()) <= EPS + 1e-6
    # a vertex of the ball: every value is x ± eps, or clipped at 0 or 1
    d = (adv - x).abs()
    assert bool(((d - EPS).abs() < 1e-6).logical_or(adv == 0).logical_or(adv == 1).all())
    assert torch.allclose(attack.last_scores, model(adv), atol=1e-4)


def test_parsimonious_refines_its_grid_and_is_deterministic():
    model, x = counted_model(), photos(2, 48)
    # 2×2 blocks × 3 channels = 12 blocks at the first level, so 300 queries reach finer grids
    attack = Parsimonious(queries=300, grid=2, block_batch=8)
    a = attack(model, x, generator=torch.Generator().manual_seed(3))
    b = Parsimonious(queries=300, grid=2, block_batch=8)(model, x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    # some channel of a 24-px block of the first level holds both signs (clipped values aside): the grid was split
    d = (a - x)[:, :, :24, :24].flatten(2)
    assert bool(((d > EPS / 2).any(2) & (d < -EPS / 2).any(2)).any())
    with pytest.raises(ValueError, match="queries"):
        Parsimonious(queries=0)
