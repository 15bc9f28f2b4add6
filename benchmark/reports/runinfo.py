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
        from ..errors import ConfigError
        from ..registry import REGISTRIES, load_builtin_plugins

        load_builtin_plugins()
        for e in missing:
            try:
                cls = REGISTRIES["defenses"].get(e["name"])
            except ConfigError:  # a plugin file not loaded here: not a baseline
                labels[e["label"]] = False
            else:
                labels[e["label"]] = bool(cls.baseline)  # declared by every defense (Defense.baseline)
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


def measures_link(name: str = MEASURES_DOC) -> dict:
    """A project document named in a page. The page links only inside itself (and, from a leaderboard, to run
    reports beside it), so that it can be copied and shared: documents are named, not linked by a path of the
    machine that wrote the page."""
    return {"text": name, "href": None}


def provenance_text(manifest: dict) -> dict:
    """The provenance line of a page: commit, the device (GPU name or CPU model), torch and CUDA versions, time."""
    versions = manifest.get("versions") or {}
    torch_v = manifest.get("torch") or versions.get("torch")
    cuda = manifest.get("cuda_version")
    return {"git_commit": manifest.get("git_commit"), "device": manifest.get("device"),
            "device_name": manifest.get("device_name"), "torch": torch_v,
            "cuda": cuda if cuda else ("none (CPU build)" if "cuda_version" in manifest else None),
            "written": manifest.get("written")}


def attack_directions(manifest: dict) -> dict[str, float]:
    """Attack label -> its direction d (+1: raise predicted quality, the default; −1: ``direction = "decrease"``),
    from the manifest's resolved parameters."""
    out = {}
    for e in (manifest.get("plugins") or {}).get("attacks", []):
        direction = (e.get("resolved_params") or {}).get("direction", "increase")
        out[e["label"]] = -1.0 if direction == "decrease" else 1.0
    return out


def attach_direction(records: pd.DataFrame, run_dir: Path, manifest: dict | None = None) -> pd.DataFrame:
    """``records`` with ``attack_direction`` (d) per row, for the verdict measures (docs/measures.md)."""
    if records.empty or "attack" not in records:
        return records
    d = attack_directions(manifest if manifest is not None else load_manifest(run_dir))
    records["attack_direction"] = records["attack"].map(d).fillna(1.0).astype(float)
    return records
