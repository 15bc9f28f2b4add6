"""Reports: tables (CSV/Parquet/Markdown) and a self-contained HTML page, from stored records."""
from pathlib import Path

from .html import render_html
from .tables import write_tables


def build_report(run_dir: Path, *, progress: bool = False) -> Path:
    """Re-render every table and the HTML page of a run directory from its stored records (the summary is
    computed once and shared by the tables and the page)."""
    records, summary = write_tables(run_dir)
    return render_html(run_dir, summary, records, progress=progress)


__all__ = ["build_report", "render_html", "write_tables"]
