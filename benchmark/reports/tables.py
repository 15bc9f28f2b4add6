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
import logging
from pathlib import Path

import pandas as pd

from ..measures import summarize
from ..records import load_records
from ..schema import HEADLINE
from ..store import atomic_write_bytes, atomic_write_text
from .runinfo import attach_direction, complete_summary

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


def with_ranks(summary: pd.DataFrame, records: pd.DataFrame, run_dir: Path, by_cell: dict | None = None
               ) -> pd.DataFrame:
    """``summary`` with the rank of each cell's defense in its (dataset, metric, budget) and the rank's bootstrap
    interval (:mod:`benchmark.reports.ranking`); computes and stores the cells' bootstrap replicates (into
    ``by_cell`` when given, by (dataset, metric, attack, defense), for the page to reuse)."""
    from .ranking import budget_labels, defense_rows, rank_defenses
    from .verdicts import run_statistics

    if summary.empty:
        return summary
    stats_of = run_statistics(run_dir, records, summary)
    if by_cell is not None:
        by_cell.update(stats_of)
    by_cell = stats_of
    stats = {i: by_cell[(r.dataset, r.metric, r.attack, r.defense)] for i, r in zip(summary.index, summary.itertuples())
             if (r.dataset, r.metric, r.attack, r.defense) in by_cell}
    table = rank_defenses(defense_rows(summary, ["dataset", "metric", "defense"], stats))
    key = ["dataset", "metric", "budget_label", "defense"]
    ranks = table[key + RANK_SUMMARY]
    out = summary.assign(budget_label=budget_labels(summary)).merge(ranks, on=key, how="left")
    return out.drop(columns="budget_label")


def write_tables(run_dir: Path, by_cell: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write records.csv, summary.csv (+ Parquet) and summary.md; returns the records (with the attack direction
    the verdict measures use) and the summary (``by_cell``, when given, receives the cells' bootstrap statistics)."""
    run_dir = Path(run_dir)
    stored = load_records(run_dir)
    records = attach_direction(stored.copy(), run_dir)
    summary = complete_summary(summarize(records), records, run_dir)  # + baseline flag, aligned PSNR means
    summary = with_ranks(summary, records, run_dir, by_cell)
    # the schema's headline columns first, every other measure after them; summary.md shows the headline only
    summary = summary[[c for c in HEADLINE if c in summary] + [c for c in summary if c not in HEADLINE]]
    atomic_write_text(run_dir / "records.csv", csv_text(stored))
    atomic_write_text(run_dir / "summary.csv", csv_text(summary))
    shown = summary[[c for c in HEADLINE if c in summary]]
    atomic_write_text(run_dir / "summary.md", markdown_text(shown, floatfmt=".4g"))
    if importlib.util.find_spec("pyarrow"):
        for name, frame in (("records", stored), ("summary", summary)):
            buf = io.BytesIO()
            frame.to_parquet(buf, index=False)
            atomic_write_bytes(run_dir / f"{name}.parquet", buf.getvalue())
    return records, summary
