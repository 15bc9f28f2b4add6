"""Korhonen & You (QoEVMA 2022): the texture-masked Adam attack gains on the default model and on the real CNNIQA
within its L∞ budget."""
from __future__ import annotations

import pytest
import torch
from attack_helpers import frozen, linf, photos, score_gain

from benchmark.attacks.korhonen import Korhonen
from benchmark.metrics.cnniqa import CNNIQA
from benchmark.metrics.default_model import DefaultModel

EPS = 4 / 255


def test_raises_the_default_models_score_within_the_budget():
    model, x = frozen(DefaultModel()), photos(3, 96)
    x_adv = Korhonen(eps=EPS, steps=5)(model, x, generator=torch.Generator().manual_seed(0))
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert float(linf(x_adv, x).max()) <= EPS + 1e-6
    assert float(score_gain(model, x, x_adv).mean()) > 0.5  # points on the 0..100 scale


@pytest.mark.shared
def test_raises_the_real_cnniqa_score(cnniqa_weights):
    model, x = frozen(CNNIQA(weights=cnniqa_weights)), photos(3, 96)
    x_adv = Korhonen(eps=EPS, steps=5)(model, x, generator=torch.Generator().manual_seed(0))
    assert float(linf(x_adv, x).max()) <= EPS + 1e-6
    assert float(score_gain(model, x, x_adv).mean()) > 0.5  # DMOS points, lower is better
