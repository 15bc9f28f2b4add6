"""The torchattacks adapter: torchattacks' PGD on the two-logit wrapper takes the same steps as the native PGD,
from the clean image and from the same random start."""
from __future__ import annotations

import importlib.util

import pytest
import torch
from attack_helpers import frozen, photos

from benchmark.attacks.pgd import PGD
from benchmark.metrics.default_model import DefaultModel

EPS = 4 / 255

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torchattacks") is None,
                                reason="torchattacks not installed (pip install --no-deps torchattacks)")


def test_torchattacks_pgd_agrees_with_native_pgd():
    from benchmark.attacks.torchattacks_adapter import TorchAttacks

    model, x = frozen(DefaultModel()), photos(2, 96)
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
