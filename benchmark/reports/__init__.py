"""Reports: tables (CSV/Parquet/Markdown) and a self-contained HTML page, from stored records."""
from pathlib import Path

from .html import render_html
from .tables import write_tables


def build_report(run_dir: Path, *, progress: bool = False) -> Path:
    """Re-render every table and the HTML pages of a run directory from its stored records (the summary and the
    bootstrap statistics are computed once and shared by the tables and the pages)."""
    by_cell: dict = {}   # the cells' bootstrap statistics: read (or computed) once for the tables and the pages
    records, summary = write_tables(run_dir, by_cell)
    return render_html(run_dir, summary, records, progress=progress, by_cell=by_cell)


__all__ = ["build_report", "render_html", "write_tables"]
