"""KADID-10k (benchmark/datasets/kadid.py) on a fixture in the official layout: splits by reference image,
and a bad score row named by file and line."""
from __future__ import annotations

import csv

import pytest

from benchmark.datasets.kadid import KADID10k
from benchmark.errors import DataError

from helpers.images import random_image_file


def test_kadid_splits_by_reference(tmp_path):
    with (tmp_path / "dmos.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dist_img", "ref_img", "dmos", "var"])
        for r in range(5):
            for d in range(4):
                name = f"I{r + 1:02d}_{d + 1:02d}_01.png"
                random_image_file(tmp_path / "images" / name, r * 10 + d)
                w.writerow([name, f"I{r + 1:02d}.png", 1 + d, 0.1])
    tr, te = KADID10k(root=tmp_path, split="train"), KADID10k(root=tmp_path, split="test")
    refs = lambda ds: {i[:3] for i in ds.ids()}  # noqa: E731
    assert len(tr) == 16 and len(te) == 4 and not refs(tr) & refs(te)
    assert KADID10k(root=tmp_path).load("I02_03_01.png").mos == 3.0


def test_bad_score_row_names_file_and_line(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "dmos.csv").write_text("dist_img,ref_img,dmos,var\nI01_01_01.png,I01.png,high,0.1\n")
    with pytest.raises(DataError, match=r"dmos.csv, line 2"):
        KADID10k(root=tmp_path)
