"""The per-image long table, assembled from the stored stages of a run (the single source of truth)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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


INT64 = (-2**63, 2**63 - 1)  # the integers a frame holds as int64; others make pandas infer uint64 or object


def _stage_frame(kind: str, key: str, rec: dict) -> pd.DataFrame:
    """One stage's records as a frame, with its key as column ``_<kind>``."""
    return pd.DataFrame(rec["records"]).assign(**{f"_{kind}": key})


def _signature(rec: dict) -> frozenset:
    """What decides the dtypes pandas infers for a stage's records (with integers in int64's range): each
    record's keys with the types of their values. Stages with equal signatures get the same columns and dtypes."""
    rows = rec["records"]
    return frozenset(zip(map(tuple, rows), [tuple(map(type, r.values())) for r in rows]))


def _has_wide_int(frame: pd.DataFrame) -> bool:
    """Whether a column holds an integer outside int64 (uint64 or object): a stage's dtype can then depend on
    its values, not on its signature alone."""
    return any(frame[c].dtype.kind == "u" or (frame[c].dtype == object and any(
        type(v) is int and not INT64[0] <= v <= INT64[1] for v in frame[c])) for c in frame.columns)


def _group_frame(kind: str, stages: list[tuple[str, dict]]) -> pd.DataFrame:
    """The records of stages of one signature, in their order, as one frame: the frame each of them gives,
    concatenated (same columns, same dtypes), built at once."""
    rows: list[dict] = []
    keys: list[str] = []
    for key, rec in stages:
        rows += rec["records"]
        keys += [key] * len(rec["records"])
    if not rows:  # stages without records: as their own frames are (no columns but the key)
        return _stage_frame(kind, *stages[0])
    frame = pd.DataFrame(rows)
    frame[f"_{kind}"] = keys
    return frame


def _in_order(frame: pd.DataFrame, positions: list[list[int]]) -> pd.DataFrame:
    """The rows of ``frame`` (the groups' rows, one group after another) taken back into the stages' order:
    ``positions`` gives each group's rows' places there."""
    where = np.concatenate([np.asarray(p, dtype=np.intp) for p in positions])
    order = np.empty(len(where), dtype=np.intp)
    order[where] = np.arange(len(where))
    return frame.take(order).reset_index(drop=True)


def _kind_frame(kind: str, stages: list[tuple[str, dict]]) -> pd.DataFrame:
    """The per-image records of one kind's stages, in their order, with the stage's key as column ``_<kind>``:
    exactly ``pd.concat`` of one frame per stage (rows, dtypes, values).

    Building 30,000 small frames took most of the time on a study-sized run, so the stages are grouped by
    :func:`_signature` and each group built as one frame. ``pd.concat`` gives each column the common type of the
    stages' dtypes (bool and int64 make int64, an all-None column next to floats keeps it object, a stage
    without the column adds NaN), which depends only on the set of those dtypes: concatenating the groups'
    frames gives the same columns, and taking the rows back into the stages' order the same frame.
    Integers outside int64 (not expected in stage records) fall back to one frame per stage.
    """
    groups: dict[frozenset, list[tuple[str, dict]]] = {}
    positions: dict[frozenset, list[int]] = {}
    n = 0
    for key, rec in stages:
        sig = _signature(rec)
        groups.setdefault(sig, []).append((key, rec))
        positions.setdefault(sig, []).extend(range(n, n + len(rec["records"])))
        n += len(rec["records"])
    frames = [_group_frame(kind, g) for g in groups.values()]
    if any(_has_wide_int(f) for f in frames):
        return pd.concat([_stage_frame(kind, key, rec) for key, rec in stages], ignore_index=True)
    if len(frames) == 1:
        return frames[0]
    return _in_order(pd.concat(frames, ignore_index=True), list(positions.values()))


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
    frames = {k: _kind_frame(k, [(key, rec) for (kind, key), rec in records.items()
                                 if kind == k and (kind, key) in used]) for k in KINDS}
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


def cells_of(records: pd.DataFrame, cells) -> pd.DataFrame:
    """The rows of ``records`` whose (dataset, metric, attack, defense) is one of ``cells`` (tuples, or a frame
    with those columns)."""
    key = list(CELL)
    wanted = pd.MultiIndex.from_frame(cells[key].astype(object)) if isinstance(cells, pd.DataFrame) \
        else pd.MultiIndex.from_tuples(list(cells), names=key)
    return records[pd.MultiIndex.from_frame(records[key].astype(object)).isin(wanted)]
