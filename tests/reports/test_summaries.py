"""Per-cell summaries kept between reports (benchmark/reports/summaries.py): the frame is exactly the one
``summarize`` computes, whether its rows are computed, read back, or both; only the cells whose records (or the
code) changed are computed again; a damaged cache is recomputed."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from benchmark.measures import summarize
from benchmark.reports import summaries
from benchmark.reports.summaries import CACHE, cell_summaries


def _records(n: int = 8, seed: int = 0) -> pd.DataFrame:
    """Two attacks × three defenses on one (dataset, metric), with MOS, a lower-is-better metric, and a smoothing
    defense whose certificate columns the other cells lack (NaN there)."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(20, 80, n)
    mos = s + rng.normal(0, 5, n)
    rows = []
    for a, gain in (("fgsm", 3.0), ("pgd", 6.0)):
        for d in ("identity", "jpeg", "smooth"):
            shift = rng.normal(gain, 1.0, n)
            sd = s + (0 if d == "identity" else rng.normal(0, 1, n))
            for i in range(n):
                row = {"dataset": "ds", "metric": "m", "attack": a, "defense": d, "image_id": f"img{i}.png",
                       "score": s[i], "score_adv": s[i] - shift[i], "score_def": sd[i],
                       "score_adv_def": sd[i] - shift[i] * (1.0 if d == "identity" else 0.3), "mos": mos[i],
                       "range_lo": 0.0, "range_hi": 100.0, "lower_better": True, "mos_lower_better": False,
                       "adaptive_attack": False, "budget": 4 / 255, "threat_model": "linf", "eot_samples": 0,
                       "psnr_def_adv": 30.0 + i, "ssim_def_adv": 0.9, "psnr_skimage_def_adv": 31.0 + i,
                       "ssim_skimage_def_adv": 0.91, "seconds_def_adv": 0.01}
                if d == "smooth":
                    row.update(abstain_clean=i == 0, cert_lo_clean=sd[i] - 2, cert_hi_clean=sd[i] + 2,
                               cert_delta_clean=2.0, cert_radius_clean=0.25)
                rows.append(row)
    return pd.DataFrame(rows)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert a.dtypes.equals(b.dtypes)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def _counting(monkeypatch) -> list[tuple]:
    """The cells whose summary rows are computed from now on."""
    computed: list[tuple] = []
    real = summaries.summary_rows

    def rows(records):
        for cell, row in real(records):
            computed.append(cell)
            yield cell, row

    monkeypatch.setattr(summaries, "summary_rows", rows)
    return computed


def test_rows_computed_read_back_or_both_give_summarize_s_frame(tmp_path, monkeypatch):
    records = _records()
    ref = summarize(records)
    computed = _counting(monkeypatch)
    _same(cell_summaries(records, tmp_path), ref)
    assert len(computed) == 6 and (tmp_path / CACHE).is_file()
    _same(cell_summaries(records, tmp_path), ref)   # every row read back: nothing computed
    assert len(computed) == 6
    stored = json.loads((tmp_path / CACHE).read_text())
    stored["rows"] = dict(list(stored["rows"].items())[::2])   # half of them lost
    (tmp_path / CACHE).write_text(json.dumps(stored))
    _same(cell_summaries(records, tmp_path), ref)
    assert len(computed) == 9


def test_only_the_changed_cell_is_computed_again(tmp_path, monkeypatch):
    records = _records()
    cell_summaries(records, tmp_path)
    computed = _counting(monkeypatch)
    changed = records.copy()
    changed.loc[(changed["attack"] == "pgd") & (changed["defense"] == "jpeg") & (changed["image_id"] == "img3.png"),
                "score_adv_def"] += 1.0
    got = cell_summaries(changed, tmp_path)
    assert computed == [("ds", "m", "pgd", "jpeg")]
    _same(got, summarize(changed))
    # a new column anywhere (it is NaN in the other cells, and the measures look at which columns exist), or new
    # code, computes every cell
    cell_summaries(changed.assign(l2_attack=0.5), tmp_path)
    assert len(computed) == 7
    monkeypatch.setattr(summaries, "code_fingerprint", lambda: "another version")
    cell_summaries(changed.assign(l2_attack=0.5), tmp_path)
    assert len(computed) == 13


@pytest.mark.parametrize("damage", ["not json {", json.dumps({"version": 0, "rows": {}}), json.dumps([1, 2])])
def test_a_damaged_or_older_cache_is_recomputed_and_replaced(tmp_path, damage):
    records = _records()
    (tmp_path / CACHE).parent.mkdir(parents=True)
    (tmp_path / CACHE).write_text(damage)
    _same(cell_summaries(records, tmp_path), summarize(records))
    assert len(json.loads((tmp_path / CACHE).read_text())["rows"]) == 6


def test_store_false_writes_nothing(tmp_path):
    records = _records()
    _same(cell_summaries(records, tmp_path, store=False), summarize(records))
    assert not (tmp_path / "cache").exists()
