"""A folder of images (benchmark/datasets/folder.py): without a score table, a listed file that is missing,
and one unreadable image that a run skips, naming it, without losing the others."""
from __future__ import annotations

import pytest

from benchmark.datasets.folder import ImageFolder
from benchmark.errors import DataError


def test_folder_without_csv_and_missing_listed_file(tmp_path, image_folder):
    assert len(ImageFolder(root=image_folder)) == 6
    (image_folder / "img02.png").unlink()
    with pytest.raises(DataError, match="img02.png"):
        ImageFolder(root=image_folder, mos_csv=image_folder / "mos.csv")


def test_one_bad_image_does_not_lose_the_run(tmp_path, image_folder):
    from benchmark.cli import main

    from conftest import DEFAULT_FGSM_IDENTITY, folder_config

    (image_folder / "img01.png").write_bytes(b"corrupt")
    cfg = folder_config(tmp_path, "bad", image_folder, DEFAULT_FGSM_IDENTITY, mos=True)

    assert main(["run", str(cfg), "--no-progress"]) == 0
    import json
    import pandas as pd

    run = tmp_path / "runs" / "bad"
    assert len(pd.read_csv(run / "records.csv")) == 5
    assert "img01.png" in json.loads((run / "skipped.json").read_text())[0]["what"]
    assert "img01.png" in (run / "report.html").read_text()
