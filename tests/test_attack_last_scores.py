"""PGD exposes the metric's scores of the images it returns (``last_scores``), so nobody re-scores them."""
from __future__ import annotations

import pytest
import torch

from benchmark.attacks.fgsm import FGSM
from benchmark.attacks.pgd import IFGSM, PGD
from benchmark.metrics.default_model import DefaultModel


@pytest.fixture(scope="module")
def metric():
    m = DefaultModel().eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


@pytest.mark.parametrize("attack", [PGD(eps=4 / 255, steps=2), PGD(eps=4 / 255, steps=1, restarts=3),
                                    PGD(eps=0.5, steps=2, norm="l2"), IFGSM(steps=2)])
def test_last_scores_are_the_scores_of_the_returned_images(metric, attack):
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    calls = []
    handle = metric.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
    try:
        adv = attack(metric, x, generator=torch.Generator().manual_seed(1))
    finally:
        handle.remove()
    with torch.no_grad():
        rescored = metric(adv)
    assert attack.last_scores is not None and torch.equal(attack.last_scores, rescored)
    # steps forward+backward passes and one final forward per restart: nothing else
    assert len(calls) == attack.restarts * (attack.steps + 1)


def test_no_last_scores_when_an_image_was_never_scored_finitely(metric):
    class NaNOnFirst(torch.nn.Module):
        sign, score_scale = 1.0, 100.0

        def forward(self, x):
            s = metric(x)
            return torch.cat([torch.full_like(s[:1], float("nan")), s[1:]])

    attack = PGD(eps=4 / 255, steps=1)
    attack.last_scores = torch.zeros(2)  # stale from an earlier call: must be cleared
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    adv = attack(NaNOnFirst(), x)
    assert torch.equal(adv[0], x[0])  # never improved: returned clean, its score left to the harness
    assert attack.last_scores is None


def test_attacks_that_do_not_track_scores_expose_none(metric):
    attack = FGSM(eps=2 / 255)
    attack(metric, torch.rand(1, 3, 64, 64))
    assert attack.last_scores is None
