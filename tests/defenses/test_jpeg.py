"""The jpeg defense (benchmark/defenses/jpeg.py): the real codec, not differentiable, and its BPDA surrogate,
differentiable JPEG by default (close to the codec), the identity on request."""
from __future__ import annotations

import torch

from benchmark.defenses.jpeg import JPEG
from benchmark.registry import DEFENSES, load_builtin_plugins

from helpers.images import batch


def test_jpeg_is_the_real_codec_and_not_differentiable():
    x = batch(1)
    y = JPEG(10)(x)
    assert JPEG.differentiable is False
    assert 0 < (y - x).abs().mean() < 0.1
    assert torch.allclose(y * 255, (y * 255).round(), atol=1e-4)  # 8-bit output of a decoder
    assert torch.equal(JPEG(10, surrogate="identity").surrogate(x), x)   # BPDA surrogate on request: identity


def test_jpeg_surrogate_is_differentiable_jpeg():
    load_builtin_plugins()
    d = DEFENSES.get("jpeg")(quality=50)
    x = batch(1)
    s = d.surrogate(x)
    assert not torch.equal(s, x) and (s - d(x)).abs().mean() < 0.02   # close to the real codec
