"""The per-image long table, assembled from the stored stages of a run (the single source of truth)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .schema import CELL, RECORD_LEAD
from .store import RunStore

ORDER = RECORD_LEAD   # the cell, the image and its four scores first; the other columns as the stages stored them


KINDS = ("clean", "attack", "def_clean", "def_adv")


def _meta(crec: dict, arec: dict, drec: dict) -> dict:
    """The per-cell columns the stage records' metadata gives (older records lack some: their defaults)."""
    meta, am, dm = crec["metric_meta"], arec["attack_meta"], drec["defense_meta"]
    return {"lower_better": meta["lower_better"], "range_lo": meta["range_lo"], "range_hi": meta["range_hi"],
            # the subjective scale's direction (docs/measures.md#correlation-with-subjective-scores); clean
            # stages stored before it was recorded: higher is better
            "mos_lower_better": bool(crec.get("mos_lower_better", False)),
            "adaptive_attack": bool(am["adaptive"]), "budget": am["budget"], "threat_model": am["threat_model"],
            "budget_unit": am.get("budget_unit", ""),  # stages stored before it was recorded: ""
            "eot_samples": am.get("eot_samples", 0), "defense_stochastic": bool(dm["stochastic"]),
            # declared capabilities (stages stored before they were recorded: False)
            "defense_baseline": bool(dm.get("baseline", False)),
            "defense_changes_geometry": bool(dm.get("changes_geometry", False))}


def load_records(run_dir: Path) -> pd.DataFrame:
    """One row per (dataset, metric, attack, defense, image) for every complete cell of the run: the cell's
    clean, attack, def_clean and def_adv records joined on the image id, in cells.json's order. Each stored stage
    is read once and each kind joined once for all cells (a 10,000-cell run is four merges, not 30,000)."""
    store = RunStore(run_dir)
    cells_file = Path(run_dir) / "cells.json"
    if not cells_file.is_file():
        raise FileNotFoundError(f"{cells_file} not found: not a run directory")
    records: dict[tuple[str, str], dict | None] = {}  # clean and attack stages are shared by cells
    cells = []
    for cell in json.loads(cells_file.read_text()):
        keys = cell["keys"]
        for k in KINDS:
            if (k, keys[k]) not in records:
                records[(k, keys[k])] = store.load(k, keys[k]) if store.has(k, keys[k]) else None
        recs = [records[(k, keys[k])] for k in KINDS]
        if any(r is None for r in recs):
            continue
        cells.append({**{f"_{k}": keys[k] for k in KINDS}, **{c: cell[c] for c in CELL}, **_meta(*recs[:3])})
    if not cells:
        return pd.DataFrame(columns=ORDER)
    used = {(k, c[f"_{k}"]) for c in cells for k in KINDS}
    frames = {k: pd.concat([pd.DataFrame(rec["records"]).assign(**{f"_{k}": key})
                            for (kind, key), rec in records.items() if kind == k and (kind, key) in used],
                           ignore_index=True) for k in KINDS}
    df = pd.DataFrame(cells).merge(frames["clean"], on="_clean")
    for k in KINDS[1:]:
        df = df.merge(frames[k], on=[f"_{k}", "image_id"])
    # the columns in the order a cell-by-cell join and concatenation gives them: each cell's stage columns, then
    # its labels and metadata; a column first met in a later cell after those (then the lead ones first)
    own = {rk: list(rec["records"][0]) if rec and rec["records"] else [] for rk, rec in records.items()}
    tail = [c for c in cells[0] if not c.startswith("_")]
    cols: dict[str, None] = {}
    for c in cells:
        for k in KINDS:
            cols.update(dict.fromkeys(own[(k, c[f"_{k}"])]))
        cols.update(dict.fromkeys(tail))
    df = df[[c for c in cols if c in df.columns]].reset_index(drop=True)
    return df[ORDER + [c for c in df.columns if c not in ORDER]]
