"""LIVE Release 2 (benchmark/datasets/live2.py) from the release's .mat files: references left out, DMOS
(lower is better), splits by reference, a missing image named."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.io import savemat

from benchmark.errors import DataError


def test_live_release2(tmp_path):
    from benchmark.datasets.live2 import FOLDERS, LIVE2

    n = sum(c for _, c in FOLDERS)
    rng = np.random.default_rng(0)
    refs = np.empty((1, n), dtype=object)
    for i in range(n):
        refs[0, i] = np.array([f"ref{i % 29}.bmp"])
    orgs = np.zeros((1, n))
    orgs[0, ::10] = 1                                    # some entries are the references themselves
    savemat(tmp_path / "dmos_realigned.mat", {"dmos_new": rng.uniform(0, 100, (1, n)), "orgs": orgs})
    savemat(tmp_path / "refnames_all.mat", {"refnames_all": refs})
    for folder, count in FOLDERS:
        (tmp_path / folder).mkdir()
        for k in range(1, count + 1):
            (tmp_path / folder / f"img{k}.bmp").write_bytes(b"")  # listing only; loading is tested elsewhere
    ds = LIVE2(root=tmp_path)
    assert len(ds) == n - len(range(0, n, 10)) and ds.mos_lower_better
    assert "jp2k/img2.bmp" in ds.ids() and "jp2k/img1.bmp" not in ds.ids()   # index 0 is a reference
    tr, te = LIVE2(root=tmp_path, split="train"), LIVE2(root=tmp_path, split="test")
    groups = lambda d: {d._entries[i].group for i in d.ids()}  # noqa: E731
    assert not groups(tr) & groups(te)
    (tmp_path / "wn" / "img174.bmp").unlink()
    with pytest.raises(DataError, match="img174.bmp"):
        LIVE2(root=tmp_path).load("wn/img174.bmp")
