"""SPAQ (benchmark/datasets/spaq.py) from the release's spreadsheet."""
from __future__ import annotations

import pytest

from benchmark.datasets.spaq import SPAQ

from helpers.images import random_image_file


def test_spaq_spreadsheet(tmp_path):
    pytest.importorskip("openpyxl")
    import pandas as pd

    (tmp_path / "Annotations").mkdir()
    for i in range(3):
        random_image_file(tmp_path / "TestImage" / f"{i + 1:05d}.jpg", i)
    pd.DataFrame({"Image name": [f"{i + 1:05d}.jpg" for i in range(3)], "MOS": [20.0, 50.0, 80.0],
                  "Brightness": [1, 2, 3]}).to_excel(tmp_path / "Annotations" / "MOS and Image attribute scores.xlsx",
                                                      index=False)
    ds = SPAQ(root=tmp_path)
    assert len(ds) == 3 and ds.load("00002.jpg").mos == 50.0
