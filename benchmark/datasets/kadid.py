"""KADID-10k (Lin, Hosu, Saupe, "KADID-10k: A Large-scale Artificially Distorted IQA Database", QoMEX
2019): 81 references × 25 distortions × 5 levels. Its ``dmos`` column is a mean opinion score on 1–5
where **higher is better** (despite the name).

Layout: ``root/dmos.csv`` (columns ``dist_img``, ``ref_img``, ``dmos``, ``var``) and ``root/images/``.
Splits are disjoint by reference image.
"""
from __future__ import annotations

import csv

from ..errors import DataError
from ..registry import DATASETS
from .table import Entry, TableDataset


@DATASETS.register("kadid10k")
class KADID10k(TableDataset):
    """KADID-10k (Lin et al., QoMEX 2019): dmos.csv + images/; scores 1–5, higher is better; split by reference."""

    mos_lower_better = False
    mos_range = (1.0, 5.0)

    def entries(self) -> list[Entry]:
        table, folder = self.need("dmos.csv"), self.need("images")
        out = []
        with table.open(newline="", encoding="utf-8-sig") as fh:
            for line, row in enumerate(csv.DictReader(fh), start=2):
                try:
                    out.append(Entry(row["dist_img"], folder / row["dist_img"], float(row["dmos"]), row["ref_img"]))
                except (KeyError, ValueError) as exc:
                    raise DataError(f"{table}, line {line}: cannot read dist_img/ref_img/dmos ({exc})") from None
        return out
