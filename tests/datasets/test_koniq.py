"""KonIQ-10k (benchmark/datasets/koniq.py) on a fixture in the official layout: MOS, a MOS-stratified
subset, a deterministic train/test split, the resolution folders."""
from __future__ import annotations

import csv

import pytest

from benchmark.datasets.koniq import KonIQ10k
from benchmark.errors import ConfigError

from helpers.images import random_image_file


def test_koniq(tmp_path):
    with (tmp_path / "koniq10k_scores_and_distributions.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "MOS_zscore"])
        for i in range(20):
            name = f"{1000 + i}.jpg"
            random_image_file(tmp_path / "512x384" / name, i)
            w.writerow([name, 1, 2, 3, 4, 5, 15, 1 + i * 0.2, 0.5, 50])
    ds = KonIQ10k(root=tmp_path)
    assert len(ds) == 20 and ds.mos_range == (1.0, 5.0)
    s = ds.load("1005.jpg")
    assert s.mos == pytest.approx(2.0) and s.image.shape == (40, 48, 3)
    sub = KonIQ10k(root=tmp_path, limit=5)                   # MOS-stratified: spread over the range
    moss = sorted(sub.load(i).mos for i in sub.ids())
    assert len(moss) == 5 and moss[0] < 2.0 and moss[-1] > 4.0
    tr, te = KonIQ10k(root=tmp_path, split="train"), KonIQ10k(root=tmp_path, split="test")
    assert not set(tr.ids()) & set(te.ids()) and len(tr) + len(te) == 20 and len(tr) == 16
    assert KonIQ10k(root=tmp_path, split="train").ids() == tr.ids()   # deterministic
    with pytest.raises(ConfigError, match="1024x768"):
        KonIQ10k(root=tmp_path, resolution="1024x768")
