"""Patch-RS (Sparse-RS, Croce et al., AAAI 2022): a random-search patch, budget = patch area, no backward pass."""
from __future__ import annotations

import math

import pytest
import torch
from attack_helpers import counted_model, one_thread, photos  # noqa: F401  (one_thread: a fixture)

from benchmark import passes
from benchmark.attacks.patch_rs import PatchRS
from benchmark.images import quantize_8bit

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("direction", ["increase", "decrease"])
def test_patch_rs_moves_the_score_within_its_patch_without_backward(direction):
    model, x = counted_model(), photos()
    attack = PatchRS(area=0.04, queries=150, direction=direction)  # 163 px: a 12×12 patch (default: 10 000 queries)
    with passes.counting() as c:
        adv = attack(model, x, generator=torch.Generator().manual_seed(0), output_8bit=True)
    assert c.backward == 0 and c.forward == len(x) * attack.queries
    with torch.no_grad():
        gain = model(adv) - model(x)
    sign = 1 if direction == "increase" else -1
    # only improvements from the clean image are kept, so no image is worse; on the default model a patch
    # moves most images by many points (one may sit on a plateau of its max/min pooling: no change)
    assert (sign * gain >= -1e-3).all() and sign * gain.mean() > 3.0, gain
    assert int((sign * gain > 0.5).sum()) >= 3, gain
    assert torch.equal(quantize_8bit(adv, x), adv)               # 8-bit levels: the PNG holds it exactly
    changed = (adv != x).any(1)                                  # any bit of any channel
    s = math.isqrt(int(0.04 * 64 * 64))
    for m in changed:
        assert int(m.sum()) <= 0.04 * 64 * 64                    # the budget; every other pixel is bit-identical
        if m.any():
            rows, cols = m.nonzero(as_tuple=True)
            assert rows.max() - rows.min() < s and cols.max() - cols.min() < s  # one s×s square
    assert torch.allclose(attack.last_scores, model(adv), atol=1e-4)


def test_patch_rs_paper_start_deterministic_and_checked():
    model, x = counted_model(), photos(2, 48)
    a, b = (PatchRS(area=0.05, queries=30, init="random_squares")(model, x, generator=torch.Generator().manual_seed(1))
            for _ in range(2))
    assert torch.equal(a, b)
    changed = (a != x).any(1).flatten(1).sum(1)
    assert (changed > 0).all() and (changed <= 0.05 * 48 * 48).all()  # the random patch is there from the start
    with pytest.raises(ValueError, match="less than one pixel"):
        PatchRS(area=1e-4)(model, x)
    with pytest.raises(ValueError, match="init"):
        PatchRS(init="stripes")
