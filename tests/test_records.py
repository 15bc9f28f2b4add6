"""load_records on a hand-made run whose stages store different columns (a smoothing defense's certificate and
abstention next to a plain defense's): the table is what joining each cell's stages and concatenating the cells
gives, with each column's dtype the common type of the stages' dtypes, and its columns in the cells' order."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from benchmark.records import load_records
from benchmark.store import RunStore

IMAGES = ("a.png", "b.png")


def stage(store: RunStore, kind: str, key: str, records: list[dict], **meta) -> None:
    """One stored stage of ``kind`` with these per-image records."""
    store.save(kind, key, {"records": records, **meta})


def make_run(root: Path) -> Path:
    """Three complete cells (plain, smoothed, plain again: the smoothed stages sit between the plain ones) and a
    fourth whose def_adv stage is missing. Per def_adv stage, besides the scores: ``queries`` int in the plain
    stages and float in the smoothed one, ``flag`` bool then int, ``note`` None then a string, ``count`` int in
    all; certificate and abstention columns in the smoothed stages only."""
    store = RunStore(root)
    stage(store, "clean", "c", [{"image_id": i, "score": 50.0 + n, "mos": 40.0 + n} for n, i in enumerate(IMAGES)],
          metric_meta={"lower_better": False, "range_lo": 0.0, "range_hi": 100.0})
    stage(store, "attack", "a", [{"image_id": i, "score_adv": 60.0 + n} for n, i in enumerate(IMAGES)],
          attack_meta={"adaptive": False, "budget": 4, "threat_model": "linf"})
    plain = {"stochastic": False}
    smooth = {"stochastic": True, "baseline": False, "changes_geometry": False}
    for d, meta in (("p1", plain), ("s", smooth), ("p2", plain), ("p3", plain)):
        extra = [{"cert_lo_clean": 1.5 + n, "abstain_clean": n == 1} for n in range(2)] if d == "s" else [{}, {}]
        stage(store, "def_clean", f"dc-{d}", [{"image_id": i, "score_def": 45.0 + n, **extra[n]}
                                              for n, i in enumerate(IMAGES)], defense_meta=meta)
    for d in ("p1", "p2"):
        stage(store, "def_adv", f"da-{d}", [{"image_id": i, "score_adv_def": 55.0 + n, "queries": 10 + n,
                                             "flag": n == 0, "note": None, "count": n} for n, i in enumerate(IMAGES)],
              defense_meta=plain)
    stage(store, "def_adv", "da-s", [{"image_id": i, "cert_lo_adv": 2.5 + n, "score_adv_def": 57.0 + n,
                                      "abstain_adv": n == 0, "queries": 0.5 + n, "flag": 7 + n, "note": "cert",
                                      "count": 3 + n} for n, i in enumerate(IMAGES)], defense_meta=smooth)
    cells = [{"dataset": "ds", "metric": "m", "attack": "fgsm", "defense": d,
              "keys": {"clean": "c", "attack": "a", "def_clean": f"dc-{d}", "def_adv": f"da-{d}"}}
             for d in ("p1", "s", "p2", "p3")]
    (root / "cells.json").write_text(json.dumps(cells))
    return root


@pytest.fixture()
def table(tmp_path) -> pd.DataFrame:
    return load_records(make_run(tmp_path / "run"))


def test_rows_follow_the_cells_and_a_cell_with_a_missing_stage_is_left_out(table):
    assert list(table["defense"]) == ["p1", "p1", "s", "s", "p2", "p2"]
    assert list(table["image_id"]) == list(IMAGES) * 3
    assert list(table["score_adv_def"]) == [55.0, 56.0, 57.0, 58.0, 55.0, 56.0]
    assert table.index.equals(pd.RangeIndex(6))


def test_columns_keep_the_cells_order_with_columns_of_later_stages_after(table):
    """The lead columns, then the first cell's stage columns (as stored: keys sorted) and its labels and
    metadata, then the columns only the smoothed cell's stages have."""
    assert list(table.columns) == [
        "dataset", "metric", "attack", "defense", "image_id", "mos", "score", "score_adv", "score_def",
        "score_adv_def", "count", "flag", "note", "queries", "lower_better", "range_lo", "range_hi",
        "mos_lower_better", "adaptive_attack", "budget", "threat_model", "budget_unit", "eot_samples",
        "defense_stochastic", "defense_baseline", "defense_changes_geometry", "abstain_clean", "cert_lo_clean",
        "abstain_adv", "cert_lo_adv"]


def test_mixed_stage_columns_get_the_common_type_of_the_stages_dtypes(table):
    """Each stage's dtype, then their common type: not the type inferred from all the values at once (which
    would make ``note`` str with NaN, ``flag`` object with bools, ``abstain_adv`` as it is)."""
    dtypes = table.dtypes
    assert dtypes["queries"] == "float64" and list(table["queries"]) == [10.0, 11.0, 0.5, 1.5, 10.0, 11.0]
    assert dtypes["flag"] == "int64" and list(table["flag"]) == [1, 0, 7, 8, 1, 0]
    assert dtypes["count"] == "int64" and list(table["count"]) == [0, 1, 3, 4, 0, 1]
    assert dtypes["note"] == object and list(table["note"]) == [None, None, "cert", "cert", None, None]
    assert dtypes["cert_lo_adv"] == "float64" and dtypes["cert_lo_clean"] == "float64"
    assert list(table["cert_lo_adv"].fillna(-1.0)) == [-1.0, -1.0, 2.5, 3.5, -1.0, -1.0]
    for col, values in (("abstain_adv", [True, False]), ("abstain_clean", [False, True])):
        assert dtypes[col] == object
        got = list(table[col])
        assert got[2:4] == values and all(type(v) is bool for v in got[2:4])
        assert all(isinstance(v, float) and math.isnan(v) for v in got[:2] + got[4:])
    assert dtypes["score_adv_def"] == "float64" and dtypes["defense_stochastic"] == bool


def test_integers_beyond_int64_keep_each_stages_dtype(tmp_path):
    """Two plain stages, one of integers past int64 (uint64) and one of small integers (int64), and a smoothed
    stage of integers past int64: float64, as their frames' concatenation gives, not the uint64 that the
    plain stages' values read at once would give next to the smoothed one's."""
    root = make_run(tmp_path / "run")
    store = RunStore(root)
    for key, count in (("da-p1", 2**63), ("da-p2", 5), ("da-s", 2**63 + 1)):
        rec = store.load("def_adv", key)
        for r in rec["records"]:
            r["count"] = count
        store.save("def_adv", key, {k: v for k, v in rec.items() if k not in ("key", "kind")})
    table = load_records(root)
    assert table.dtypes["count"] == "float64"
    assert list(table["count"]) == [2.0**63] * 4 + [5.0, 5.0]
