"""The numpy paths of the summary give the same bits as the pandas and scipy calls they replace."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmark.correlation import bootstrap_ci, kendall, spearman
from benchmark.measures import CellColumns, nan_mean, record_means, summarize_cell


def bits(v) -> np.ndarray:
    return np.asarray(v, np.float64).view(np.int64)


def samples(seed: int = 0):
    """Vectors with ties, negative zeros, constant stretches and various lengths."""
    rng = np.random.default_rng(seed)
    for i in range(300):
        n = int(rng.integers(0, 40)) if i % 50 else int(rng.integers(200, 600))
        x = np.round(rng.normal(size=n), int(rng.integers(0, 3)))
        y = (-x if i % 2 else x) + np.round(rng.normal(size=n), 1) * rng.random()
        if i % 7 == 0 and n:
            x[rng.random(n) < 0.3] = -0.0
        yield x, y


@pytest.mark.filterwarnings("ignore:invalid value encountered")   # inf - inf, in pandas' mean as well
def test_nan_mean_is_the_series_mean_bit_for_bit():
    rng = np.random.default_rng(1)
    for n in (1, 2, 7, 8, 9, 20, 129, 5000):
        for frac in (0.0, 0.1, 0.5, 1.0):
            v = rng.normal(10, 5, n)
            v[rng.random(n) < frac] = np.nan
            assert bits(nan_mean(v)) == bits(float(pd.Series(v).mean()))
    for v in ([np.inf, 1.0], [np.inf, -np.inf, 1.0], [np.nan, np.inf], [-0.0], [np.nan]):
        assert bits(nan_mean(np.array(v))) == bits(float(pd.Series(v, dtype=float).mean()))


def test_kendall_is_scipys_tau_b_bit_for_bit():
    for x, y in samples():
        if len(x) >= 2 and np.ptp(x) > 0 and np.ptp(y) > 0:
            assert bits(kendall(x, y)) == bits(float(stats.kendalltau(x, y)[0]))
    assert np.isnan(kendall([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


def test_spearman_ranks_are_scipys_average_ranks():
    for x, y in samples(2):
        if len(x) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
            assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    x = np.array([1.0, 2.0, 2.0, 3.0, 5.0, 5.0, 5.0])   # ties: the ranks of an exact rank correlation
    assert spearman(x, -x) == -1.0
    lo, hi = bootstrap_ci(np.arange(12.0), np.arange(12.0) ** 2, n_boot=50)
    assert lo == hi == 1.0


def test_cell_columns_read_as_the_frame_does():
    g = pd.DataFrame({"score": [1.0, np.nan, 3.0], "flag": [True, False, True], "level": [1, 2, 4],
                      "label": ["a", "b", "c"], "loose": pd.Series([1.5, None, 2.5], dtype=object)})
    cell = CellColumns(g)
    assert "label" in cell and "missing" not in cell
    for col in ("score", "level", "loose"):
        assert bits(cell.values(col)).tolist() == bits(g[col].to_numpy(float)).tolist()
        assert bits(cell.mean(col)) == bits(float(g[col].mean()))
        assert cell.any_value(col) == bool(g[col].notna().any())
    for col in ("score", "flag", "level", "label"):
        assert cell.first(col) == g[col].iloc[0] and type(cell.first(col)) is type(g[col].iloc[0])
    assert record_means(pd.DataFrame({"psnr_attack": [30.0, np.nan, 40.0]})) == {"psnr_attack": 35.0}


def test_a_cell_reads_the_same_from_float_and_object_columns():
    rng = np.random.default_rng(3)
    n = 12
    g = pd.DataFrame({"image_id": [f"i{i}" for i in range(n)], "score": rng.uniform(0, 100, n),
                      "score_adv": rng.uniform(0, 100, n), "score_def": rng.uniform(0, 100, n),
                      "score_adv_def": rng.uniform(0, 100, n), "mos": rng.uniform(1, 5, n),
                      "range_lo": 0.0, "range_hi": 100.0, "lower_better": True,
                      "psnr_attack": rng.uniform(30, 40, n)})
    g.loc[3, "score_adv"] = np.nan
    as_objects = g.astype({c: object for c in ("score", "mos", "range_hi", "psnr_attack", "lower_better")})
    a, b = summarize_cell(g), summarize_cell(as_objects)
    assert list(a) == list(b)
    for k in a:
        assert type(a[k]) is type(b[k]) and (bits(a[k]) == bits(b[k]) if isinstance(a[k], float) else a[k] == b[k])
