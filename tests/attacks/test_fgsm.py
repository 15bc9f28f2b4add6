"""FGSM (Goodfellow et al., ICLR 2015) in score space: one signed step that spends its L∞ budget exactly and
raises the score of the default model and of the real CNNIQA."""
from __future__ import annotations

import pytest
import torch
from attack_helpers import frozen, linf, photos, score_gain

from benchmark.attacks.fgsm import FGSM
from benchmark.metrics.cnniqa import CNNIQA
from benchmark.metrics.default_model import DefaultModel

EPS = 4 / 255


def test_linf_budget_is_spent_exactly():
    model, x = frozen(DefaultModel()), photos(4, 96)
    x_adv = FGSM(eps=EPS)(model, x, generator=torch.Generator().manual_seed(0))
    delta = float((x_adv - x).abs().amax())
    assert EPS - 1e-6 <= delta <= EPS + 1e-6  # the budget is used; float32 rounding of x ± eps only
    assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_raises_the_default_models_score_within_the_budget():
    model, x = frozen(DefaultModel()), photos(3, 96)
    x_adv = FGSM(eps=EPS)(model, x, generator=torch.Generator().manual_seed(0))
    assert float(linf(x_adv, x).max()) <= EPS + 1e-6
    assert float(score_gain(model, x, x_adv).mean()) > 0.5  # points on the 0..100 scale


@pytest.mark.shared
def test_raises_the_real_cnniqa_score(cnniqa_weights):
    model, x = frozen(CNNIQA(weights=cnniqa_weights)), photos(3, 96)
    x_adv = FGSM(eps=EPS)(model, x, generator=torch.Generator().manual_seed(0))
    assert float(linf(x_adv, x).max()) <= EPS + 1e-6
    assert float(score_gain(model, x, x_adv).mean()) > 0.5  # DMOS points, lower is better
