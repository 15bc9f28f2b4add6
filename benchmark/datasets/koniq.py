"""KonIQ-10k (Hosu, Lin, Sziranyi, Saupe, "KonIQ-10k: An Ecologically Valid Database for Deep Learning
of Blind Image Quality Assessment", IEEE TIP 2020): 10 073 in-the-wild images, MOS 1–5, higher is better.

Layout: ``root/koniq10k_scores_and_distributions.csv`` (columns ``image_name``, ``MOS``, ...) and
``root/512x384/`` or ``root/1024x768/`` (``resolution``). The Guardians benchmark uses 1000
MOS-stratified images at 512×384: ``limit = 1000`` (stratified by default), ``image_size = [384, 512]``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from ..registry import DATASETS
from .table import Entry, Split, TableDataset, csv_entries


@DATASETS.register("koniq10k")
class KonIQ10k(TableDataset):
    """KonIQ-10k (Hosu et al., TIP 2020): scores CSV + 512x384/ or 1024x768/; MOS 1–5, higher is better."""

    mos_lower_better = False
    mos_range = (1.0, 5.0)

    def __init__(self, root: Path, resolution: Literal["512x384", "1024x768"] = "512x384", split: Split = "all",
                 train_fraction: float = 0.8, seed: int = 0, limit: int | None = None, stratify: bool = True,
                 drop_bad_mos: bool = False):
        self.resolution = resolution
        super().__init__(root, split, train_fraction, seed, limit, stratify, drop_bad_mos)

    def entries(self) -> list[Entry]:
        table = self.need("koniq10k_scores_and_distributions.csv")
        return csv_entries(table, self.need(self.resolution), "image_name", "MOS")
