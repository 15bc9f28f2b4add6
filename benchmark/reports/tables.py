"""Tables of a run: per-image records and per-cell summaries as CSV, Parquet (with pyarrow) and Markdown."""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pandas as pd

from ..measures import summarize
from ..records import load_records
from ..store import atomic_write_text

log = logging.getLogger(__name__)

# The columns a reader looks at first, in order; every other measure follows in the CSV.
HEADLINE = ["dataset", "metric", "attack", "defense", "n_images", "abs_gain", "msu_abs_gain", "msu_abs_gain_lo",
            "msu_abs_gain_hi", "robust_abs_gain", "both_defended_abs_gain", "psnr_def_adv", "ssim_def_adv",
            "purified_quality", "srocc_clean", "srocc_def_clean", "srocc_def_adv", "plcc_clean", "plcc_def_clean",
            "seconds_def_adv", "robustness_R", "cert_width", "cert_delta_norm", "abstain_rate", "adaptive_attack",
            "eot_samples"]


def write_tables(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    run_dir = Path(run_dir)
    records = load_records(run_dir)
    summary = summarize(records)
    summary = summary[[c for c in HEADLINE if c in summary] + [c for c in summary if c not in HEADLINE]]
    atomic_write_text(run_dir / "records.csv", records.to_csv(index=False))
    atomic_write_text(run_dir / "summary.csv", summary.to_csv(index=False))
    shown = summary[[c for c in HEADLINE if c in summary]]
    atomic_write_text(run_dir / "summary.md", shown.to_markdown(index=False, floatfmt=".4g") + "\n")
    if importlib.util.find_spec("pyarrow"):
        records.to_parquet(run_dir / "records.parquet.tmp", index=False)
        (run_dir / "records.parquet.tmp").replace(run_dir / "records.parquet")
        summary.to_parquet(run_dir / "summary.parquet.tmp", index=False)
        (run_dir / "summary.parquet.tmp").replace(run_dir / "summary.parquet")
    return records, summary
