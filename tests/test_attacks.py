from __future__ import annotations

import pytest
import torch

from benchmark.attacks.fgsm import FGSM
from benchmark.attacks.pgd import PGD
from benchmark.metrics.cnniqa import CNNIQA
from benchmark.metrics.default_model import DefaultModel

from conftest import tiny_images


def batch(n=4, size=96) -> torch.Tensor:
    return torch.stack([torch.from_numpy(a).permute(2, 0, 1).float() / 255 for _, a, _ in tiny_images(n, size)])


def frozen(model):
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


@pytest.mark.parametrize("attack", [FGSM(eps=4 / 255), PGD(eps=4 / 255, steps=3), PGD(eps=2 / 255, steps=2, restarts=2)])
def test_linf_budget_is_respected_exactly(attack):
    model = frozen(DefaultModel())
    x = batch()
    x_adv = attack(model, x, generator=torch.Generator().manual_seed(0))
    delta = (x_adv - x).abs().amax()
    assert float(delta) <= attack.eps + 1e-6          # float32 rounding of x ± eps only
    assert float(delta) >= attack.eps - 1e-6          # and the budget is used
    assert x_adv.min() >= 0 and x_adv.max() <= 1


def gains(model, x, attack, seed=0):
    with torch.no_grad():
        s = model(x)
        s_adv = model(attack(model, x, generator=torch.Generator().manual_seed(seed)))
    return model.sign * (s_adv - s)


def test_pgd_beats_fgsm_beats_noise_on_default_model():
    model = frozen(DefaultModel())
    x = batch()
    eps = 4 / 255
    g_pgd = gains(model, x, PGD(eps=eps, steps=10)).mean()
    g_fgsm = gains(model, x, FGSM(eps=eps)).mean()
    noise = (x + eps * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)).sign()).clamp(0, 1)
    with torch.no_grad():
        g_noise = (model.sign * (model(noise) - model(x))).mean()
    assert g_pgd > g_fgsm > g_noise
    assert g_pgd > 1.0  # points on the 0..100 scale


@pytest.mark.shared
def test_pgd_improves_the_real_cnniqa_score(cnniqa_weights):
    model = frozen(CNNIQA(weights=cnniqa_weights))
    x = batch()
    g = gains(model, x, PGD(eps=4 / 255, steps=10))
    assert (g > 0).all()            # every image judged better (lower DMOS)
    assert g.mean() > 5.0           # by several DMOS points


def test_decrease_direction_lowers_quality():
    model = frozen(DefaultModel())
    x = batch(2)
    g = gains(model, x, PGD(eps=4 / 255, steps=5, direction="decrease"))
    assert (g < 0).all()


def test_pgd_is_deterministic_under_a_seed():
    model = frozen(DefaultModel())
    x = batch(2)
    a = PGD(eps=4 / 255, steps=2)(model, x, generator=torch.Generator().manual_seed(3))
    b = PGD(eps=4 / 255, steps=2)(model, x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
