"""What the pages read about a run besides its records: the manifest, the defenses' declared capabilities
(``baseline``: the undefended reference, never ranked) and where the measures document lives."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from ..schema import MEASURES_DOC
from ..store import RunStore

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def load_manifest(run_dir: Path) -> dict:
    p = Path(run_dir) / "manifest.json"
    try:
        return json.loads(p.read_text()) if p.is_file() else {}
    except ValueError:
        log.warning("%s is not valid JSON; provenance left out", p)
        return {}


def baseline_defenses(run_dir: Path, manifest: dict) -> set[str]:
    """Labels of the defenses that declare ``baseline = True``: from the stored defense metadata, and for
    stages stored before it was recorded, from the registered class's attribute (never from a name)."""
    labels: dict[str, bool] = {}
    for rec in RunStore(run_dir).planned_stages("def_clean"):
        meta = rec.get("defense_meta") or {}
        if "baseline" in meta and rec.get("defense") is not None:
            labels[rec["defense"]] = labels.get(rec["defense"], False) or bool(meta["baseline"])
    missing = [e for e in (manifest.get("plugins") or {}).get("defenses", []) if e.get("label") not in labels]
    if missing:
        from ..registry import REGISTRIES, load_builtin_plugins

        load_builtin_plugins()
        for e in missing:
            try:
                labels[e["label"]] = bool(getattr(REGISTRIES["defenses"].get(e["name"]), "baseline", False))
            except Exception:  # a plugin file not loaded here: not a baseline
                labels[e["label"]] = False
    return {k for k, v in labels.items() if v}


def attach_baseline(summary: pd.DataFrame, records: pd.DataFrame | None, run_dir: Path, manifest: dict
                    ) -> pd.DataFrame:
    """``summary`` with a boolean ``defense_baseline`` column: true where the records say so or the stored
    defense metadata (the class attribute, for stages stored before it was recorded) does."""
    if summary.empty:
        return summary
    base = baseline_defenses(run_dir, manifest)
    for frame in (records, summary):
        if frame is not None and "defense_baseline" in frame and len(frame):
            base |= set(frame.loc[frame["defense_baseline"].fillna(False).astype(bool), "defense"])
    return summary.assign(defense_baseline=summary["defense"].isin(base))


ALIGNED_MEANS = ("psnr_def_adv_aligned", "ssim_def_adv_aligned", "psnr_def_clean_aligned", "ssim_def_clean_aligned")


def complete_summary(summary: pd.DataFrame, records: pd.DataFrame, run_dir: Path) -> pd.DataFrame:
    """The pages' columns a summary may lack: ``defense_baseline`` and the cell means of the aligned PSNR/SSIM
    (the "damages more than the attack" flag compares them with PSNR(x, x'))."""
    if summary.empty:
        return summary
    summary = attach_baseline(summary, records, run_dir, load_manifest(run_dir))
    missing = [c for c in ALIGNED_MEANS if c in records and c not in summary]
    if missing:
        means = records.groupby(["dataset", "metric", "attack", "defense"], sort=False)[missing].mean().reset_index()
        summary = summary.merge(means, on=["dataset", "metric", "attack", "defense"], how="left")
    return summary


def doc_href(name: str) -> str | None:
    """``file://`` address of a document of the project checkout (docs/...), when it is there."""
    p = PROJECT_ROOT / name
    return p.as_uri() if p.is_file() else None


def measures_link() -> dict:
    return {"text": MEASURES_DOC, "href": doc_href(MEASURES_DOC)}
