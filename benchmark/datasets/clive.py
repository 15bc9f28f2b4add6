"""LIVE In the Wild Image Quality Challenge (CLIVE; Ghadiyaram & Bovik, "Massive Online Crowdsourced
Study of Subjective and Objective Picture Quality", IEEE TIP 2016): 1169 photographs, MOS 0–100, higher
is better. The first 7 images of the release are its training examples and are left out by default
(``include_training_images = false``), as is usual.

Layout: ``root/Data/AllImages_release.mat`` (``AllImages_release``: file names),
``root/Data/AllMOS_release.mat`` (``AllMOS_release``: MOS), and ``root/Images/``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import loadmat

from ..errors import DataError
from ..registry import DATASETS
from .table import Entry, Split, TableDataset


def _names(cell) -> list[str]:
    return [str(np.asarray(c).ravel()[0]) for c in np.asarray(cell, dtype=object).ravel()]


@DATASETS.register("clive")
class CLIVE(TableDataset):
    """LIVE in the Wild (Ghadiyaram & Bovik, TIP 2016): Data/*.mat + Images/; MOS 0–100, higher is better."""

    mos_lower_better = False
    mos_range = (0.0, 100.0)

    def __init__(self, root: Path, include_training_images: bool = False, split: Split = "all",
                 train_fraction: float = 0.8, seed: int = 0, limit: int | None = None, stratify: bool = True,
                 drop_bad_mos: bool = False):
        self.include_training_images = include_training_images
        super().__init__(root, split, train_fraction, seed, limit, stratify, drop_bad_mos)

    def entries(self) -> list[Entry]:
        names_mat, mos_mat = self.need("Data/AllImages_release.mat"), self.need("Data/AllMOS_release.mat")
        folder = self.need("Images")
        try:
            names = _names(loadmat(names_mat)["AllImages_release"])
            mos = np.asarray(loadmat(mos_mat)["AllMOS_release"], dtype=float).ravel()
        except (KeyError, ValueError, OSError) as exc:
            raise DataError(f"cannot read {names_mat} / {mos_mat}: {exc}") from None
        if len(names) != len(mos):
            raise DataError(f"{names_mat} lists {len(names)} images but {mos_mat} {len(mos)} scores")
        start = 0 if self.include_training_images else 7
        return [Entry(n, folder / n, float(m), n) for n, m in list(zip(names, mos))[start:]]
