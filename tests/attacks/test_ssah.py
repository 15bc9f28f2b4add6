"""SSAH for IQA (Guardians port): its low-frequency band equals the Haar DWT's, gains both ways on the default
model, and the L∞ budget holds after 8-bit quantisation."""
from __future__ import annotations

import pytest
import torch
from attack_helpers import frozen, photos

from benchmark.attacks.ssah import SSAH, low_frequency
from benchmark.metrics.default_model import DefaultModel


def test_low_frequency_is_the_haar_ll_band_inverse_transformed():
    pywt = pytest.importorskip("pywt")
    x = torch.rand(1, 3, 10, 12, generator=torch.Generator().manual_seed(0))
    for c in range(3):
        ll, _ = pywt.dwt2(x[0, c].double().numpy(), "haar")
        ref = pywt.idwt2((ll, (None, None, None)), "haar")
        assert torch.allclose(low_frequency(x)[0, c].double(), torch.from_numpy(ref), atol=1e-6)
    odd = torch.rand(1, 1, 5, 7)
    lf = low_frequency(odd)
    assert lf.shape == odd.shape
    assert float(lf[0, 0, 4, 6]) == pytest.approx(float(odd[0, 0, 4, 6]) / 4)  # zero-padded corner block


def test_defaults_raise_and_lower_the_score_within_the_budget_after_quantisation():
    model = frozen(DefaultModel())
    x = photos(3, 64)
    with torch.no_grad():
        s = model(x)
    for direction, sign in (("increase", 1), ("decrease", -1)):
        attack = SSAH(direction=direction)
        x_adv = attack(model, x, output_8bit=True)
        assert torch.equal(x_adv, torch.round(x_adv * 255) / 255)
        assert float((x_adv - x).abs().amax()) <= 10 / 255 + 1e-6
        with torch.no_grad():
            gain = sign * (model(x_adv) - s)
        assert bool((gain > 2).all()), (direction, gain)
    # a binding bound is kept too
    tight = SSAH(eps=1 / 255, lr=0.01)
    assert float((tight(model, x, output_8bit=True) - x).abs().amax()) <= 1 / 255 + 1e-6


def test_the_low_frequency_term_keeps_the_low_band_closer():
    model = frozen(DefaultModel())
    x = photos(2, 64)
    free = SSAH(lambda_lf=0.0, lr=0.005)(model, x)
    held = SSAH(lambda_lf=10.0, lr=0.005)(model, x)
    lf = low_frequency(x)
    assert float((low_frequency(held) - lf).abs().mean()) < float((low_frequency(free) - lf).abs().mean())
