"""An image folder, with an optional CSV of subjective scores (MOS)."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from ..images import read_image
from ..params import expect_dir, expect_file, expect_range
from ..registry import DATASETS
from .base import Dataset, Sample
from .table import inside, outside_error

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


@DATASETS.register("folder")
class ImageFolder(Dataset):
    """Images under ``root`` (sorted by name); MOS from ``mos_csv`` (columns ``image_column``, ``mos_column``).

    Without a CSV every image of the folder is used and MOS is missing (no correlation measures).
    With one, the CSV lists the images; a row naming an absent file, a file outside ``root`` (an absolute
    or ``../`` path, or a symbolic link out of it) or an image listed twice is an error naming the row.
    ``mos_lower_better`` marks DMOS-like scales. ``mos_range = [lo, hi]`` (needs ``mos_csv``) declares
    the scale: a MOS outside it is an error naming the image, which catches a wrong column or scale.
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
                 mos_range: tuple[float, float] | None = None, limit: int | None = None):
        if not root.is_dir():
            raise ConfigError(f"dataset folder not found: {root}")
        self.root = root
        self.mos_lower_better, self.mos_range = mos_lower_better, mos_range
        self.mos: dict[str, float | None] = {}
        if mos_csv is None:
            names = sorted(p.name for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            outside = [n for n in names if inside(root, n) is None]
            if outside:
                raise DataError(f"{root / outside[0]} is a symbolic link out of the dataset folder {root}; refused")
            self.mos = {n: None for n in names}
        else:
            self.mos = self._read_csv(mos_csv, image_column, mos_column)
        if mos_range is not None:
            lo, hi = mos_range
            bad = next(((n, m) for n, m in self.mos.items() if m is not None and not lo <= m <= hi), None)
            if bad is not None:
                raise DataError(f"{mos_csv}: MOS {bad[1]:g} of {bad[0]!r} lies outside mos_range [{lo:g}, {hi:g}]")
        if not self.mos:
            raise ConfigError(f"no images found in {root}" + (f" listed by {mos_csv}" if mos_csv else ""))
        self._ids = self.subset(list(self.mos), limit)

    def _read_csv(self, path: Path, image_col: str, mos_col: str) -> dict[str, float | None]:
        if not path.is_file():
            raise ConfigError(f"MOS file not found: {path}")
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            cols = reader.fieldnames or []
            for c in (image_col, mos_col):
                if c not in cols:
                    raise ConfigError(f"{path}: no column '{c}' (columns: {cols})")
            out, seen = {}, {}
            for line, row in enumerate(reader, start=2):
                name = row[image_col]
                try:
                    out[name] = float(row[mos_col])
                except (TypeError, ValueError):
                    raise DataError(f"{path}, line {line}: MOS {row[mos_col]!r} of {name!r} is not a number") from None
                if name in seen:
                    raise DataError(f"{path}, line {line}: image {name!r} is listed again (first on line "
                                    f"{seen[name]}); each image must appear once")
                if inside(self.root, name or "") is None:
                    raise outside_error(path, line, name, self.root)
                seen[name] = line
        missing = [n for n in out if not (self.root / n).is_file()]
        if missing:
            raise DataError(f"{path} lists {len(missing)} image(s) absent from {self.root}, e.g. {missing[0]}")
        return out

    def ids(self) -> list[str]:
        return self._ids

    def load(self, image_id: str) -> Sample:
        return Sample(image_id=image_id, image=read_image(self.root / image_id), mos=self.mos[image_id])
