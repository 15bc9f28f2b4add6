from __future__ import annotations

import pytest
import torch

from benchmark.defenses.flip import Flip
from benchmark.defenses.identity import Identity
from benchmark.defenses.jpeg import JPEG
from benchmark.defenses.median import MedianFilter
from benchmark.registry import DEFENSES, load_plugin_file

from conftest import ROOT
from test_attacks import batch


@pytest.mark.parametrize("defense", [Identity(), JPEG(50), MedianFilter(3), Flip(), Flip(p=0.5)])
def test_shape_range_and_determinism(defense):
    x = batch(3)
    a = defense(x, generator=torch.Generator().manual_seed(1))
    b = defense(x, generator=torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)


def test_jpeg_is_the_real_codec_and_not_differentiable():
    x = batch(1)
    y = JPEG(10)(x)
    assert JPEG.differentiable is False
    assert 0 < (y - x).abs().mean() < 0.1
    assert torch.allclose(y * 255, (y * 255).round(), atol=1e-4)  # 8-bit output of a decoder
    assert torch.equal(JPEG(10, surrogate="identity").surrogate(x), x)   # BPDA surrogate on request: identity


def test_median_gradient_flows():
    x = batch(1).requires_grad_(True)
    MedianFilter(3)(x).sum().backward()
    assert x.grad.abs().sum() > 0


def test_stochastic_flip_uses_the_generator():
    x = batch(4)
    outs = {tuple(bool(torch.equal(o, xi)) for o, xi in zip(Flip(p=0.5)(x, generator=torch.Generator().manual_seed(s)), x))
            for s in range(8)}
    assert len(outs) > 1 and Flip(p=0.5).stochastic and not Flip().stochastic


def test_example_plugin_file():
    load_plugin_file(ROOT / "examples" / "my_defense.py")
    cls = DEFENSES.get("pixel_deflection")
    d = cls(deflections=300, window=5)
    x = batch(2)
    a = d(x, generator=torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, d(x, generator=torch.Generator().manual_seed(0)))
    changed = (a != x).any(dim=1).flatten(1).sum(1)
    assert (changed > 0).all() and (changed <= 300).all()      # only deflected pixels move
    assert cls.stochastic and not cls.differentiable
    with pytest.raises(ValueError):
        cls(deflections=0)
