"""TID2013 (benchmark/datasets/tid2013.py) on a fixture in the official layout: names of either case, and a
bad line of mos_with_names.txt named."""
from __future__ import annotations

import pytest

from benchmark.datasets.tid2013 import TID2013
from benchmark.errors import DataError

from helpers.images import random_image_file


def test_tid2013(tmp_path):
    lines = []
    for r in (1, 2):
        for d in (1, 2):
            name = f"i{r:02d}_{d:02d}_1.bmp" if r == 1 else f"I{r:02d}_{d:02d}_1.BMP"
            random_image_file(tmp_path / "distorted_images" / name, r + d)
            lines.append(f"{4.5 + d} {name}")
    (tmp_path / "mos_with_names.txt").write_text("\n".join(lines) + "\n")
    ds = TID2013(root=tmp_path)
    assert len(ds) == 4 and ds.load("I02_02_1.BMP").mos == 6.5
    (tmp_path / "mos_with_names.txt").write_text("oops\n")
    with pytest.raises(DataError, match="mos_with_names.txt, line 1"):
        TID2013(root=tmp_path)
