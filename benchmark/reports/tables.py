"""Tables of a run: per-image records and per-cell summaries as CSV, Parquet (with pyarrow) and Markdown.

Labels come from the config and image names from the dataset, so text cells are written inert: in the
CSVs a text cell that a spreadsheet would take for a formula (it begins with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return) gets a leading ``'`` (numbers stay numbers); in summary.md HTML is escaped and
``[``, ``|`` and line breaks are escaped, so no label becomes markup, an image or a link.
"""
from __future__ import annotations

import html
import importlib.util
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..records import load_records
from ..schema import HEADLINE
from ..store import atomic_write_bytes, atomic_write_text
from .runinfo import attach_direction, complete_summary
from .summaries import cell_summaries, frame_fingerprint

log = logging.getLogger(__name__)

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def text_columns(df: pd.DataFrame) -> list:
    return [c for c in df.columns if df[c].dtype == object or isinstance(df[c].dtype, pd.StringDtype)]


def map_text(df: pd.DataFrame, f) -> pd.DataFrame:
    """A copy of ``df`` with ``f`` applied to every string of its text columns."""
    out = df.copy()
    for c in text_columns(out):
        out[c] = out[c].map(lambda v: f(v) if isinstance(v, str) else v)
    return out


def neutralise_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """A copy in which text cells beginning like a spreadsheet formula get a leading ``'`` (OWASP CSV injection)."""
    return map_text(df, lambda v: "'" + v if v[:1] in FORMULA_START else v)


def restore_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """The inverse of :func:`neutralise_formulas` (a copy): labels as the run wrote them, for a stored CSV read back."""
    return map_text(df, lambda v: v[1:] if v[:1] == "'" and v[1:2] in FORMULA_START else v)


def csv_text(df: pd.DataFrame) -> str:
    """``df`` as CSV text, safe to open in a spreadsheet."""
    return neutralise_formulas(df).to_csv(index=False)


def markdown_cell(v: str) -> str:
    """A text cell of a Markdown table that renders as the literal text: no HTML, link, image or column break."""
    text = html.escape(v, quote=False).replace("\\", "\\\\").replace("[", "\\[").replace("|", "\\|")
    return " ".join(text.splitlines())


def markdown_text(df: pd.DataFrame, **kwargs) -> str:
    """``df`` as a Markdown table (tabulate) whose text cells are escaped with :func:`markdown_cell`."""
    return map_text(df, markdown_cell).to_markdown(index=False, **kwargs) + "\n"


RANK_SUMMARY = ["rank", "rank_low", "rank_high"]   # the cell's defense's rank at the cell's budget


@dataclass
class Tables:
    """What ``write_tables`` computed, for the pages: nothing is computed twice."""
    records: pd.DataFrame   # per image, with the attack direction the verdict measures use
    summary: pd.DataFrame   # per cell, with its defense's rank; indexed 0..n-1
    stats: dict             # the cells' verdict statistics by (dataset, metric, attack, defense)
    ranked: pd.DataFrame | None   # the whole run's defense ranking (its cell_index: rows of ``summary``)


def with_ranks(summary: pd.DataFrame, records: pd.DataFrame, run_dir: Path
               ) -> tuple[pd.DataFrame, dict, pd.DataFrame | None]:
    """``summary`` (renumbered 0..n-1) with the rank of each cell's defense in its (dataset, metric, budget) and the
    rank's bootstrap interval (:mod:`benchmark.reports.ranking`), the cells' verdict statistics by (dataset,
    metric, attack, defense), and the whole run's ranking table, whose ``cell_index`` refers to the returned
    summary's rows (the pages take their sections' slices of it)."""
    from .ranking import budget_labels, defense_rows, rank_defenses
    from .verdicts import run_statistics

    summary = summary.reset_index(drop=True)
    if summary.empty:
        return summary, {}, None
    by_cell = run_statistics(run_dir, records, summary)
    stats = {i: by_cell[(r.dataset, r.metric, r.attack, r.defense)] for i, r in zip(summary.index, summary.itertuples())
             if (r.dataset, r.metric, r.attack, r.defense) in by_cell}
    table = rank_defenses(defense_rows(summary, ["dataset", "metric", "defense"], stats))
    key = ["dataset", "metric", "budget_label", "defense"]
    ranks = table[key + RANK_SUMMARY]
    out = summary.assign(budget_label=budget_labels(summary)).merge(ranks, on=key, how="left")   # keeps the order
    return out.drop(columns="budget_label"), by_cell, table


TABLES = Path("cache") / "tables.json"   # what each table file was written from (fingerprint, size, mtime)


class TableWriter:
    """Writes a run's table files, skipping one whose content would be what the file already holds: the same
    fingerprint of the frame and of the code, and the file as it was written (size and modification time). A
    10,000-cell run's records.csv is about 70 MB; rewriting it unchanged on every ``report`` cost seconds."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        try:
            self.written = json.loads((self.run_dir / TABLES).read_text())
        except (OSError, ValueError):
            self.written = {}
        self.changed = False

    def current(self, name: str, fingerprint: str | None) -> bool:
        entry, path = self.written.get(name), self.run_dir / name
        if fingerprint is None or not isinstance(entry, dict) or not path.is_file():
            return False
        st = path.stat()
        return entry == {"fingerprint": fingerprint, "size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def write(self, name: str, fingerprint: str | None, content) -> None:
        """Write ``content()`` (text or bytes) to ``name`` unless the file already holds it."""
        if self.current(name, fingerprint):
            return
        data = content()
        path = self.run_dir / name
        (atomic_write_text if isinstance(data, str) else atomic_write_bytes)(path, data)
        st = path.stat()
        self.written[name] = {"fingerprint": fingerprint, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        self.changed = True

    def close(self) -> None:
        if self.changed:
            try:
                atomic_write_text(self.run_dir / TABLES, json.dumps(self.written, indent=1))
            except OSError as exc:   # written again next time
                log.info("tables: %s not written (%s)", self.run_dir / TABLES, exc)


def _parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def write_tables(run_dir: Path) -> Tables:
    """Write records.csv, summary.csv (+ Parquet) and summary.md; returns what the pages need besides.
    The summary rows of cells whose records did not change since the last report are read from the run's cache
    (:mod:`benchmark.reports.summaries`), and a table file that would be written unchanged is left as it is."""
    run_dir = Path(run_dir)
    stored = load_records(run_dir)
    records = attach_direction(stored.copy(), run_dir)
    summary = complete_summary(cell_summaries(records, run_dir), records, run_dir)  # + baseline, aligned means
    summary, stats, ranked = with_ranks(summary, records, run_dir)
    # the schema's headline columns first, every other measure after them; summary.md shows the headline only
    summary = summary[[c for c in HEADLINE if c in summary] + [c for c in summary if c not in HEADLINE]]
    out = TableWriter(run_dir)
    fp_records, fp_summary = frame_fingerprint(stored), frame_fingerprint(summary)
    out.write("records.csv", fp_records, lambda: csv_text(stored))
    out.write("summary.csv", fp_summary, lambda: csv_text(summary))
    shown = summary[[c for c in HEADLINE if c in summary]]
    out.write("summary.md", fp_summary, lambda: markdown_text(shown, floatfmt=".4g"))
    if importlib.util.find_spec("pyarrow"):
        out.write("records.parquet", fp_records, lambda: _parquet(stored))
        out.write("summary.parquet", fp_summary, lambda: _parquet(summary))
    out.close()
    return Tables(records, summary, stats, ranked)
