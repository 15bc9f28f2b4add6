"""PGD (Madry et al., ICLR 2018) and I-FGSM in score space: the L∞ budget spent exactly, the L2 budget kept, a
gain above FGSM's and random noise's on the default model, the direction followed, seeds reproduced, and the
real CNNIQA's DMOS lowered on every image."""
from __future__ import annotations

import pytest
import torch
from attack_helpers import frozen, linf, photos, score_gain

from benchmark.attacks.fgsm import FGSM
from benchmark.attacks.pgd import IFGSM, PGD
from benchmark.metrics.cnniqa import CNNIQA
from benchmark.metrics.default_model import DefaultModel

EPS = 4 / 255


def l2(a, b):
    return (a - b).flatten(1).norm(dim=1)


@pytest.mark.parametrize("attack", [PGD(eps=EPS, steps=3), PGD(eps=2 / 255, steps=2, restarts=2)],
                         ids=["pgd", "pgd-restarts"])
def test_linf_budget_is_spent_exactly(attack):
    model, x = frozen(DefaultModel()), photos(4, 96)
    x_adv = attack(model, x, generator=torch.Generator().manual_seed(0))
    delta = float((x_adv - x).abs().amax())
    assert attack.eps - 1e-6 <= delta <= attack.eps + 1e-6  # the budget is used; float32 rounding of x ± eps only
    assert x_adv.min() >= 0 and x_adv.max() <= 1


GAINS = [("pgd-linf", PGD(eps=EPS, steps=5), linf, EPS), ("pgd-l2", PGD(eps=1.0, steps=5, norm="l2"), l2, 1.0),
         ("ifgsm", IFGSM(eps=EPS, steps=5), linf, EPS)]


@pytest.mark.parametrize("name,attack,dist,budget", GAINS, ids=[g[0] for g in GAINS])
def test_raises_the_default_models_score_within_the_budget(name, attack, dist, budget):
    model, x = frozen(DefaultModel()), photos(3, 96)
    x_adv = attack(model, x, generator=torch.Generator().manual_seed(0))
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert float(dist(x_adv, x).max()) <= budget * (1 + 1e-5) + 1e-6
    assert float(score_gain(model, x, x_adv).mean()) > 0.5  # points on the 0..100 scale


@pytest.mark.shared
@pytest.mark.parametrize("name,attack,dist,budget", GAINS, ids=[g[0] for g in GAINS])
def test_raises_the_real_cnniqa_score_within_the_budget(name, attack, dist, budget, cnniqa_weights):
    model, x = frozen(CNNIQA(weights=cnniqa_weights)), photos(3, 96)
    x_adv = attack(model, x, generator=torch.Generator().manual_seed(0))
    assert float(dist(x_adv, x).max()) <= budget * (1 + 1e-5) + 1e-6
    assert float(score_gain(model, x, x_adv).mean()) > 0.5  # DMOS points, lower is better


def test_pgd_beats_fgsm_beats_noise_on_the_default_model():
    model, x = frozen(DefaultModel()), photos(4, 96)
    g_pgd = score_gain(model, x, PGD(eps=EPS, steps=10)(model, x, generator=torch.Generator().manual_seed(0))).mean()
    g_fgsm = score_gain(model, x, FGSM(eps=EPS)(model, x)).mean()
    noise = (x + EPS * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)).sign()).clamp(0, 1)
    g_noise = score_gain(model, x, noise).mean()
    assert g_pgd > g_fgsm > g_noise
    assert g_pgd > 1.0  # points on the 0..100 scale


@pytest.mark.shared
def test_pgd_lowers_the_real_cnniqa_dmos_of_every_image(cnniqa_weights):
    model, x = frozen(CNNIQA(weights=cnniqa_weights)), photos(4, 96)
    g = score_gain(model, x, PGD(eps=EPS, steps=10)(model, x, generator=torch.Generator().manual_seed(0)))
    assert (g > 0).all()            # every image judged better (lower DMOS)
    assert g.mean() > 5.0           # by several DMOS points


def test_decrease_direction_lowers_quality():
    model, x = frozen(DefaultModel()), photos(2, 96)
    x_adv = PGD(eps=EPS, steps=5, direction="decrease")(model, x, generator=torch.Generator().manual_seed(0))
    assert (score_gain(model, x, x_adv) < 0).all()


def test_pgd_is_deterministic_under_a_seed():
    model, x = frozen(DefaultModel()), photos(2, 96)
    a = PGD(eps=EPS, steps=2)(model, x, generator=torch.Generator().manual_seed(3))
    b = PGD(eps=EPS, steps=2)(model, x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
