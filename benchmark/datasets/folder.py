"""An image folder, with an optional CSV of subjective scores (MOS).

Every problem of the folder and its CSV is found in one pass and reported together (one line each, naming the
CSV and line): a missing column, a row repeating an image, naming an absent image or one outside the folder,
a MOS that is empty, not a number, NaN or infinite (or, with ``drop_bad_mos = true``, a warning naming every
image left out for it), a MOS outside ``mos_range``, a folder without images.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..images import read_image
from ..params import expect_dir, expect_file, expect_range
from ..registry import DATASETS
from .base import Dataset, Sample
from .table import Entry, data_errors, inside, outside_error, parse_mos, usable_mos

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


@DATASETS.register("folder")
class ImageFolder(Dataset):
    """Images under ``root`` (sorted by name); MOS from ``mos_csv`` (columns ``image_column``, ``mos_column``).

    Without a CSV every image of the folder is used and MOS is missing (no correlation measures).
    With one, the CSV lists the images; a row naming an absent file, a file outside ``root`` (an absolute
    or ``../`` path, or a symbolic link out of it) or an image listed twice is an error naming the row.
    ``mos_lower_better`` marks DMOS-like scales. ``mos_range = [lo, hi]`` (needs ``mos_csv``) declares
    the scale: a MOS outside it is an error naming the image, which catches a wrong column or scale. A MOS that
    is empty, not a number, NaN or infinite is an error, or with ``drop_bad_mos = true`` its image is left out
    with a warning naming it.
    """

    @classmethod
    def check_params(cls, params: dict[str, Any], base: Path) -> dict[str, Any]:
        expect_dir(params, "root")
        expect_file(params, "mos_csv")
        expect_range(params, "mos_range")
        if params.get("mos_range") is not None and params.get("mos_csv") is None:
            raise ConfigError("mos_range declares the scale of the MOS in mos_csv; give mos_csv too", key="mos_range")
        return super().check_params(params, base)

    def __init__(self, root: Path, mos_csv: Path | None = None, image_column: str = "image",
                 mos_column: str = "mos", mos_lower_better: bool = False,
                 mos_range: tuple[float, float] | None = None, limit: int | None = None, drop_bad_mos: bool = False):
        if not root.is_dir():
            raise ConfigError(f"dataset folder not found: {root}")
        self.root = root
        self.mos_lower_better, self.mos_range = mos_lower_better, mos_range
        self.mos: dict[str, float | None] = {}
        if mos_csv is None:
            names = sorted(p.name for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            outside = [n for n in names if inside(root, n) is None]
            if outside:
                raise data_errors([f"{root / n} is a symbolic link out of the dataset folder {root}; refused"
                                   for n in outside])
            self.mos = {n: None for n in names}
            if not self.mos:
                raise ConfigError(f"no images found in {root} (files ending in {', '.join(sorted(IMAGE_SUFFIXES))})")
        else:
            entries, problems = self._read_csv(mos_csv, image_column, mos_column)
            entries = usable_mos(entries, str(mos_csv), drop_bad_mos, problems)
            if mos_range is not None:
                lo, hi = mos_range
                bad = [e for e in entries if not lo <= e.mos <= hi]
                if bad:
                    raise data_errors([f"{mos_csv}: MOS {e.mos:g} of {e.image_id!r} lies outside mos_range "
                                       f"[{lo:g}, {hi:g}] ({e.origin.rsplit(', ', 1)[-1]})" for e in bad])
            self.mos = {e.image_id: e.mos for e in entries}
            if not self.mos:
                raise ConfigError(f"no images with a usable MOS in {root} listed by {mos_csv}")
        self._ids = self.subset(list(self.mos), limit)

    def _read_csv(self, path: Path, image_col: str, mos_col: str) -> tuple[list[Entry], list[str]]:
        """The CSV's rows as entries (a MOS that is not a number kept as NaN, for :func:`usable_mos`) and every
        other problem of the file (rows repeating an image, naming an absent one or one outside the folder)."""
        if not path.is_file():
            raise ConfigError(f"MOS file not found: {path}")
        problems, out, seen = [], [], {}
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            cols = reader.fieldnames or []
            for c in (image_col, mos_col):
                if c not in cols:
                    raise ConfigError(f"{path}: no column '{c}' (columns: {cols})")
            for line, row in enumerate(reader, start=2):
                name = row[image_col]
                if not name:
                    problems.append(f"{path}, line {line}: no image name in column '{image_col}'")
                elif name in seen:
                    problems.append(f"{path}, line {line}: image {name!r} is listed again (first on line "
                                    f"{seen[name]}); each image must appear once")
                elif inside(self.root, name) is None:
                    problems.append(str(outside_error(path, line, name, self.root)))
                elif not (self.root / name).is_file():
                    problems.append(f"{path}, line {line}: image {name!r} is absent from {self.root}")
                else:
                    seen[name] = line
                    mos, raw = parse_mos(row[mos_col])
                    out.append(Entry(name, self.root / name, mos, name, f"{path}, line {line}", raw))
        return out, problems

    def ids(self) -> list[str]:
        return self._ids

    def load(self, image_id: str) -> Sample:
        return Sample(image_id=image_id, image=read_image(self.root / image_id), mos=self.mos[image_id])
