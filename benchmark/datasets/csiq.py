"""CSIQ (Larson & Chandler, "Most apparent distortion: full-reference image quality assessment and the
role of strategy", Journal of Electronic Imaging 2010): 30 references, 866 distorted images in six
types at 4–5 levels. Scores are **DMOS** in [0, 1], lower is better.

Layout (the release): ``csiq.DMOS.xlsx`` (a sheet with columns ``image``, ``dst_idx``, ``dst_type``,
``dst_lev``, ``dmos_std``, ``dmos``; the first sheet that has them is used), ``src_imgs/<image>.png`` and
``dst_imgs/<folder>/<image>.<TYPE>.<lev>.png`` with ``dst_idx`` 1–6 → folder ``awgn``, ``jpeg``,
``jpeg2000``, ``fnoise``, ``blur``, ``contrast`` (the type tag in the file name is matched without regard
to case, as releases differ: ``AWGN``, ``JPEG``, ``jpeg2000``, ``fnoise``, ``BLUR``, ``contrast``).
Reading the spreadsheet needs ``openpyxl``. Splits are disjoint by reference image.
"""
from __future__ import annotations

from ..errors import DataError
from ..registry import DATASETS
from .table import Entry, TableDataset, read_excel

FOLDERS = {1: "awgn", 2: "jpeg", 3: "jpeg2000", 4: "fnoise", 5: "blur", 6: "contrast"}
COLUMNS = ("image", "dst_idx", "dst_lev", "dmos")


@DATASETS.register("csiq")
class CSIQ(TableDataset):
    """CSIQ (Larson & Chandler, 2010): csiq.DMOS.xlsx + dst_imgs/<type>/; DMOS 0–1, lower is better."""

    mos_lower_better = True
    mos_range = (0.0, 1.0)

    def entries(self) -> list[Entry]:
        table = self.need("csiq.DMOS.xlsx")
        self.need("dst_imgs")
        sheets = read_excel(table, sheet_name=None)
        df = next((d for d in sheets.values() if set(COLUMNS) <= set(d.columns)), None)
        if df is None:
            raise DataError(f"{table}: no sheet with columns {list(COLUMNS)}")
        files: dict[str, dict[str, str]] = {}
        for folder in FOLDERS.values():
            d = self.root / "dst_imgs" / folder
            files[folder] = {p.name.lower(): p.name for p in d.iterdir()} if d.is_dir() else {}
        out = []
        for row in df.dropna(subset=list(COLUMNS)).itertuples(index=False):
            image, idx, lev, dmos = str(row.image), int(row.dst_idx), int(row.dst_lev), float(row.dmos)
            if idx not in FOLDERS:
                raise DataError(f"{table}: dst_idx {idx} of image {image} is not one of {sorted(FOLDERS)}")
            folder = FOLDERS[idx]
            prefix = f"{image}.".lower()
            suffix = f".{lev}.png"
            match = [n for low, n in files[folder].items() if low.startswith(prefix) and low.endswith(suffix)]
            if not match:
                raise DataError(f"{table}: no file {image}.<type>{suffix} in {self.root / 'dst_imgs' / folder}")
            out.append(Entry(f"{folder}/{match[0]}", self.root / "dst_imgs" / folder / match[0], dmos, image))
        return out
