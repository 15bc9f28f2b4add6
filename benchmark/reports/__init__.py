"""Reports: tables (CSV/Parquet/Markdown) and a self-contained HTML page, from stored records."""
from pathlib import Path

from .html import render_html
from .tables import write_tables


def build_report(run_dir: Path, *, progress: bool = False) -> Path:
    """Re-render every table and the HTML pages of a run directory from its stored records (the summary, the
    bootstrap statistics and the defense ranking are computed once and shared by the tables and the pages)."""
    t = write_tables(run_dir)
    return render_html(run_dir, t.summary, t.records, progress=progress, by_cell=t.stats, ranked=t.ranked)


__all__ = ["build_report", "render_html", "write_tables"]
