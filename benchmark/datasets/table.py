"""Shared machinery of the IQA databases: a table of (image path, MOS, group), deterministic splits
disjoint by group (reference content), and MOS-stratified subsets.

- ``split = "train" | "test" | "all"``: groups (reference images for synthetic databases, images
  otherwise) are ranked by ``sha256(seed, group)`` and the first ``train_fraction`` of them form the
  training split. Disjoint by construction, stable across machines and Python versions.
- ``limit = k`` with ``stratify = true`` keeps k images spread over the MOS distribution: the selection
  is sorted by MOS, cut into k equal-count bins, and the image nearest each bin's median MOS is kept
  (the Guardians benchmark uses 1000 MOS-stratified KonIQ images); with ``stratify = false`` k images
  spread evenly in file order.

Every image must lie in the dataset folder: a score-table row naming an absolute or ``../`` path or a
symbolic link out of its folder, a row repeating an image, and a row naming an absent image are errors
naming the table and line. A MOS that is empty, not a number, NaN or infinite is an error too, or, with
``drop_bad_mos = true``, a warning that names every image left out. Every problem of a table is found in one
pass (:class:`~benchmark.errors.DataErrors`, one line each, at most ``MAX_LISTED`` and a count of the rest).
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import ConfigError, DataError, DataErrors
from ..images import read_image
from ..params import expect_dir
from .base import Dataset, Sample

Split = Literal["all", "train", "test"]
MAX_LISTED = 50  # problems of one dataset listed one per line; the rest are counted
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    image_id: str
    path: Path
    mos: float             # NaN when the table's value is not a number (``raw_mos`` holds it)
    group: str
    origin: str = ""       # "<table>, line <n>" for messages
    raw_mos: str | None = None

    def mos_problem(self) -> str | None:
        """Why this entry's MOS is unusable (empty, not a number, NaN, infinite), or None."""
        if math.isfinite(self.mos):
            return None
        shown = self.raw_mos if self.raw_mos is not None else repr(self.mos)
        return f"{self.origin + ': ' if self.origin else ''}MOS {shown!r} of {self.image_id!r} is " + \
            ("empty" if not str(shown).strip() else "not a finite number")


def parse_mos(text: Any) -> tuple[float, str | None]:
    """A table's MOS cell as a float (NaN when empty or not a number) and its raw text when it is not one."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return math.nan, "" if text is None else str(text)
    return value, (None if math.isfinite(value) else str(text))


def data_errors(problems: list[str]) -> DataErrors:
    """One DataError per problem, at most ``MAX_LISTED``, then one line counting the rest."""
    shown = [DataError(p) for p in problems[:MAX_LISTED]]
    if len(problems) > MAX_LISTED:
        shown.append(DataError(f"... and {len(problems) - MAX_LISTED} more problems like these"))
    return DataErrors(shown)


def usable_mos(entries: list, name: str, drop_bad_mos: bool, problems: list[str] = ()) -> list:
    """``entries`` without those whose MOS is unusable: an error listing them all (after the other
    ``problems`` found in the same table), or with ``drop_bad_mos`` a warning naming every image dropped."""
    bad = [(e, p) for e in entries if (p := e.mos_problem()) is not None]
    listed = list(problems) + ([] if drop_bad_mos else
                               [f"{p}; fix it, or set drop_bad_mos = true to leave such images out" for _, p in bad])
    if listed:
        raise data_errors(listed)
    if not bad:
        return entries
    log.warning("%s: drop_bad_mos = true: %d image(s) left out, their MOS unusable: %s", name, len(bad),
                "; ".join(p for _, p in bad))
    dropped = {id(e) for e, _ in bad}
    return [e for e in entries if id(e) not in dropped]


def resolves_within(path: Path, root: Path) -> bool:
    """Whether ``path`` lies inside ``root`` once symbolic links are followed (of the file or of a folder
    on its way): absolute names, ``../`` escapes and links out of ``root`` are outside."""
    try:
        return Path(path).resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError):  # unresolvable, e.g. a symbolic-link loop
        return False


def inside(root: Path, name: str) -> Path | None:
    """``root / name`` when it lies inside ``root`` (see :func:`resolves_within`), else None: a score table never
    makes the benchmark read a file outside its dataset."""
    path = Path(root) / name
    return path if resolves_within(path, root) else None


def in_dataset(path: Path, root: Path) -> bool:
    """Whether a database's file lies in its folder: lexically under ``root`` (no absolute or ``../``
    escape), and, if the file is a symbolic link, pointing inside ``root`` or its own folder. Folders of the
    official layout may themselves be links (a database kept on another disk)."""
    norm = Path(os.path.normpath(os.path.abspath(path)))
    if not norm.is_relative_to(os.path.normpath(os.path.abspath(root))):
        return False
    return not norm.is_symlink() or resolves_within(norm, root) or resolves_within(norm, norm.parent)


def outside_error(table: Path, line: int, name: str, root: Path) -> DataError:
    return DataError(f"{table}, line {line}: image {name!r} lies outside the dataset folder {root} (an absolute "
                     "or '../' path, or a symbolic link out of it); refused")


def csv_entries(table: Path, folder: Path, name_col: str, mos_col: str, group_col: str | None = None) -> list[Entry]:
    """Entries from a CSV score table, each with its table and line (``Entry.origin``), for TableDataset's checks
    (images outside ``folder``, repeated or absent, unusable MOS: all reported together). A MOS that is not a
    number is kept as NaN with its text (:meth:`Entry.mos_problem`); a file without the columns is an error."""
    import csv

    out, problems = [], []
    with table.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in (name_col, group_col, mos_col) if c and c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{table}: no column {missing[0]!r} (columns: {reader.fieldnames or []})")
        for line, row in enumerate(reader, start=2):
            name, group = row[name_col], row[group_col] if group_col else row[name_col]
            if not name or group is None:  # an empty name, or a row shorter than the header
                problems.append(f"{table}, line {line}: no value for "
                                f"{'/'.join(c for c in (name_col, group_col) if c)}")
                continue
            mos, raw = parse_mos(row[mos_col])
            out.append(Entry(name, folder / name, mos, group, f"{table}, line {line}", raw))
    if problems:
        raise data_errors(problems)
    return out


def read_excel(table: Path, sheet_name=0):
    """A database's spreadsheet through pandas/openpyxl, with clear errors naming the file."""
    import pandas as pd

    try:
        return pd.read_excel(table, sheet_name=sheet_name)
    except ImportError:
        raise ConfigError(f"reading {table.name} needs openpyxl: pip install openpyxl") from None
    except ValueError as exc:
        raise DataError(f"cannot read {table}: {exc}") from None


def split_groups(groups: list[str], split: Split, train_fraction: float, seed: int) -> set[str]:
    uniq = sorted(set(groups), key=lambda g: hashlib.sha256(f"{seed}|{g}".encode()).hexdigest())
    n_train = int(round(len(uniq) * train_fraction))
    return set(uniq[:n_train] if split == "train" else uniq[n_train:] if split == "test" else uniq)


def stratified(entries: list[Entry], k: int) -> list[Entry]:
    order = sorted(entries, key=lambda e: (e.mos, e.image_id))
    keep = []
    for b in np.array_split(np.arange(len(order)), k):
        if len(b):
            keep.append(order[int(b[len(b) // 2])])
    return sorted(keep, key=lambda e: e.image_id)


class TableDataset(Dataset):
    """A database described by a list of entries; subclasses read their official files in ``entries()``."""

    @classmethod
    def check_params(cls, params: dict[str, Any], base: Path) -> dict[str, Any]:
        expect_dir(params, "root")
        if not 0 < params.get("train_fraction", 0.8) < 1:
            raise ConfigError(f"expected 0 < train_fraction < 1, got {params['train_fraction']:g}", key="train_fraction")
        return super().check_params(params, base)

    def __init__(self, root: Path, split: Split = "all", train_fraction: float = 0.8, seed: int = 0,
                 limit: int | None = None, stratify: bool = True, drop_bad_mos: bool = False):
        if not Path(root).is_dir():
            raise ConfigError(f"{type(self).__name__}: dataset folder not found: {root}")
        if split not in ("all", "train", "test") or not 0 < train_fraction < 1:
            raise ConfigError("split must be all/train/test and 0 < train_fraction < 1")
        self.root = Path(root)
        entries = self.entries()
        if not entries:
            raise DataError(f"{type(self).__name__}: no images listed under {root}")
        problems, first, kept = [], {}, []
        for e in entries:
            where = f"{e.origin}: " if e.origin else f"{type(self).__name__}: "
            if not in_dataset(e.path, self.root):
                problems.append(f"{where}image {e.image_id!r} lies outside the dataset folder {root} (an absolute or "
                                "'../' path, or a symbolic link out of it); refused")
            elif e.image_id in first:
                was = first[e.image_id]
                was = f"first on line {was.rsplit('line ', 1)[-1]}" if ", line " in was else "listed before"
                problems.append(f"{where}image {e.image_id!r} is listed again ({was}); each image must appear once")
            elif not e.path.is_file():
                problems.append(f"{where}image {e.image_id!r} is absent: no file {e.path}")
            else:
                kept.append(e)
            first.setdefault(e.image_id, e.origin)
        entries = usable_mos(kept, f"{type(self).__name__} ({root})", drop_bad_mos, problems)
        if not entries:
            raise DataError(f"{type(self).__name__}: no image under {root} has a usable MOS")
        keep = split_groups([e.group for e in entries], split, train_fraction, seed)
        entries = [e for e in entries if e.group in keep]
        if limit is not None and limit < len(entries):
            entries = stratified(entries, limit) if stratify else [entries[i] for i in
                                                                    np.linspace(0, len(entries) - 1, limit).round().astype(int)]
        self._entries = {e.image_id: e for e in entries}

    def entries(self) -> list[Entry]:
        raise NotImplementedError

    def need(self, relative: str) -> Path:
        p = self.root / relative
        if not p.exists():
            raise ConfigError(f"{type(self).__name__}: expected {p} (see the README for the folder layout)")
        return p

    def ids(self) -> list[str]:
        return list(self._entries)

    def load(self, image_id: str) -> Sample:
        e = self._entries[image_id]
        return Sample(image_id=image_id, image=read_image(e.path), mos=e.mos)
