"""TID2013 (Ponomarenko et al., "Image database TID2013", Signal Processing: Image Communication 2015):
25 references × 24 distortions × 5 levels, MOS 0–9, higher is better.

Layout: ``root/mos_with_names.txt`` (lines ``<mos> <file name>``) and ``root/distorted_images/``.
Splits are disjoint by reference (``i01`` … ``i25`` of the file name, case-insensitive).
"""
from __future__ import annotations

from ..errors import DataError
from ..registry import DATASETS
from .table import Entry, TableDataset


@DATASETS.register("tid2013")
class TID2013(TableDataset):
    """TID2013 (Ponomarenko et al., 2015): mos_with_names.txt + distorted_images/; MOS 0–9, higher is better."""

    mos_lower_better = False
    mos_range = (0.0, 9.0)

    def entries(self) -> list[Entry]:
        table, folder = self.need("mos_with_names.txt"), self.need("distorted_images")
        out = []
        for line, text in enumerate(table.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            if not text.strip():
                continue
            parts = text.split()
            try:
                mos, name = float(parts[0]), parts[1]
            except (IndexError, ValueError):
                raise DataError(f"{table}, line {line}: expected '<mos> <file name>', got {text!r}") from None
            out.append(Entry(name, folder / name, mos, name[:3].lower()))
        return out
