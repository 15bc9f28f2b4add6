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
    # a lower-is-better model that ranks the wrong way stays negative (|·| would report +1)
    inverted = correlations(x, x ** 2, lower_better=True, mapping="logistic4")
    assert inverted["srocc"] == pytest.approx(-1.0) and inverted["plcc_raw"] < 0
    assert inverted["plcc"] > 0.9                       # the fitted mapping orients itself


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
