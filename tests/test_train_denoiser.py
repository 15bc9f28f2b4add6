"""Pieces of the denoiser training command: its inputs (noise, adversarial, both) and its ranking loss."""
from __future__ import annotations

import torch

from benchmark.defenses.train_denoiser import make_inputs, ranking_loss
from benchmark.metrics.default_model import DefaultModel

from test_attacks import batch, frozen


def test_inputs_noise_adversarial_and_both():
    model = frozen(DefaultModel())
    x = batch(4)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    noisy = make_inputs(x, model, "noise", 0.1, 4 / 255, gen())
    adv = make_inputs(x, model, "adversarial", 0.1, 4 / 255, gen())
    both = make_inputs(x, model, "both", 0.1, 4 / 255, gen())
    assert (noisy - x).abs().max() > 0.2                       # Gaussian noise, sigma 0.1
    assert (adv - x).abs().max() <= 4 / 255 + 1e-6             # a PGD example within its budget
    with torch.no_grad():
        assert (model(adv) > model(x)).all()
    per_image = (both - x).flatten(1).abs().amax(1)
    assert ((per_image <= 4 / 255 + 1e-6) | (per_image > 0.2)).all()


def test_ranking_loss_prefers_the_target_order():
    targets = torch.tensor([1.0, 2.0, 3.0])
    right, wrong = torch.tensor([10.0, 20.0, 30.0]), torch.tensor([30.0, 20.0, 10.0])
    assert ranking_loss(right, targets, sign=1, scale=100.0) < ranking_loss(wrong, targets, sign=1, scale=100.0)
    # a lower-is-better metric should order the other way
    assert ranking_loss(wrong, targets, sign=-1, scale=100.0) < ranking_loss(right, targets, sign=-1, scale=100.0)
    assert float(ranking_loss(torch.ones(3), torch.ones(3), 1, 1.0)) == 0.0
