"""The torch CNNIQA against an independent re-implementation of lidq92/CNNIQA's pre-processing
(PIL convert('L'), PIL crops, scipy convolve2d with boundary='symm'), as SOURCE.md describes it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.signal import convolve2d

from benchmark.metrics.cnniqa import CNNIQA, CNNIQAModel

from conftest import SHARED, need_shared, tiny_images


def reference_patches(arr: np.ndarray) -> np.ndarray:
    im = Image.fromarray(arr).convert("L")
    w, h = im.size
    out = []
    for i in range(0, h - 32, 32):
        for j in range(0, w - 32, 32):
            p = np.asarray(im.crop((j, i, j + 32, i + 32)), dtype=np.float64) / 255.0
            k = np.ones((3, 3)) / 9
            mu = convolve2d(p, k, boundary="symm", mode="same")
            sm = convolve2d(p * p, k, boundary="symm", mode="same")
            out.append((p - mu) / (np.sqrt(np.maximum(sm - mu * mu, 0)) + 1))
    return np.stack(out)[:, None]


def reference_score(model: CNNIQAModel, arr: np.ndarray) -> float:
    with torch.no_grad():
        return float(model.net(torch.from_numpy(reference_patches(arr)).float()).mean())


def as_tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float()[None] / 255


def test_patch_grid_matches_original():
    arr = np.zeros((384, 512, 3), np.uint8)
    assert len(reference_patches(arr)) == 165  # 15 × 11 as in SOURCE.md


def test_random_weights_match_reference_pipeline():
    torch.manual_seed(0)
    model = CNNIQAModel(in_channels=1).eval()
    for _, arr, _ in tiny_images(4, size=100):
        with torch.no_grad():
            ours = float(model(as_tensor(arr)))
        assert ours == pytest.approx(reference_score(model, arr), abs=1e-4)


def test_gradients_flow_to_the_input():
    torch.manual_seed(0)
    model = CNNIQAModel(in_channels=1).eval()
    x = as_tensor(tiny_images(1)[0][1]).requires_grad_(True)
    model(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.shared
def test_real_weights_on_tid2013(cnniqa_weights):
    model = CNNIQA(weights=cnniqa_weights)
    assert model.lower_better and model.score_range == (0.0, 100.0)
    root = need_shared(SHARED / "data" / "tid2013-calibration")
    refs, dists = [], []
    for name in ["I03.bmp", "I04.bmp", "I06.bmp", "I08.bmp", "I19.bmp"]:
        for folder, acc in (("ref", refs), ("dist", dists)):
            arr = np.asarray(Image.open(root / folder / name).convert("RGB"))
            with torch.no_grad():
                ours = float(model(as_tensor(arr)))
            assert ours == pytest.approx(reference_score(model, arr), abs=1e-3)
            acc.append(ours)
    # DMOS-like: the distorted versions score worse (higher) on average, and the two heavily distorted
    # ones (I03, I19: official VIF 0.017 and 0.17, SSIM 0.70 and 0.65) worse than the three mild ones.
    assert np.mean(dists) > np.mean(refs)
    assert min(dists[0], dists[4]) > max(dists[1:4])


def test_missing_weights_error_names_the_file(tmp_path):
    from benchmark.errors import MissingWeightsError

    with pytest.raises(MissingWeightsError, match=str(tmp_path / "nope.pt")):
        CNNIQA(weights=tmp_path / "nope.pt")
