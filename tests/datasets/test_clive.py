"""LIVE In the Wild (benchmark/datasets/clive.py) from the release's .mat files: the seven training images
left out unless asked for."""
from __future__ import annotations

import numpy as np
from scipy.io import savemat

from benchmark.datasets.clive import CLIVE

from helpers.images import random_image_file


def test_clive_mat_files(tmp_path):
    names = [f"{i}.bmp" for i in range(10)]
    for i, n in enumerate(names):
        random_image_file(tmp_path / "Images" / n, i)
    (tmp_path / "Data").mkdir()
    cell = np.empty((len(names), 1), dtype=object)
    for i, n in enumerate(names):
        cell[i, 0] = np.array([n])
    savemat(tmp_path / "Data" / "AllImages_release.mat", {"AllImages_release": cell})
    savemat(tmp_path / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.arange(10.0)[None] * 10})
    ds = CLIVE(root=tmp_path)
    assert ds.ids() == names[7:] and ds.load("8.bmp").mos == 80.0
    assert len(CLIVE(root=tmp_path, include_training_images=True)) == 10
