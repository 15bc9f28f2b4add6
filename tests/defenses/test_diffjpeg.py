"""The diffjpeg defense: close to the real codec, differentiable (an attack needs no BPDA), any image size."""
from __future__ import annotations

import pytest
import torch

from benchmark.attacks.adaptive import DefendedMetric
from benchmark.defenses.diffjpeg import DiffJPEG
from benchmark.images import jpeg_roundtrip
from benchmark.metrics.default_model import DefaultModel
from benchmark.photos import load_photo, square
from benchmark.quality import psnr


def photos(size: int) -> torch.Tensor:
    return torch.stack([square(load_photo(p), size) for p in ("astronaut", "coffee")])


@pytest.mark.parametrize("quality", [30, 50, 80])
def test_close_to_the_real_codec(quality):
    x = photos(96)
    real = torch.stack([jpeg_roundtrip(img, quality) for img in x])
    diff = DiffJPEG(quality)(x)
    # the differentiable codec reproduces libjpeg to ~40 dB, far closer than either is to the input
    assert (psnr(diff, real) > 35).all()
    assert (psnr(diff, real) > psnr(x, real) + 5).all()
    assert diff.shape == x.shape and diff.min() >= 0 and diff.max() <= 1


def test_gradients_flow_and_an_attack_needs_no_bpda():
    defense = DiffJPEG()
    assert defense.differentiable and not defense.stochastic
    x = photos(64).requires_grad_(True)
    metric = DefaultModel().eval()
    (g,) = torch.autograd.grad(DefendedMetric(metric, defense)(x).sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    (direct,) = torch.autograd.grad(metric(defense(x)).sum(), x)
    assert torch.equal(g, direct)   # differentiable: the adaptive attack differentiates the codec itself


def test_sides_that_are_not_multiples_of_16():
    x = photos(72)[:, :, :70, :]
    out = DiffJPEG(50)(x)
    assert out.shape == x.shape and psnr(out, x).min() > 25


def test_quality_is_checked():
    for bad in (0, 101, 50.5):
        with pytest.raises(ValueError, match="quality"):
            DiffJPEG(bad)
