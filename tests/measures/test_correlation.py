from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from benchmark.correlation import bootstrap_ci, correlations, logistic4, logistic5


def test_monotonic_nonlinear_relation_is_linearised_by_the_logistic_fits():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, 200)
    y = logistic4(x, 5.0, 1.0, 5.0, 1.0) + rng.normal(0, 0.05, 200)
    raw = correlations(x, y, mapping="none")
    four = correlations(x, y, mapping="logistic4")
    five = correlations(x, y, mapping="logistic5")
    assert four["srocc"] == pytest.approx(stats.spearmanr(x, y)[0])
    assert four["krocc"] == pytest.approx(stats.kendalltau(x, y)[0])
    assert four["plcc"] > raw["plcc_raw"] + 0.02 and four["plcc"] > 0.99 and five["plcc"] > 0.99
    assert four["rmse"] == pytest.approx(0.05, abs=0.01)
    assert four["mapping"] == "logistic4" and not four["mapping_failed"]


def test_lower_better_reports_correlation_in_the_model_direction():
    x = np.arange(20.0)
    c = correlations(x, -x ** 2, lower_better=True, mapping="none")
    assert c["srocc"] == pytest.approx(1.0) and c["plcc_raw"] > 0
    # a lower-is-better model that ranks the wrong way stays negative (|·| would report +1), and so does
    # its fitted PLCC: the logistic fitted to it decreases
    inverted = correlations(x, x ** 2, lower_better=True, mapping="logistic4")
    assert inverted["srocc"] == pytest.approx(-1.0) and inverted["plcc_raw"] < 0
    assert inverted["plcc"] < -0.99 and not inverted["mapping_failed"]


QUALITY = np.array([3.0, 7, 1, 9, 4, 0, 8, 2, 6, 5, 11, 10])  # the images' true quality, shuffled


@pytest.mark.parametrize("metric_lower", [False, True])
@pytest.mark.parametrize("mos_lower", [False, True])
@pytest.mark.parametrize("mapping", ["logistic4", "logistic5", "none"])
def test_every_direction_combination_of_a_perfect_metric_gives_plus_one(metric_lower, mos_lower, mapping):
    """docs/measures.md#correlation-with-subjective-scores: both sides oriented to quality, so agreement is +1 whatever the two directions."""
    scores = 40.0 - 3.0 * QUALITY if metric_lower else 10.0 + 2.0 * QUALITY   # e.g. DMOS-trained vs MOS-trained
    mos = 90.0 - 5.0 * QUALITY if mos_lower else 1.0 + 0.3 * QUALITY          # DMOS (LIVE, CSIQ) vs MOS
    c = correlations(scores, mos, lower_better=metric_lower, mos_lower_better=mos_lower, mapping=mapping)
    for k in ("srocc", "krocc", "plcc_raw", "plcc"):
        assert c[k] == pytest.approx(1.0, abs=1e-6), k
    assert bootstrap_ci(scores, mos, lower_better=metric_lower, mos_lower_better=mos_lower, n_boot=200) == (1.0, 1.0)
    # the same metric ranking the images backwards is -1 on every measure, fitted PLCC included
    backwards = correlations(-scores + 200, mos, lower_better=metric_lower, mos_lower_better=mos_lower,
                             mapping=mapping)
    for k in ("srocc", "krocc", "plcc_raw", "plcc"):
        assert backwards[k] == pytest.approx(-1.0, abs=1e-6), k


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5])
def test_small_samples_give_nan_with_a_reason_never_an_exception(n):
    x, y = np.arange(float(n)), np.arange(float(n)) ** 2
    c = correlations(x, y, mapping="logistic4")
    if n < 3:
        assert all(np.isnan(c[k]) for k in ("srocc", "krocc", "plcc_raw", "plcc", "rmse"))
        assert "correlations need 3" in c["reason"]
    else:
        assert c["srocc"] == pytest.approx(1.0) and c["krocc"] == pytest.approx(1.0)
    if 3 <= n <= 4:   # 4 parameters: the logistic needs 5 points to leave a residual
        assert np.isnan(c["plcc"]) and np.isnan(c["rmse"]) and "needs 5" in c["reason"]
    if n == 5:
        assert c["plcc"] > 0.99 and c["reason"] == ""
    lo, hi = bootstrap_ci(x, y, n_boot=50)
    assert np.isnan(lo) == np.isnan(hi) == (n < 5)
    assert correlations(np.ones(6), np.arange(6.0))["reason"].startswith("constant scores")


def test_vectorised_bootstrap_equals_the_resample_loop():
    """Same seed, same resample indices: the interval of a per-resample loop over scipy.stats.spearmanr."""
    rng = np.random.default_rng(4)
    mos = np.round(rng.uniform(0, 10, 30))          # ties on both sides
    x = np.round(mos + rng.normal(0, 3, 30))
    for lower, mos_lower in ((False, False), (True, False), (False, True)):
        idx_rng = np.random.default_rng(7)
        xo, yo = (-x if lower else x), (-mos if mos_lower else mos)
        loop = []
        for _ in range(400):
            i = idx_rng.integers(0, 30, 30)
            if np.ptp(xo[i]) > 0 and np.ptp(yo[i]) > 0:
                loop.append(stats.spearmanr(xo[i], yo[i])[0])
        expected = np.quantile(loop, 0.025), np.quantile(loop, 0.975)
        got = bootstrap_ci(x, mos, n_boot=400, seed=7, lower_better=lower, mos_lower_better=mos_lower)
        assert got == pytest.approx(expected, abs=1e-12)


def test_logistic5_formula():
    assert logistic5(np.array([2.0]), 1, 1, 2, 0, 3)[0] == pytest.approx(3.0)


def test_bootstrap_interval_brackets_the_estimate_and_separates_models():
    rng = np.random.default_rng(1)
    mos = rng.uniform(0, 100, 150)
    good = mos + rng.normal(0, 10, 150)
    bad = mos + rng.normal(0, 60, 150)
    lo_g, hi_g = bootstrap_ci(good, mos, n_boot=300)
    lo_b, hi_b = bootstrap_ci(bad, mos, n_boot=300)
    assert lo_g <= stats.spearmanr(good, mos)[0] <= hi_g
    assert hi_b < lo_g   # two metrics told apart
