"""The float32 PSNR / SSIM / MS-SSIM of benchmark.quality agree with pyiqa's float64 values within 1e-4.

pyiqa is the reference here and only here: the project computes these three itself (pyiqa casts SSIM and
MS-SSIM to float64, 8-120x slower on a CPU). PSNR's pyiqa reference gets float64 inputs; SSIM and MS-SSIM
get the float32 images the project always passed (pyiqa rounds their Y channel in the input's dtype,
then computes in float64).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark import quality

from conftest import SHARED, need_shared

TOL = 1e-4
DATA = SHARED / "data" / "tid2013-calibration"
IMAGES = ["I03.bmp", "I04.bmp", "I06.bmp", "I08.bmp", "I19.bmp"]
OURS = {"psnr": quality.psnr, "ssim": quality.ssim, "ms_ssim": quality.ms_ssim}


def pyiqa_scores(name: str, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    import pyiqa

    m = pyiqa.create_metric(name, as_loss=False, device=torch.device("cpu"))
    if name == "psnr":
        dist, ref = dist.double(), ref.double()
    with torch.no_grad():
        return m(dist, ref).reshape(-1).double()


def pairs(shape: tuple[int, ...], noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ref = torch.rand(shape, generator=g)
    # smooth the reference a little so SSIM is not trivially near 0
    ref = torch.nn.functional.avg_pool2d(ref, 3, stride=1, padding=1, count_include_pad=False)
    dist = (ref + noise * torch.randn(shape, generator=g)).clamp(0, 1)
    return (dist * 255).round() / 255, (ref * 255).round() / 255


@pytest.mark.parametrize("shape,noise", [((4, 3, 64, 64), 0.05), ((3, 3, 177, 181), 0.1),
                                         ((2, 3, 256, 256), 0.02), ((2, 1, 200, 190), 0.3),
                                         ((2, 3, 31, 47), 0.5)])
def test_random_images_match_pyiqa_float64(shape, noise):
    dist, ref = pairs(shape, noise, seed=sum(shape))
    for name, fn in OURS.items():
        if name == "ms_ssim" and min(shape[-2:]) < quality.MS_SSIM_MIN_SIDE:
            continue
        want, got = pyiqa_scores(name, dist, ref), fn(dist, ref)
        assert got.dtype == torch.float64 and got.shape == (shape[0],)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=TOL, err_msg=name)


def test_unrounded_inputs_and_extremes_match_pyiqa():
    g = torch.Generator().manual_seed(7)
    ref = torch.rand(3, 3, 180, 200, generator=g)
    dist = torch.stack([ref[0],                                       # identical
                        1 - ref[1],                                   # inverted: cs clipped at 0 in places
                        torch.full_like(ref[2], 0.5)])                # flat
    for name, fn in OURS.items():
        want, got = pyiqa_scores(name, dist, ref), fn(dist, ref)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=TOL, err_msg=name)
    assert quality.ssim(ref, ref).tolist() == pytest.approx([1.0] * 3, abs=1e-6)


def test_pair_quality_caps_psnr_and_leaves_small_ms_ssim_out():
    x = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    q = quality.pair_quality(x, x)
    assert q["psnr"].tolist() == [80.0, 80.0]  # the 1e-8 floor: 10·log10(1e8), under the 100 dB cap
    assert q["ssim"].tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    assert all(math.isnan(v) for v in q["ms_ssim"].tolist())
    big = torch.rand(1, 3, 176, 176, generator=torch.Generator().manual_seed(2))
    assert quality.pair_quality((big * 0.9), big)["ms_ssim"].isfinite().all()


def test_fr_scores_routes_own_metrics_and_checks_shapes():
    dist, ref = pairs((2, 3, 64, 64), 0.1, seed=3)
    assert torch.equal(quality.fr_scores("ssim", dist, ref), quality.ssim(dist, ref))
    with pytest.raises(ValueError, match="one shape"):
        quality.ssim(dist, ref[..., :60])
    with pytest.raises(ValueError, match="at least 11"):
        quality.ssim(dist[..., :10, :10], ref[..., :10, :10])


def load(folder: str) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.asarray(Image.open(DATA / folder / n).convert("RGB")).copy())
                        .permute(2, 0, 1).float() / 255 for n in IMAGES])


@pytest.mark.shared
@pytest.mark.slow
def test_tid2013_calibration_matches_pyiqa_float64():
    need_shared(DATA)
    dist, ref = load("dist"), load("ref")
    for name, fn in OURS.items():
        want, got = pyiqa_scores(name, dist, ref), fn(dist, ref)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=TOL, err_msg=name)
    # and the published official values (MATLAB), within pyiqa's own calibration tolerance
    import csv

    with (DATA / "results_official.csv").open() as fh:
        official = {row["Method"]: [float(row[i]) for i in IMAGES] for row in csv.DictReader(fh)}
    for name, fn in OURS.items():
        np.testing.assert_allclose(fn(dist, ref).numpy(), official[name], rtol=2e-2, atol=1e-3, err_msg=name)
