"""The MSU / Guardians measures against values worked out by hand from the published formulas.

Five images, clean scores s and attacked scores s'. MSU scaling (min–max on the clean scores, min 20,
max 90, span 70): ŝ = [0, 30, 70, 15, 50]/70, ŝ' = [10, 30, 75, 40, 52]/70, ŝ' - ŝ = [10, 0, 5, 25, 2]/70.
The formulas are those of msu-video-group/MSU_Metrics_Robustness_Benchmark,
robustness_benchmark/score_methods.py, and of the Guardians code (adversarial-defenses-for-iqa,
metrics/defences/utils/defence_scoring_methods.py); docs/measures.md lists them.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmark.measures import (
    distribution_shift,
    msu_normalized_gains,
    relative_gain,
    robustness_score,
    robustness_score_range,
    summarize,
)

S = np.array([20.0, 50.0, 90.0, 35.0, 70.0])
SA = np.array([30.0, 50.0, 95.0, 60.0, 72.0])
S_HAT = np.array([0, 30, 70, 15, 50]) / 70
D_HAT = np.array([10, 0, 5, 25, 2]) / 70          # ŝ' - ŝ


def test_normalised_absolute_and_relative_gain():
    g = msu_normalized_gains(S, SA, sign=1)
    assert g["msu_abs_gain"] == pytest.approx(42 / 70 / 5, rel=1e-12)                    # 0.12
    rel = [10 / 70, 0, (5 / 70) / 2, 25 / 85, 2 / 120]                                    # (ŝ'-ŝ)/(ŝ+1)
    assert g["msu_rel_gain"] == pytest.approx(sum(rel) / 5, rel=1e-12)                   # 0.0978711...
    assert g["msu_rel_gain"] == pytest.approx(0.0978711484593838, rel=1e-12)
    lo, hi = stats.t.interval(0.95, 4, loc=0.12, scale=np.std(D_HAT, ddof=1) / math.sqrt(5))
    assert (g["msu_abs_gain_lo"], g["msu_abs_gain_hi"]) == pytest.approx((lo, hi), rel=1e-12)
    # a lower-is-better metric: the same score movement lowered predicted quality
    assert msu_normalized_gains(S, SA, sign=-1)["msu_abs_gain"] == pytest.approx(-0.12, rel=1e-12)


def test_robustness_R_is_the_msu_definition_and_the_range_variant_is_kept():
    numer = np.maximum(1 - S_HAT, S_HAT)                    # [1, 40/70, 1, 55/70, 50/70]
    per_image = np.log10(numer / (D_HAT + 1e-6))
    r = robustness_score(S, SA)
    assert r["robustness_R"] == pytest.approx(per_image.mean(), rel=1e-12)
    assert r["robustness_R"] == pytest.approx(1.8977054, abs=1e-6)
    lo, hi = stats.t.interval(0.95, 4, loc=per_image.mean(), scale=stats.sem(per_image))
    assert (r["robustness_R_lo"], r["robustness_R_hi"]) == pytest.approx((lo, hi), rel=1e-12)
    # Zhang's original on the declared range [0, 100]: max(100 - s, s) / (|s' - s| + 1e-6 · 100)
    zhang = np.log10(np.array([80, 50, 90, 65, 70]) / (np.array([10, 0, 5, 25, 2]) + 1e-4)).mean()
    assert robustness_score_range(S, SA, 0.0, 100.0) == pytest.approx(zhang, rel=1e-12)
    assert robustness_score_range(S, SA, 0.0, 100.0) == pytest.approx(1.9632675, abs=1e-6)
    # the metric's direction plays no part in R (MSU's robustness_score ignores inverse_sign)
    row = summarize(cell(S, SA, lower_better=True)).iloc[0]
    assert row["robustness_R"] == pytest.approx(r["robustness_R"]) and row["robustness_R_range"] == pytest.approx(zhang)


def test_wasserstein_and_energy_scores_carry_the_quality_sign():
    # W1 of two equal-size samples: mean |sorted(ŝ) - sorted(ŝ')| = |[0,15,30,50,70] - [10,30,40,52,75]|/70/5
    w1 = (10 + 15 + 10 + 2 + 5) / 70 / 5
    sa_hat = S_HAT + D_HAT
    cross = np.abs(S_HAT[:, None] - sa_hat[None, :]).mean()
    within = np.abs(S_HAT[:, None] - S_HAT[None, :]).mean() + np.abs(sa_hat[:, None] - sa_hat[None, :]).mean()
    energy = math.sqrt(2 * cross - within)                 # scipy's energy distance, written out
    up = distribution_shift(S, SA, sign=1)
    assert up["wasserstein_score"] == pytest.approx(w1, rel=1e-12)
    assert up["energy_score"] == pytest.approx(energy, rel=1e-9)
    # a lower-is-better metric whose score rose: predicted quality fell, the score is negative (MSU's
    # inverse_sign); whose score fell by the same amounts: quality rose, +W1 as for a higher-is-better one
    assert distribution_shift(S, SA, sign=-1)["wasserstein_score"] == pytest.approx(-w1, rel=1e-12)
    mirrored = distribution_shift(-S, -SA, sign=-1)
    assert mirrored["wasserstein_score"] == pytest.approx(w1, rel=1e-12)
    assert mirrored["energy_score"] == pytest.approx(energy, rel=1e-9)
    row = summarize(cell(-S, -SA, lower_better=True)).iloc[0]
    assert row["wasserstein_score"] == pytest.approx(w1) and row["msu_abs_gain"] == pytest.approx(0.12)


def test_guardians_gains_and_similarities():
    c = cell(S, SA, score_def=S + 1.0, score_adv_def=S + 3.0)
    # the studies' measures read scikit-image's SSIM and PSNR (docs/measures.md, "Published conventions")
    c["psnr_skimage_def_adv"], c["ssim_skimage_def_adv"] = [30.0, 32, 34, 36, 38], [0.8, 0.85, 0.9, 0.95, 1.0]
    c["psnr_skimage_def_clean"], c["ssim_skimage_def_clean"] = 40.0, 0.99
    row = summarize(c).iloc[0]
    assert row["abs_gain"] == pytest.approx(42 / 5 / 100)                        # mean |s - s'| / r
    rel = np.mean(np.abs(S - SA) / (S + 1e-6))                                   # Guardians rel_gain
    assert row["rel_gain"] == pytest.approx(rel, rel=1e-12) and relative_gain(S, SA) == pytest.approx(rel)
    assert row["robust_abs_gain"] == pytest.approx(0.03)
    assert row["robust_rel_gain"] == pytest.approx(np.mean(3 / (S + 1e-6)), rel=1e-12)
    assert row["both_defended_abs_gain"] == pytest.approx(0.02)
    assert row["both_defended_rel_gain"] == pytest.approx(np.mean(2 / (S + 1 + 1e-6)), rel=1e-12)
    assert row["similarity"] == pytest.approx(0.9 + 34 / 40)                      # SSIM + PSNR/40
    assert row["purified_quality"] == pytest.approx(0.5 * (0.9 + 34 / 80))        # ½(SSIM + PSNR/80)
    assert row["similarity_clean"] == pytest.approx(0.99 + 1.0)
    assert row["srocc_s_sdef"] == pytest.approx(1.0)
    # a negative-scored metric: |s| in the denominator keeps the relative gain a magnitude
    assert relative_gain(np.array([-2.0]), np.array([-1.0])) == pytest.approx(0.5, rel=1e-5)


def cell(s, sa, *, lower_better=False, mos=None, mos_lower_better=None, score_def=None, score_adv_def=None):
    n = len(s)
    df = pd.DataFrame({"dataset": "d", "metric": "m", "attack": "a", "defense": "x",
                       "image_id": [f"i{i}" for i in range(n)], "score": s, "score_adv": sa,
                       "score_def": s if score_def is None else score_def,
                       "score_adv_def": sa if score_adv_def is None else score_adv_def,
                       "lower_better": lower_better, "range_lo": 0.0, "range_hi": 100.0})
    if mos is not None:
        df["mos"] = mos
    if mos_lower_better is not None:
        df["mos_lower_better"] = mos_lower_better
    return df


QUALITY = np.array([3.0, 7, 1, 9, 4, 0, 8, 2, 6, 5, 11, 10])


@pytest.mark.parametrize("metric_lower", [False, True])
@pytest.mark.parametrize("mos_lower", [False, True])
def test_summary_correlations_are_plus_one_for_a_perfect_metric_in_every_direction(metric_lower, mos_lower):
    scores = 40.0 - 3.0 * QUALITY if metric_lower else 10.0 + 2.0 * QUALITY
    mos = 90.0 - 5.0 * QUALITY if mos_lower else 1.0 + 0.3 * QUALITY
    row = summarize(cell(scores, scores, lower_better=metric_lower, mos=mos, mos_lower_better=mos_lower)).iloc[0]
    assert bool(row["mos_lower_better"]) == mos_lower
    for tag in ("clean", "def_clean", "def_adv", "adv"):
        for k in ("srocc", "krocc", "plcc_raw", "plcc"):
            assert row[f"{k}_{tag}"] == pytest.approx(1.0, abs=1e-6), f"{k}_{tag}"
    assert (row["srocc_clean_lo"], row["srocc_clean_hi"]) == (1.0, 1.0)
    assert row["nan_reasons"] == ""


def test_old_records_without_the_mos_direction_are_higher_is_better():
    mos = 90.0 - 5.0 * QUALITY                             # a DMOS, but the records do not say so
    row = summarize(cell(10.0 + 2 * QUALITY, 10.0 + 2 * QUALITY, mos=mos)).iloc[0]
    assert row["srocc_clean"] == pytest.approx(-1.0) and not row["mos_lower_better"]


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_small_cells_give_nan_with_reasons_never_an_exception(n):
    s = np.array([50.0, 20.0, 80.0, 35.0])[:n]
    row = summarize(cell(s, s + 5, mos=s / 10, score_adv_def=s + 1)).iloc[0]
    assert row["n_images"] == n and row["abs_gain"] == pytest.approx(0.05)
    assert row["robust_abs_gain"] == pytest.approx(0.01)
    assert math.isnan(row["srocc_clean_lo"]) and "bootstrap intervals need 5" in row["nan_reasons"]
    assert math.isnan(row["plcc_clean"]) and math.isnan(row["rmse_clean"])
    if n == 1:
        assert math.isnan(row["msu_abs_gain"]) and math.isnan(row["robustness_R"])
        assert "clean scores all equal" in row["nan_reasons"]
    else:
        assert math.isfinite(row["msu_abs_gain"]) and math.isfinite(row["robustness_R"])
    if n < 3:
        assert math.isnan(row["srocc_clean"]) and math.isnan(row["srocc_s_sdef"])
        assert "correlations need 3" in row["nan_reasons"]
    else:
        assert row["srocc_clean"] == pytest.approx(1.0) and row["plcc_raw_clean"] == pytest.approx(1.0)
        assert "logistic4 mapping needs 5" in row["nan_reasons"]
