"""KADID-10k (Lin, Hosu, Saupe, "KADID-10k: A Large-scale Artificially Distorted IQA Database", QoMEX
2019): 81 references × 25 distortions × 5 levels. Its ``dmos`` column is a mean opinion score on 1–5
where **higher is better** (despite the name).

Layout: ``root/dmos.csv`` (columns ``dist_img``, ``ref_img``, ``dmos``, ``var``) and ``root/images/``.
Splits are disjoint by reference image.
"""
from __future__ import annotations

from ..registry import DATASETS
from .table import Entry, TableDataset, csv_entries


@DATASETS.register("kadid10k")
class KADID10k(TableDataset):
    """KADID-10k (Lin et al., QoMEX 2019): dmos.csv + images/; scores 1–5, higher is better; split by reference."""

    mos_lower_better = False
    mos_range = (1.0, 5.0)

    def entries(self) -> list[Entry]:
        return csv_entries(self.need("dmos.csv"), self.need("images"), "dist_img", "dmos", group_col="ref_img")
