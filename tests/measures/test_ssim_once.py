"""pair_quality computes SSIM once per image pair: MS-SSIM's first scale is SSIM, and its value is reused.

The columns must be bit-identical to what the code gave when SSIM was computed alone and again inside
MS-SSIM: ``old_pair_ssim`` below is a copy of that code (``ssim(dist, ref)`` then ``ms_ssim(dist, ref)``,
each from the rounded Y channel). ``tests/measures/test_quality_fp32.py`` holds both to pyiqa's float64 values.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from benchmark import quality


def old_ssim(dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """quality.ssim as it was (unchanged by the reuse)."""
    return quality._ssim_cs(quality.luma255(dist), quality.luma255(ref))[0]


def old_ms_ssim(dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """quality.ms_ssim before SSIM was reused: five scales computed from scratch."""
    x, y = quality.luma255(dist), quality.luma255(ref)
    mcs = []
    for _ in quality.MS_SSIM_WEIGHTS:
        ssim_val, cs = quality._ssim_cs(x, y)
        mcs.append(cs)
        padding = (x.shape[2] % 2, x.shape[3] % 2)
        x, y = F.avg_pool2d(x, 2, padding=padding), F.avg_pool2d(y, 2, padding=padding)
    w = torch.tensor(quality.MS_SSIM_WEIGHTS, dtype=torch.float32).double()
    return torch.prod(torch.stack(mcs[:-1]) ** w[:-1, None], dim=0) * ssim_val ** w[-1]


def pairs(shape, noise, seed):
    g = torch.Generator().manual_seed(seed)
    ref = F.avg_pool2d(torch.rand(shape, generator=g), 3, stride=1, padding=1, count_include_pad=False)
    return (ref + noise * torch.randn(shape, generator=g)).clamp(0, 1), ref


@pytest.mark.parametrize("shape,noise", [((2, 3, 176, 176), 0.05), ((1, 3, 181, 197), 0.2),
                                         ((1, 1, 200, 177), 0.4), ((2, 3, 64, 80), 0.1)])
def test_columns_bit_identical_to_the_two_pass_code(shape, noise):
    dist, ref = pairs(shape, noise, seed=sum(shape))
    q = quality.pair_quality(dist, ref)
    assert torch.equal(q["ssim"], old_ssim(dist, ref))
    assert torch.equal(quality.ssim(dist, ref), old_ssim(dist, ref))
    if min(shape[-2:]) >= quality.MS_SSIM_MIN_SIDE:
        want = old_ms_ssim(dist, ref)
        assert torch.equal(q["ms_ssim"], want)
        assert torch.equal(quality.ms_ssim(dist, ref), want)
        both = quality.ssim_ms_ssim(dist, ref)
        assert torch.equal(both[0], old_ssim(dist, ref)) and torch.equal(both[1], want)
        assert 0.2 < float(want.min()) <= float(want.max()) < 1  # a real MS-SSIM, not a degenerate one
    else:
        assert all(math.isnan(v) for v in q["ms_ssim"].tolist())


@pytest.mark.parametrize("side,scales", [(176, 5), (96, 1)])
def test_ssim_window_pass_counted_once_per_scale(monkeypatch, side, scales):
    calls = []
    real = quality._ssim_cs

    def counted(x, y):
        calls.append(tuple(x.shape[-2:]))
        return real(x, y)

    monkeypatch.setattr(quality, "_ssim_cs", counted)
    dist, ref = pairs((2, 3, side, side), 0.1, seed=side)
    quality.pair_quality(dist, ref)
    assert len(calls) == scales  # was 6 (SSIM + five MS-SSIM scales) at 176 px
    assert calls[0] == (side, side)
