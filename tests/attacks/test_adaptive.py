"""Adaptive attacks (Athalye et al., ICML 2018) through DefendedMetric: EOT beats the plain attack on random
defenses, BPDA gives a finite gradient through a JPEG codec and beats the plain attack through it."""
from __future__ import annotations

import pytest
import torch
from attack_helpers import frozen, photos

from benchmark.attacks.adaptive import DefendedMetric
from benchmark.attacks.pgd import PGD
from benchmark.defenses.flip import Flip
from benchmark.defenses.jpeg import JPEG
from benchmark.defenses.random_crop import RandomCrop
from benchmark.metrics.default_model import DefaultModel

EPS = 4 / 255


def robust_gain(model, defense, x, x_adv, seed=0):
    """Mean quality-direction gain through the defense, same randomness for both branches."""
    with torch.no_grad():
        s = model(defense(x, generator=torch.Generator().manual_seed(seed)))
        s_adv = model(defense(x_adv, generator=torch.Generator().manual_seed(seed)))
    return float((model.sign * (s_adv - s)).mean())


@pytest.mark.parametrize("defense", [Flip(p=0.5), RandomCrop(0.8)], ids=["random-flip", "random-crop"])
def test_eot_beats_the_non_adaptive_attack_on_stochastic_defenses(defense):
    model, x = frozen(DefaultModel()), photos(4, 96)
    pgd = PGD(eps=EPS, steps=10)
    plain = pgd(model, x, generator=torch.Generator().manual_seed(0))
    composite = DefendedMetric(model, defense, eot_samples=8, generator=torch.Generator().manual_seed(1))
    eot = pgd(composite, x, generator=torch.Generator().manual_seed(0))
    # the call observed f ∘ D: 10 gradient steps and one final scoring of the 4 images
    assert pgd.last_passes == {"forward": 4 * 11, "backward": 4 * 10}
    g_plain = sum(robust_gain(model, defense, x, plain, s) for s in range(4)) / 4
    g_eot = sum(robust_gain(model, defense, x, eot, s) for s in range(4)) / 4
    assert g_eot > g_plain


def test_bpda_through_jpeg():
    model, x = frozen(DefaultModel()), photos(4, 96)
    jpeg = JPEG(50)
    pgd = PGD(eps=EPS, steps=10)
    plain = pgd(model, x, generator=torch.Generator().manual_seed(0))
    # the composite is not differentiable through the codec; BPDA gives a finite, non-zero gradient
    xg = x.clone().requires_grad_(True)
    DefendedMetric(model, jpeg)(xg).sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0
    adaptive = pgd(DefendedMetric(model, jpeg), x, generator=torch.Generator().manual_seed(0))
    assert robust_gain(model, jpeg, x, adaptive) > robust_gain(model, jpeg, x, plain)
