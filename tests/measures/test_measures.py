from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmark.measures import absolute_gain, correlation, mean_ci, msu_normalized_gains, relative_gain, summarize


def test_gains_closed_form():
    s, sa = np.array([10.0, 20.0, 30.0]), np.array([15.0, 20.0, 45.0])
    assert absolute_gain(s, sa, r=100) == pytest.approx((5 + 0 + 15) / 3 / 100)
    assert relative_gain(s, sa) == pytest.approx(np.mean([5 / 10, 0, 15 / 30]), rel=1e-5)


def test_msu_normalized_gain_and_t_interval():
    s, sa = np.array([0.0, 5.0, 10.0]), np.array([2.0, 6.0, 13.0])
    g = msu_normalized_gains(s, sa, sign=1)
    norm = (sa - s) / 10.0
    assert g["msu_abs_gain"] == pytest.approx(norm.mean())
    lo, hi = stats.t.interval(0.95, 2, loc=norm.mean(), scale=stats.sem(norm))
    assert (g["msu_abs_gain_lo"], g["msu_abs_gain_hi"]) == pytest.approx((lo, hi))
    rel = (sa - s) / 10.0 / (s / 10.0 + 1)
    assert g["msu_rel_gain"] == pytest.approx(rel.mean())
    assert msu_normalized_gains(s, sa, sign=-1)["msu_abs_gain"] == pytest.approx(-norm.mean())


def test_correlation_in_the_model_direction_for_lower_better():
    x = np.arange(10.0)
    assert correlation(x, -x, lower_better=True)["srocc"] == pytest.approx(1.0)
    assert correlation(x, x, lower_better=True)["srocc"] == pytest.approx(-1.0)
    assert correlation(x, -x)["srocc"] == pytest.approx(-1.0)
    assert np.isnan(correlation(x[:2], x[:2])["srocc"])


def test_mean_ci_degenerate():
    assert mean_ci(np.array([1.0, 1.0])) == (1.0, 1.0, 1.0)


def test_summarize_one_cell():
    df = pd.DataFrame({"dataset": "d", "metric": "m", "attack": "a", "defense": "x", "image_id": list("abcd"),
                       "score": [50.0, 60, 70, 80], "score_adv": [60.0, 70, 80, 90], "score_def": [50.0, 60, 70, 80],
                       "score_adv_def": [52.0, 62, 72, 82], "mos": [1.0, 2, 3, 4], "lower_better": False,
                       "range_lo": 0.0, "range_hi": 100.0, "psnr_skimage_def_adv": 40.0,
                       "ssim_skimage_def_adv": 0.9})
    row = summarize(df).iloc[0]
    assert row["abs_gain"] == pytest.approx(0.10)
    assert row["robust_abs_gain"] == pytest.approx(0.02)
    assert row["srocc_clean"] == pytest.approx(1.0)
    assert row["purified_quality"] == pytest.approx(0.5 * (0.9 + 0.5))
    assert row["similarity"] == pytest.approx(0.9 + 1.0)


def test_robustness_score_range_and_distribution_shift():
    from benchmark.measures import distribution_shift, robustness_score_range

    s, sa = np.array([20.0, 50.0, 90.0]), np.array([30.0, 50.0, 95.0])
    # Zhang's R on the declared range [0, 100]: 1e-6 of the range added to |s' - s|
    expected = np.mean(np.log10([80 / (10 + 1e-4), 50 / 1e-4, 90 / (5 + 1e-4)]))
    assert robustness_score_range(s, sa, 0.0, 100.0) == pytest.approx(expected, rel=1e-12)
    d = distribution_shift(s, sa)
    ns, na = (s - 20) / 70, (sa - 20) / 70
    assert d["wasserstein_score"] == pytest.approx(stats.wasserstein_distance(ns, na))
    assert d["energy_score"] == pytest.approx(stats.energy_distance(ns, na))
    assert distribution_shift(sa, s)["wasserstein_score"] < 0
