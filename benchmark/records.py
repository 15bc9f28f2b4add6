"""The per-image long table, assembled from the stored stages of a run (the single source of truth)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .schema import CELL, RECORD_LEAD
from .store import RunStore

ORDER = RECORD_LEAD   # the cell, the image and its four scores first; the other columns as the stages stored them


def _frame(store: RunStore, kind: str, key: str) -> tuple[pd.DataFrame, dict] | None:
    if not store.has(kind, key):
        return None
    rec = store.load(kind, key)
    return pd.DataFrame(rec["records"]), rec


def load_records(run_dir: Path) -> pd.DataFrame:
    """One row per (dataset, metric, attack, defense, image) for every complete cell of the run."""
    store = RunStore(run_dir)
    cells_file = Path(run_dir) / "cells.json"
    if not cells_file.is_file():
        raise FileNotFoundError(f"{cells_file} not found: not a run directory")
    frames = []
    loaded: dict[tuple[str, str], tuple[pd.DataFrame, dict] | None] = {}  # clean/attack stages are shared by cells
    for cell in json.loads(cells_file.read_text()):
        keys = cell["keys"]
        for k in ("clean", "attack", "def_clean", "def_adv"):
            if (k, keys[k]) not in loaded:
                loaded[(k, keys[k])] = _frame(store, k, keys[k])
        parts = [loaded[(k, keys[k])] for k in ("clean", "attack", "def_clean", "def_adv")]
        if any(p is None for p in parts):
            continue
        (clean, crec), (att, arec), (dc, drec), (da, _) = parts
        df = clean.merge(att, on="image_id").merge(dc, on="image_id").merge(da, on="image_id")
        for col in CELL:
            df[col] = cell[col]
        meta = crec["metric_meta"]
        df["lower_better"], df["range_lo"], df["range_hi"] = meta["lower_better"], meta["range_lo"], meta["range_hi"]
        # the subjective scale's direction (docs/measures.md#correlation-with-subjective-scores); clean stages stored before it was recorded: higher is better
        df["mos_lower_better"] = bool(crec.get("mos_lower_better", False))
        df["adaptive_attack"] = bool(arec["attack_meta"]["adaptive"])
        df["budget"] = arec["attack_meta"]["budget"]
        df["threat_model"] = arec["attack_meta"]["threat_model"]
        df["budget_unit"] = arec["attack_meta"].get("budget_unit", "")  # stages stored before it was recorded: ""
        df["eot_samples"] = arec["attack_meta"].get("eot_samples", 0)
        df["defense_stochastic"] = bool(drec["defense_meta"]["stochastic"])
        # declared capabilities (stages stored before they were recorded: False)
        df["defense_baseline"] = bool(drec["defense_meta"].get("baseline", False))
        df["defense_changes_geometry"] = bool(drec["defense_meta"].get("changes_geometry", False))
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=ORDER)
    df = pd.concat(frames, ignore_index=True)
    return df[ORDER + [c for c in df.columns if c not in ORDER]]
