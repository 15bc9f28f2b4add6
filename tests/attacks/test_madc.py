"""MADC (Wang & Simoncelli 2008): score steps orthogonal to the MSE gradient gain on the default model and on the
real CNNIQA within the RMSE budget, which the 8-bit output keeps too."""
from __future__ import annotations

import pytest
import torch
from attack_helpers import frozen, photos, score_gain

from benchmark.attacks.madc import MADC
from benchmark.metrics.cnniqa import CNNIQA
from benchmark.metrics.default_model import DefaultModel

EPS = 2 / 255


def rmse(a, b):
    return ((a - b) ** 2).flatten(1).mean(1).sqrt()


def test_raises_the_default_models_score_within_the_rmse_budget():
    model, x = frozen(DefaultModel()), photos(3, 96)
    x_adv = MADC(eps=EPS, steps=5)(model, x, generator=torch.Generator().manual_seed(0))
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert float(rmse(x_adv, x).max()) <= EPS * (1 + 1e-5)
    assert float(rmse(x_adv, x).min()) >= 0.9 * EPS  # the steps end on the sphere, not inside it
    assert float(score_gain(model, x, x_adv).mean()) > 0.5  # points on the 0..100 scale


def test_the_8bit_output_keeps_the_rmse_budget_and_most_of_the_gain():
    """Rounding x' to 8 bits takes its RMSE past eps; the output is shrunk back within it (the harness stores it)."""
    model, x = frozen(DefaultModel()), photos(3, 64)
    attack = MADC(eps=EPS, steps=5)
    x_float = attack(model, x, generator=torch.Generator().manual_seed(0))
    x_png = attack(model, x, generator=torch.Generator().manual_seed(0), output_8bit=True)
    assert torch.equal(x_png, torch.round(x_png * 255) / 255)
    rounded = torch.round(x_float * 255) / 255
    assert float(rmse(rounded, x).max()) > EPS  # rounding alone breaks the budget here
    assert float(rmse(x_png, x).max()) <= EPS and float(rmse(x_png, x).min()) > EPS / 2
    assert float(score_gain(model, x, x_png).mean()) > 0.5 * float(score_gain(model, x, x_float).mean()) > 0


@pytest.mark.shared
def test_raises_the_real_cnniqa_score(cnniqa_weights):
    model, x = frozen(CNNIQA(weights=cnniqa_weights)), photos(3, 96)
    x_adv = MADC(eps=EPS, steps=5)(model, x, generator=torch.Generator().manual_seed(0))
    assert float(rmse(x_adv, x).max()) <= EPS * (1 + 1e-5)
    assert float(score_gain(model, x, x_adv).mean()) > 0.5  # DMOS points, lower is better
