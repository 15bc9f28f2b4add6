"""SPAQ (Fang, Zhu, Zeng, Ma, Liu, "Perceptual Quality Assessment of Smartphone Photography", CVPR 2020):
11 125 smartphone photographs, MOS 0–100, higher is better.

Layout: ``root/Annotations/MOS and Image attribute scores.xlsx`` (columns ``Image name``, ``MOS``) and
``root/TestImage/``. Reading the spreadsheet needs ``openpyxl`` (``pip install openpyxl``). SPAQ images
are large (often 4000×3000): the usual protocol resizes the short side to 512 (``size_policy``).
"""
from __future__ import annotations

from ..errors import DataError
from ..registry import DATASETS
from .table import Entry, TableDataset, read_excel


@DATASETS.register("spaq")
class SPAQ(TableDataset):
    """SPAQ (Fang et al., CVPR 2020): Annotations/*.xlsx + TestImage/; MOS 0–100, higher is better."""

    mos_lower_better = False
    mos_range = (0.0, 100.0)

    def entries(self) -> list[Entry]:
        table = self.need("Annotations/MOS and Image attribute scores.xlsx")
        folder = self.need("TestImage")
        df = read_excel(table)
        for col in ("Image name", "MOS"):
            if col not in df:
                raise DataError(f"{table}: no column '{col}' (columns: {list(df.columns)})")
        return [Entry(str(n), folder / str(n), float(m), str(n)) for n, m in zip(df["Image name"], df["MOS"])]
