"""The score-space attack suite: budgets, gains on real models, adaptive EOT/BPDA, UAP transfer."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from benchmark.attacks.adaptive import DefendedMetric
from benchmark.attacks.fgsm import FGSM
from benchmark.attacks.korhonen import Korhonen
from benchmark.attacks.madc import MADC
from benchmark.attacks.mifgsm import MIFGSM
from benchmark.attacks.pgd import IFGSM, PGD
from benchmark.attacks.square import Square
from benchmark.attacks.uap import UAP
from benchmark.defenses.flip import Flip
from benchmark.defenses.jpeg import JPEG
from benchmark.defenses.random_crop import RandomCrop
from benchmark.metrics.cnniqa import CNNIQA
from benchmark.metrics.default_model import DefaultModel

from test_attacks import batch, frozen

EPS = 4 / 255


def linf(a, b):
    return (a - b).flatten(1).abs().amax(1)


def rmse(a, b):
    return ((a - b) ** 2).flatten(1).mean(1).sqrt()


ATTACKS = [
    ("fgsm", FGSM(eps=EPS), linf, EPS),
    ("pgd-linf", PGD(eps=EPS, steps=5), linf, EPS),
    ("pgd-l2", PGD(eps=1.0, steps=5, norm="l2"), lambda a, b: (a - b).flatten(1).norm(dim=1), 1.0),
    ("ifgsm", IFGSM(eps=EPS, steps=5), linf, EPS),
    ("mifgsm", MIFGSM(eps=EPS, steps=5), linf, EPS),
    ("korhonen", Korhonen(eps=EPS, steps=5), linf, EPS),
    ("madc", MADC(eps=2 / 255, steps=5), rmse, 2 / 255),
    ("square", Square(eps=EPS, queries=100), linf, EPS),
]


def score_gain(model, x, x_adv):
    with torch.no_grad():
        return model.sign * (model(x_adv) - model(x))


def assert_gain(name, gain):
    # the black-box search gains less in 100 queries, but it only accepts improvements
    assert float(gain.mean()) > (0.1 if name == "square" else 0.5), name
    if name == "square":
        assert (gain > 0).all()


@pytest.mark.parametrize("name,attack,dist,budget", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_budget_and_gain_on_default_model(name, attack, dist, budget):
    model = frozen(DefaultModel())
    x = batch(3)
    x_adv = attack(model, x, generator=torch.Generator().manual_seed(0))
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert float(dist(x_adv, x).max()) <= budget * (1 + 1e-5) + 1e-6
    assert_gain(name, score_gain(model, x, x_adv))  # points on the 0..100 scale


@pytest.mark.shared
@pytest.mark.parametrize("name,attack,dist,budget", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_gain_on_real_cnniqa(name, attack, dist, budget, cnniqa_weights):
    model = frozen(CNNIQA(weights=cnniqa_weights))
    x = batch(3)
    x_adv = attack(model, x, generator=torch.Generator().manual_seed(0))
    assert float(dist(x_adv, x).max()) <= budget * (1 + 1e-5) + 1e-6
    assert_gain(name, score_gain(model, x, x_adv))  # DMOS points, lower is better


def robust_gain(model, defense, x, x_adv, seed=0):
    """Mean quality-direction gain through the defense, same randomness for both branches."""
    with torch.no_grad():
        s = model(defense(x, generator=torch.Generator().manual_seed(seed)))
        s_adv = model(defense(x_adv, generator=torch.Generator().manual_seed(seed)))
    return float((model.sign * (s_adv - s)).mean())


@pytest.mark.parametrize("defense", [Flip(p=0.5), RandomCrop(0.8)], ids=["random-flip", "random-crop"])
def test_eot_beats_the_non_adaptive_attack_on_stochastic_defenses(defense):
    model = frozen(DefaultModel())
    x = batch(4)
    pgd = PGD(eps=EPS, steps=10)
    plain = pgd(model, x, generator=torch.Generator().manual_seed(0))
    eot = pgd(DefendedMetric(model, defense, eot_samples=8, generator=torch.Generator().manual_seed(1)), x,
              generator=torch.Generator().manual_seed(0))
    g_plain = sum(robust_gain(model, defense, x, plain, s) for s in range(4)) / 4
    g_eot = sum(robust_gain(model, defense, x, eot, s) for s in range(4)) / 4
    assert g_eot > g_plain


def test_bpda_through_jpeg():
    model = frozen(DefaultModel())
    x = batch(4)
    jpeg = JPEG(50)
    pgd = PGD(eps=EPS, steps=10)
    plain = pgd(model, x, generator=torch.Generator().manual_seed(0))
    # the composite is not differentiable through the codec; BPDA gives a finite, non-zero gradient
    xg = x.clone().requires_grad_(True)
    DefendedMetric(model, jpeg)(xg).sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0
    adaptive = pgd(DefendedMetric(model, jpeg), x, generator=torch.Generator().manual_seed(0))
    assert robust_gain(model, jpeg, x, adaptive) > robust_gain(model, jpeg, x, plain)


def test_uap_transfers_to_held_out_images(tmp_path):
    model = frozen(DefaultModel())
    uap = UAP(eps=8 / 255, size=64, epochs=2, batch_size=16, lr=0.005)
    art = tmp_path / "uap.pt"
    delta = uap.fit(model, generator=torch.Generator().manual_seed(0), artifact=art, provenance={"t": 1},
                    progress=False)
    assert art.is_file() and art.with_suffix(".json").is_file()
    assert float(delta.abs().max()) <= 8 / 255 + 1e-7
    x = batch(4, size=96)  # held-out photographs (astronaut, coffee, rocket, chelsea at another size)
    gain = score_gain(model, x, uap(model, x)).mean()
    noise = (x + 8 / 255 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)).sign()).clamp(0, 1)
    assert gain > 0.5 and gain > score_gain(model, x, noise).mean()
    # amplitude scales the budget; a second UAP loads the stored perturbation instead of training
    half = UAP(eps=8 / 255, amplitude=0.5, size=64, epochs=2, batch_size=16, lr=0.005)
    half.fit(model, generator=torch.Generator(), artifact=art, provenance={}, progress=False)
    assert torch.equal(half.delta, delta)
    assert float(linf(half(model, x), x).max()) <= 4 / 255 + 1e-6


@pytest.mark.skipif(importlib.util.find_spec("torchattacks") is None,
                    reason="torchattacks not installed (pip install --no-deps torchattacks)")
def test_torchattacks_pgd_agrees_with_native_pgd():
    from benchmark.attacks.torchattacks_adapter import TorchAttacks

    model = frozen(DefaultModel())
    x = batch(2)
    ours = PGD(eps=EPS, steps=5, alpha=1 / 255, random_start=False)(model, x)
    theirs = TorchAttacks("PGD", {"eps": EPS, "alpha": 1 / 255, "steps": 5, "random_start": False})(model, x)
    assert torch.allclose(ours, theirs, atol=1e-6)
    torch.manual_seed(7)
    start = torch.empty_like(x).uniform_(-EPS, EPS)
    torch.manual_seed(7)
    ta = TorchAttacks("PGD", {"eps": EPS, "alpha": 1 / 255, "steps": 5, "random_start": True})
    theirs_rs = ta(model, x)
    native = PGD(eps=EPS, steps=5, alpha=1 / 255, random_start=False)
    # same random start: run native PGD from torchattacks' start point
    adv = (x + start).clamp(0, 1)
    for _ in range(5):
        grad, _ = native.gradient(model, adv)
        adv = native.project(adv + native.alpha * grad.sign(), x).detach()
    assert torch.allclose(adv, theirs_rs, atol=1e-6)
