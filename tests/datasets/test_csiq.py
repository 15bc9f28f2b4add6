"""CSIQ (benchmark/datasets/csiq.py) from the release's spreadsheet and folders: DMOS, splits by reference,
a missing image named with the pattern it was looked for under."""
from __future__ import annotations

import pytest

from benchmark.errors import DataError

from helpers.images import random_image_file


def test_csiq_spreadsheet_and_folders(tmp_path):
    pytest.importorskip("openpyxl")
    import pandas as pd

    from benchmark.datasets.csiq import CSIQ

    rows = []
    tags = {1: ("awgn", "AWGN"), 2: ("jpeg", "JPEG"), 5: ("blur", "BLUR"), 6: ("contrast", "contrast")}
    for r, image in enumerate(["1600", "aerial_city", "boston"]):
        random_image_file(tmp_path / "src_imgs" / f"{image}.png", r)
        for idx, (folder, tag) in tags.items():
            for lev in (1, 2):
                random_image_file(tmp_path / "dst_imgs" / folder / f"{image}.{tag}.{lev}.png", r * 10 + idx + lev)
                rows.append({"image": int(image) if image.isdigit() else image, "dst_idx": idx,
                             "dst_type": folder, "dst_lev": lev, "dmos_std": 0.05, "dmos": 0.1 * lev + 0.01 * idx})
    with pd.ExcelWriter(tmp_path / "csiq.DMOS.xlsx") as xw:
        pd.DataFrame({"note": ["readme sheet"]}).to_excel(xw, sheet_name="readme", index=False)
        pd.DataFrame(rows).to_excel(xw, sheet_name="all_by_image", index=False)
    ds = CSIQ(root=tmp_path)
    assert len(ds) == 24 and ds.mos_lower_better
    s = ds.load("awgn/1600.AWGN.2.png")
    assert s.mos == pytest.approx(0.21) and s.image.shape == (40, 48, 3)
    tr, te = CSIQ(root=tmp_path, split="train"), CSIQ(root=tmp_path, split="test")
    refs = lambda d: {d._entries[i].group for i in d.ids()}  # noqa: E731
    assert not refs(tr) & refs(te) and len(tr) + len(te) == 24
    (tmp_path / "dst_imgs" / "blur" / "boston.BLUR.1.png").unlink()
    with pytest.raises(DataError, match=r"boston.<type>.1.png"):
        CSIQ(root=tmp_path)
