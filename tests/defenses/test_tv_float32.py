"""The tv defense denoises in float32 and stays within float32 rounding of scikit-image's float64 result.

scikit-image's ``denoise_tv_chambolle`` keeps float32 inputs in float32 (it promotes only float16); the
defense used to cast to float64 first. On the test photographs the two differ by at most one float32 step
near 1 (1.2e-7) per pixel, and the default model's scores of the purified images by at most 2e-5 on 0–100.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import restoration
from skimage.restoration import denoise_tv_chambolle

from benchmark.defenses.classic_denoise import TotalVariation
from benchmark.metrics.default_model import DefaultModel
from benchmark.photos import TEST_PHOTOS, load_photo, square


def float64_reference(x: torch.Tensor, weight: float) -> torch.Tensor:
    """The defense as it was: scikit-image in float64, clipped to [0, 1], then float32."""
    out = [np.clip(denoise_tv_chambolle(img.permute(1, 2, 0).double().numpy(), weight=weight, channel_axis=-1),
                   0, 1) for img in x]
    return torch.stack([torch.from_numpy(o).permute(2, 0, 1).float() for o in out])


@pytest.mark.parametrize("size,weight", [(64, 0.05), (96, 0.05), (80, 0.2)])
def test_within_float32_rounding_of_float64(size, weight):
    x = torch.stack([square(load_photo(p), size) for p in TEST_PHOTOS])
    x = (x + 4 / 255 * torch.randn(x.shape, generator=torch.Generator().manual_seed(size)).sign()).clamp(0, 1)
    got, want = TotalVariation(weight)(x), float64_reference(x, weight)
    assert got.dtype == torch.float32 and got.shape == x.shape
    assert float((got - want).abs().max()) <= 2.4e-7  # two float32 steps near 1
    assert float((got - x).abs().mean()) > 1e-3  # it does denoise: far more than the rounding
    with torch.no_grad():
        model = DefaultModel().eval()
        assert float((model(got) - model(want)).abs().max()) < 1e-4


def test_scikit_image_runs_in_float32(monkeypatch):
    seen = []
    real = restoration.denoise_tv_chambolle

    def spy(image, **kw):
        seen.append(image.dtype)
        out = real(image, **kw)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(restoration, "denoise_tv_chambolle", spy)
    TotalVariation()(torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert seen == [np.float32] * 4
