"""Square attack (Andriushchenko et al., ECCV 2020): score-only random search that improves every image of the
default model and of the real CNNIQA within its L∞ budget, with no backward pass."""
from __future__ import annotations

import pytest
import torch
from attack_helpers import counted_model, frozen, linf, photos, score_gain

from benchmark.attacks.square import Square
from benchmark.metrics.cnniqa import CNNIQA

EPS = 4 / 255


def test_improves_every_image_of_the_default_model_without_backward():
    model, x = counted_model(), photos(3, 96)
    attack = Square(eps=EPS, queries=100)
    x_adv = attack(model, x, generator=torch.Generator().manual_seed(0))
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert float(linf(x_adv, x).max()) <= EPS + 1e-6
    gain = score_gain(model, x, x_adv)
    assert float(gain.mean()) > 0.1 and bool((gain > 0).all())  # it only accepts improvements
    assert attack.last_passes == {"forward": 3 * 100, "backward": 0}  # one scoring of the batch per query


@pytest.mark.shared
def test_improves_every_image_of_the_real_cnniqa(cnniqa_weights):
    model, x = frozen(CNNIQA(weights=cnniqa_weights)), photos(3, 96)
    x_adv = Square(eps=EPS, queries=100)(model, x, generator=torch.Generator().manual_seed(0))
    assert float(linf(x_adv, x).max()) <= EPS + 1e-6
    gain = score_gain(model, x, x_adv)
    assert float(gain.mean()) > 0.1 and bool((gain > 0).all())  # DMOS points, lower is better
