"""Compare two run directories: are their per-image records the same, timing aside?

    python -m benchmark.tools.compare_runs runs/before/quickstart runs/after/quickstart

The project promises that a refactoring leaves the records of every example identical; this is the check. Both
runs' long tables are read with :func:`benchmark.records.load_records` (the loader ``report`` uses) and matched
on the cell and the image, ``(dataset, metric, attack, defense, image_id)``. Every other cell must be exactly
equal (NaN equals NaN, no tolerance), except the timing columns: those of the schema's ``cost`` group
(:mod:`benchmark.schema`: the defenses' seconds per image) and, for a column the schema does not know yet, a
name that starts with ``seconds_`` or ends with ``_seconds``. Stage-level bookkeeping that is not a record
column (a stage's ``stage_seconds``, its ``model_passes``, ``passes.json``) is not read.

Beside the records, what did not become records is compared too, so that a stage failing on one side only is
reported: the planned cells (``cells.json``, by their labels), the failed stages (``errors/``, by stage, cell
labels and message; not by content key or traceback, which name files and lines) and ``skipped.json`` (as a
multiset of entries).

Exit status: 0 identical, 1 different, 2 bad input (a path that is not a run directory).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..records import load_records
from ..schema import CELL, COLUMNS, column
from ..store import RunStore

KEY = [*CELL, "image_id"]
TIMING_GROUP = "cost"
ERROR_FIELDS = ("stage", *CELL, "error")


def is_timing(name: str) -> bool:
    """A column that measures wall time: the schema's ``cost`` group, or a ``seconds`` name it does not list."""
    if name in COLUMNS:
        return column(name).group == TIMING_GROUP
    return name.startswith("seconds_") or name.endswith("_seconds")


@dataclass
class Comparison:
    """What differs between run ``a`` and run ``b``; ``identical`` when nothing does."""
    a: Path
    b: Path
    rows: int = 0                                   # rows present in both
    columns: list[str] = field(default_factory=list)  # columns compared
    ignored: list[str] = field(default_factory=list)  # timing columns present
    rows_only: tuple[list[tuple], list[tuple]] = field(default_factory=lambda: ([], []))
    columns_only: tuple[list[str], list[str]] = field(default_factory=lambda: ([], []))
    dtypes: list[tuple[str, str, str]] = field(default_factory=list)  # (column, dtype in a, dtype in b)
    cells: list[tuple[str, tuple, object, object]] = field(default_factory=list)  # (column, key, a, b)
    bookkeeping: dict[str, tuple[list, list]] = field(default_factory=dict)  # what: (only in a, only in b)
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)         # what: (n in a, n in b)

    @property
    def identical(self) -> bool:
        return not (any(self.rows_only) or any(self.columns_only) or self.dtypes or self.cells
                    or any(x or y for x, y in self.bookkeeping.values()))


def _keyed(df: pd.DataFrame) -> pd.DataFrame:
    """The records indexed by their key, a repeated key numbered in order of appearance (so it still matches)."""
    df = df.copy()
    df["_n"] = df.groupby(KEY, sort=False, dropna=False).cumcount()
    return df.set_index([*KEY, "_n"]).sort_index()


def _same(x: object, y: object) -> bool:
    x_na, y_na = _is_na(x), _is_na(y)
    if x_na or y_na:
        return x_na and y_na
    try:
        return bool(x == y)
    except (TypeError, ValueError):  # containers: compare their JSON text
        return json.dumps(x, sort_keys=True, default=str) == json.dumps(y, sort_keys=True, default=str)


def _is_na(x: object) -> bool:
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):  # a list or array is a value, not a missing one
        return False


def _multiset_diff(a: list, b: list) -> tuple[list, list]:
    ca, cb = Counter(a), Counter(b)
    return sorted((ca - cb).elements()), sorted((cb - ca).elements())


def _bookkeeping(run: Path) -> dict[str, list[str]]:
    """The planned cells, the failed stages and the skipped entries of ``run``, each as comparable text."""
    cells = [json.dumps({k: c.get(k) for k in CELL}, sort_keys=True)
             for c in json.loads((run / "cells.json").read_text())]
    errors = [json.dumps({k: e.get(k) for k in ERROR_FIELDS}, sort_keys=True) for e in RunStore(run).errors()]
    skipped_file = run / "skipped.json"
    skipped = ([json.dumps(s, sort_keys=True) for s in json.loads(skipped_file.read_text())]
               if skipped_file.is_file() else ["<no skipped.json>"])
    return {"planned cells": cells, "failed stages": errors, "skipped": skipped}


def compare(a: Path, b: Path) -> Comparison:
    """Compare run directories ``a`` and ``b`` (each must hold ``cells.json``)."""
    out = Comparison(Path(a), Path(b))
    ra, rb = _keyed(load_records(a)), _keyed(load_records(b))
    cols_a, cols_b = list(ra.columns), list(rb.columns)
    out.ignored = [c for c in dict.fromkeys(cols_a + cols_b) if is_timing(c)]
    out.columns_only = ([c for c in cols_a if c not in rb.columns and not is_timing(c)],
                        [c for c in cols_b if c not in ra.columns and not is_timing(c)])
    out.columns = [c for c in cols_a if c in rb.columns and not is_timing(c)]
    only_a, only_b = ra.index.difference(rb.index), rb.index.difference(ra.index)
    out.rows_only = (list(only_a), list(only_b))
    common = ra.index.intersection(rb.index)
    out.rows = len(common)
    ra, rb = ra.loc[common], rb.loc[common]
    for c in out.columns:
        if ra[c].dtype != rb[c].dtype:
            out.dtypes.append((c, str(ra[c].dtype), str(rb[c].dtype)))
        for key, x, y in zip(common, ra[c].tolist(), rb[c].tolist()):
            if not _same(x, y):
                out.cells.append((c, key[:-1], x, y))
    ba, bb = _bookkeeping(Path(a)), _bookkeeping(Path(b))
    for what in ba:
        out.bookkeeping[what] = _multiset_diff(ba[what], bb[what])
        out.counts[what] = (len(ba[what]), len(bb[what]))
    return out


def summary(cmp: Comparison, show: int = 5) -> str:
    """A few lines: what was compared, then every kind of difference with its first ``show`` examples."""
    compared = (f"records: {cmp.rows} rows x {len(cmp.columns)} columns = {cmp.rows * len(cmp.columns)} cells "
                f"compared (key {', '.join(KEY)}; timing columns ignored: {', '.join(cmp.ignored) or 'none'})")
    lines = [f"A: {cmp.a}", f"B: {cmp.b}", compared]

    def listing(title: str, items: list) -> None:
        if items:
            lines.append(f"{title}: {len(items)}")
            lines.extend(f"    {x}" for x in items[:show])
            if len(items) > show:
                lines.append(f"    ... and {len(items) - show} more")

    listing("rows only in A", cmp.rows_only[0])
    listing("rows only in B", cmp.rows_only[1])
    listing("columns only in A", cmp.columns_only[0])
    listing("columns only in B", cmp.columns_only[1])
    listing("columns of another type", [f"{c}: {x} in A, {y} in B" for c, x, y in cmp.dtypes])
    if cmp.cells:
        per_col = Counter(c for c, *_ in cmp.cells)
        lines.append(f"differing cells: {len(cmp.cells)} in {len(per_col)} column(s): "
                     + ", ".join(f"{c} ({n})" for c, n in per_col.most_common()))
        lines.extend(f"    {c} {list(key)}: A {x!r}, B {y!r}" for c, key, x, y in cmp.cells[:show])
        if len(cmp.cells) > show:
            lines.append(f"    ... and {len(cmp.cells) - show} more")
    for what, (x, y) in cmp.bookkeeping.items():
        na, nb = cmp.counts[what]
        lines.append(f"{what}: {na} in A, {nb} in B" + ("" if x or y else ", the same"))
        listing(f"  {what} only in A", x)
        listing(f"  {what} only in B", y)
    lines.append("IDENTICAL" if cmp.identical else "DIFFERENT")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmark.tools.compare_runs", description=__doc__.split("\n\n")[0],
                                 epilog="exit status: 0 identical, 1 different, 2 bad input")
    ap.add_argument("run_a", type=Path)
    ap.add_argument("run_b", type=Path)
    ap.add_argument("--show", type=int, default=5, help="examples shown per kind of difference (default 5)")
    args = ap.parse_args(argv)
    for label, run in (("RUN_A", args.run_a), ("RUN_B", args.run_b)):
        if not (run / "cells.json").is_file():
            what = "does not exist" if not run.exists() else "is not a run directory (no cells.json)"
            print(f"compare_runs: {label} {run} {what}", file=sys.stderr)
            return 2
    cmp = compare(args.run_a, args.run_b)
    print(summary(cmp, args.show))
    return 0 if cmp.identical else 1


if __name__ == "__main__":
    sys.exit(main())
