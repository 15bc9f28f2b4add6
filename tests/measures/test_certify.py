"""Certified smoothing: exact order statistics, certificates on a real model, Cohen's bound, matrix columns."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from scipy import stats

from benchmark.certify import clopper_pearson_lower, cohen_certificate, median_certificate, order_statistics
from benchmark.cli import main
from benchmark.defenses.median_smoothing import MedianSmoothing
from benchmark.metrics.default_model import DefaultModel

from conftest import folder_config
from helpers.images import batch, frozen


def brute_force(n, radius, sigma, conf):
    """docs/measures.md#certified-defenses literally, one q at a time."""
    p_hi, p_lo = stats.norm.cdf(radius / sigma), stats.norm.cdf(-radius / sigma)
    q_u = next((q for q in range(math.ceil(n * p_hi), n + 1) if stats.binom.cdf(q - 1, n, p_hi) > conf), None)
    q_l = next((q for q in range(math.floor(n * p_lo), 0, -1) if 1 - stats.binom.cdf(q - 1, n, p_lo) > conf), None)
    return q_l, q_u


def test_public_settings_give_293_708():
    os_ = order_statistics(1000, 0.05, 0.12, 0.999)
    assert (os_.q_lower, os_.q_upper) == (293, 708)


@pytest.mark.parametrize("n,ratio,conf", [(1000, 0.05 / 0.12, 0.999), (500, 0.25, 0.99), (200, 0.1, 0.95),
                                          (100, 0.5, 0.999), (2000, 0.8, 0.9999), (50, 0.05, 0.9)])
def test_order_statistics_match_brute_force(n, ratio, conf):
    os_ = order_statistics(n, ratio * 0.25, 0.25, conf)
    assert (os_.q_lower, os_.q_upper) == brute_force(n, ratio * 0.25, 0.25, conf)


def test_abstains_when_samples_are_too_few():
    assert order_statistics(10, 0.05, 0.12, 0.999).abstain and not order_statistics(50, 0.05, 0.12, 0.999).abstain
    cert = median_certificate([1.0, 2.0, 3.0], 0.05, 0.12, 0.999)
    assert cert["abstain"] and cert["smoothed"] == 2.0 and math.isnan(cert["cert_lo"])


def test_certificate_holds_for_perturbations_within_the_radius():
    torch.manual_seed(0)
    model = frozen(DefaultModel())
    x = batch(2)
    ms = MedianSmoothing(sigma=0.12, radius=0.25, n=400, confidence=0.999, sample_batch=200)
    _, certs = ms.score(model, x, generator=torch.Generator().manual_seed(0))
    assert not any(c["abstain"] for c in certs)
    # perturbations of L2 norm = radius: random directions and the gradient direction of the score
    xg = x.clone().requires_grad_(True)
    model(xg).sum().backward()
    directions = [torch.randn(x.shape, generator=torch.Generator().manual_seed(s)) for s in range(2)] + [xg.grad]
    for d in directions:
        d = d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        xp = (x + 0.25 * d).clamp(0, 1)
        smoothed, _ = MedianSmoothing(sigma=0.12, n=800, sample_batch=200).score(
            model, xp, generator=torch.Generator().manual_seed(1))
        for s, c in zip(smoothed.tolist(), certs):
            assert c["cert_lo"] <= s <= c["cert_hi"]
        assert all(c["cert_hi"] - c["cert_lo"] > 0 for c in certs)


def test_clopper_pearson_and_cohen_radius():
    lo = clopper_pearson_lower(90, 100, 0.001)
    assert lo == pytest.approx(stats.binomtest(90, 100).proportion_ci(confidence_level=0.998, method="exact").low)
    cert = cohen_certificate([3] * 20, [3] * 90 + [2] * 10, sigma=0.25, alpha=0.001)
    assert cert["bin"] == 3 and cert["radius"] == pytest.approx(0.25 * stats.norm.ppf(lo))
    assert cohen_certificate([1] * 20, [1] * 50 + [2] * 50, 0.25, 0.001)["abstain"]


def test_smoothing_in_the_matrix_has_certificate_columns(tmp_path, image_folder):
    cfg = folder_config(tmp_path, "cert", image_folder, """
[[metrics]]
name = "default"
[[attacks]]
name = "pgd"
eps = "2/255"
steps = 3
adaptive = false
[[attacks]]
name = "pgd"
eps = "2/255"
steps = 3
adaptive = true
eot_samples = 4
[[defenses]]
name = "median_smoothing"
n = 300
sample_batch = 150
[[defenses]]
name = "cohen_smoothing"
n = 100
""")

    assert main(["run", str(cfg), "--no-progress"]) == 0
    s = pd.read_csv(tmp_path / "runs" / "cert" / "summary.csv").set_index(["attack", "defense"])
    ms = s.loc[("pgd(eps=2/255,steps=3)", "median_smoothing(n=300,sample_batch=150)")]
    assert ms["abstain_rate"] == 0 and ms["cert_width"] > 0 and 0 < ms["cert_delta_norm"] < 1
    # an L∞ 2/255 attack on 96×96×3 has L2 norm up to 1.3 > 0.05: no guarantee, but recorded
    assert 0 <= ms["adv_within_cert"] <= 1
    cohen = s.loc[("pgd(eps=2/255,steps=3)", "cohen_smoothing")]
    assert "cert_radius" in s.columns and 0 <= cohen["abstain_rate"] <= 1
    assert s.loc[("pgd(eps=2/255,steps=3)+adaptive(EOT4)", "cohen_smoothing"), "eot_samples"] == 4
    # the report draws each image's certified interval for every certified cell (Cohen's: its score bin)
    html = (tmp_path / "runs" / "cert" / "report.html").read_text()
    assert "<h2>Certified intervals</h2>" in html and html.count('<g class="cert">') == 4 * 6
    inside = round(ms["adv_within_cert"] * 6)
    assert f"pgd(eps=2/255,steps=3) / median_smoothing(n=300,sample_batch=150) — {inside}/6 attacked" in html


def test_certificate_panel_geometry():
    from benchmark.reports.certificates import HEIGHT, TOP, certificate_panels

    rec = pd.DataFrame({"dataset": "d", "metric": "m", "attack": "a", "defense": "ms", "image_id": ["p", "q"],
                        "cert_lo_clean": [4.0, 0.0], "cert_hi_clean": [6.0, 2.0], "score_def": [5.0, 1.0],
                        "score_adv_def": [5.5, 10.0]})
    (panel,) = certificate_panels(pd.concat([rec, rec.assign(defense="identity", cert_lo_clean=float("nan"))]))
    first, second = panel["marks"]
    assert first["title"].startswith("q:")                       # sorted by smoothed clean score
    assert (panel["lo"], panel["hi"], panel["n_inside"]) == (0.0, 10.0, 1)
    assert first["y_lo"] == TOP + HEIGHT and second["y_adv"] == pytest.approx(TOP + HEIGHT * 0.45)
    assert not first["inside"] and second["inside"]


def test_certificate_columns_only_for_smoothing_cells():
    from benchmark.measures import summarize

    base = {"dataset": "d", "metric": "m", "attack": "a", "image_id": list("abc"), "score": [1.0, 2, 3],
            "score_adv": [2.0, 3, 4], "score_def": [1.0, 2, 3], "score_adv_def": [1.5, 2.5, 3.5],
            "lower_better": False, "range_lo": 0.0, "range_hi": 10.0}
    plain = pd.DataFrame({**base, "defense": "identity", "abstain_clean": float("nan")})
    smooth = pd.DataFrame({**base, "defense": "ms", "abstain_clean": False, "cert_lo_clean": [0.5, 1.5, 2.5],
                           "cert_hi_clean": [1.5, 2.5, 3.5], "cert_delta_clean": 0.5})
    s = summarize(pd.concat([plain, smooth], ignore_index=True)).set_index("defense")
    assert pd.isna(s.loc["identity", "abstain_rate"]) and s.loc["ms", "abstain_rate"] == 0
    assert s.loc["ms", "cert_width"] == pytest.approx(1.0) and s.loc["ms", "adv_within_cert"] == pytest.approx(1.0)
