"""One-pixel attack (Su et al., 2019): differential evolution of a few pixels, L0 budget, no backward pass."""
from __future__ import annotations

import pytest
import torch
from attack_helpers import counted_model, one_thread, photos  # noqa: F401  (one_thread: a fixture)

from benchmark import passes
from benchmark.attacks.onepixel import OnePixel
from benchmark.images import quantize_8bit

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("direction", ["increase", "decrease"])
def test_onepixel_moves_the_score_with_three_pixels_without_backward(direction):
    model, x = counted_model(), photos()
    attack = OnePixel(pixels=3, iters=3, popsize=60, direction=direction)  # the default: 10 generations of 300
    with passes.counting() as c:
        adv = attack(model, x, generator=torch.Generator().manual_seed(0), output_8bit=True)
    # the clean images, then per image a population of 60 for 1 + 3 generations
    assert c.backward == 0 and c.forward == len(x) * (1 + 60 * 4)
    with torch.no_grad():
        gain = model(adv) - model(x)
    sign = 1 if direction == "increase" else -1
    assert (sign * gain > 0.5).all() and sign * gain.mean() > 1.0, gain  # points on the 0..100 scale
    assert torch.equal(quantize_8bit(adv, x), adv)                      # 8-bit levels: the PNG holds it exactly
    changed = (adv != x).any(1).flatten(1).sum(1)                       # any bit of any channel
    assert (changed >= 1).all() and (changed <= 3).all()               # every other pixel is bit-identical
    assert torch.allclose(attack.last_scores, model(adv), atol=1e-4)


def test_onepixel_is_deterministic_and_checks_its_parameters():
    model, x = counted_model(), photos(2, 48)
    a, b = (OnePixel(pixels=1, iters=2, popsize=20)(model, x, generator=torch.Generator().manual_seed(4))
            for _ in range(2))
    assert torch.equal(a, b)
    assert ((a != x).any(1).flatten(1).sum(1) <= 1).all()
    with pytest.raises(ValueError, match="pixels"):
        OnePixel(pixels=0)
