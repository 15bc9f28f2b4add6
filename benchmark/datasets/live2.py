"""LIVE Image Quality Assessment Database, release 2 (Sheikh, Sabir, Bovik, "A Statistical Evaluation
of Recent Full Reference Image Quality Assessment Algorithms", IEEE TIP 2006): 29 references, 779
distorted images in five types. Scores are **DMOS** (lower is better, about 0–100).

Layout (the release's ``databaserelease2/``): ``dmos_realigned.mat`` (``dmos_new``, ``orgs``; or
``dmos.mat`` with ``dmos``, ``orgs`` when ``realigned = false``), ``refnames_all.mat``
(``refnames_all``), and ``jp2k/`` (227 images), ``jpeg/`` (233), ``wn/`` (174), ``gblur/`` (174),
``fastfading/`` (174), each ``img1.bmp`` … in the order of the score vectors. Entries with ``orgs = 1``
are the references themselves and are left out. Splits are disjoint by reference.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import loadmat

from ..errors import DataError
from ..registry import DATASETS
from .table import Entry, Split, TableDataset

FOLDERS = (("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174))


@DATASETS.register("live2")
class LIVE2(TableDataset):
    """LIVE IQA release 2 (Sheikh et al., TIP 2006): dmos(_realigned).mat + refnames_all.mat + 5 folders; DMOS."""

    mos_lower_better = True
    mos_range = (0.0, 100.0)

    def __init__(self, root: Path, realigned: bool = True, split: Split = "all", train_fraction: float = 0.8,
                 seed: int = 0, limit: int | None = None, stratify: bool = True,
                 drop_bad_mos: bool = False):
        self.realigned = realigned
        super().__init__(root, split, train_fraction, seed, limit, stratify, drop_bad_mos)

    def entries(self) -> list[Entry]:
        mat, key = ("dmos_realigned.mat", "dmos_new") if self.realigned else ("dmos.mat", "dmos")
        scores_file, names_file = self.need(mat), self.need("refnames_all.mat")
        try:
            scores = loadmat(scores_file)
            dmos = np.asarray(scores[key], dtype=float).ravel()
            orgs = np.asarray(scores["orgs"]).ravel().astype(bool)
            refs = [str(np.asarray(c).ravel()[0]) for c in np.asarray(loadmat(names_file)["refnames_all"],
                                                                          dtype=object).ravel()]
        except (KeyError, ValueError, OSError) as exc:
            raise DataError(f"cannot read {scores_file} / {names_file}: {exc}") from None
        paths = [self.need(folder) / f"img{k}.bmp" for folder, n in FOLDERS for k in range(1, n + 1)]
        if not len(dmos) == len(orgs) == len(refs) == len(paths):
            raise DataError(f"{scores_file}: {len(dmos)} scores, {len(refs)} reference names, {len(paths)} "
                            "images expected from the five folders")
        return [Entry(f"{p.parent.name}/{p.name}", p, float(d), r)
                for p, d, o, r in zip(paths, dmos, orgs, refs) if not o]
