"""The pyiqa adapter reproduces the official values of ../shared/data/tid2013-calibration (an oracle
written by others) within pyiqa's own tolerances, and pyiqa's own values tightly."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.metrics.pyiqa_adapter import PyIQAMetric

from conftest import SHARED, need_shared

DATA = SHARED / "data" / "tid2013-calibration"
PYIQA_DEPARTS = {"nlpd"}  # metrics whose pyiqa value (calibration_summary.csv) differs from the official one
IMAGES = ["I03.bmp", "I04.bmp", "I06.bmp", "I08.bmp", "I19.bmp"]
NR = {"niqe": 6e-2, "piqe": 2e-2, "entropy": 2e-2}
FR = {"psnr": 2e-2, "ssim": 2e-2, "ms_ssim": 2e-2, "fsim": 2e-2, "vif": 2e-2, "gmsd": 2e-2, "nlpd": 2e-2,
      "vsi": 2e-2, "mad": 2e-2, "cw_ssim": 2e-2}


def table(name: str) -> dict[str, list[float]]:
    with (need_shared(DATA) / name).open() as fh:
        return {row["Method"]: [float(row[i]) for i in IMAGES] for row in csv.DictReader(fh)}


def load(folder: str) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.asarray(Image.open(DATA / folder / n).convert("RGB")).copy())
                        .permute(2, 0, 1).float() / 255 for n in IMAGES])


@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.parametrize("metric", list(NR) + list(FR))
def test_reproduces_official_values(metric):
    official, ours_ref = table("results_official.csv"), table("calibration_summary.csv")
    options = {}
    if metric == "niqe":
        options["pretrained_model_path"] = str(need_shared(SHARED / "models" / "niqe-live" / "niqe_modelparameters.mat"))
    # pyiqa leaves the ranges of nlpd and mad open; the adapter insists on one
    score_range = {"nlpd": (0.0, 1.0), "mad": (0.0, 300.0)}.get(metric)
    m = PyIQAMetric(metric, options=options, download=False, score_range=score_range)
    with torch.no_grad():
        dist = load("dist")
        got = (m(dist, load("ref")) if metric in FR else m(dist)).double().numpy()
    tol = NR.get(metric) or FR[metric]
    pyiqa_own = ours_ref.get(f"{metric}(ours)")
    if metric in PYIQA_DEPARTS:
        # pyiqa itself departs from the official implementation here (nlpd on I04/I06: 0.0139 vs 0.0195);
        # what the adapter can promise is pyiqa's value, and the official one only where pyiqa meets it
        assert not np.allclose(pyiqa_own, official[metric], rtol=tol, atol=1e-3)
        agree = np.isclose(pyiqa_own, official[metric], rtol=tol, atol=1e-3)
        np.testing.assert_allclose(got[agree], np.array(official[metric])[agree], rtol=tol, atol=1e-3)
    else:
        np.testing.assert_allclose(got, official[metric], rtol=tol, atol=1e-3)
    # pyiqa's own published values (calibration_summary "(ours)"), where listed, much more tightly
    if pyiqa_own is not None:
        np.testing.assert_allclose(got, pyiqa_own, rtol=2e-3, atol=2e-4)
