"""Certificates for smoothed scores (docs/measures.md#certified-defenses), computed exactly from the binomial distribution.

Median smoothing for regression (Chiang, Curry, Abdelkader, Kumar, Dickerson, Goldstein, "Detection as
Regression: Certified Object Detection by Median Smoothing", NeurIPS 2020): with ``n`` sorted samples
``y_(1) ≤ … ≤ y_(n)`` of ``f(clip01(x + ε))``, ``ε ~ N(0, σ²I)``, and ``p̄ = Φ(e/σ)``, ``p̲ = Φ(-e/σ)``,

    q_u = min{ q ≥ ⌈n p̄⌉ : BinomCDF(q - 1; n, p̄) > 1 - α }
    q_l = max{ q ≤ ⌊n p̲⌋ : 1 - BinomCDF(q - 1; n, p̲) > 1 - α }

and ``[y_(q_l), y_(q_u)]`` contains the median-smoothed score of every ``x + δ`` with ``‖δ‖₂ ≤ e``, with
confidence ``1 - α``. The order statistic may not exist (too few samples): then the certificate abstains.

Randomised smoothing for classification (Cohen, Rosenfeld, Kolter, ICML 2019) on binned scores:
Clopper–Pearson lower bound ``p̲_A`` of the top bin's probability and radius ``R = σ Φ⁻¹(p̲_A)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class OrderStatistics:
    q_lower: int | None   # 1-based index of the lower order statistic, None: abstain
    q_upper: int | None   # 1-based index of the upper order statistic, None: abstain

    @property
    def abstain(self) -> bool:
        return self.q_lower is None or self.q_upper is None


def order_statistics(n: int, radius: float, sigma: float, confidence: float) -> OrderStatistics:
    """``(q_l, q_u)`` of docs/measures.md#certified-defenses (1-based), or None where the order statistic does not exist."""
    if n < 1 or sigma <= 0 or radius < 0 or not 0 < confidence < 1:
        raise ValueError(f"need n >= 1, sigma > 0, radius >= 0, 0 < confidence < 1 (got {n}, {sigma}, {radius}, "
                         f"{confidence})")
    p_hi = float(stats.norm.cdf(radius / sigma))
    p_lo = float(stats.norm.cdf(-radius / sigma))
    q = np.arange(0, n + 2)
    # upper: smallest q >= ceil(n p_hi) with BinomCDF(q - 1) > confidence, q <= n
    cdf_hi = stats.binom.cdf(q - 1, n, p_hi)
    ok_u = (q >= math.ceil(n * p_hi)) & (cdf_hi > confidence) & (q >= 1) & (q <= n)
    q_u = int(q[ok_u][0]) if ok_u.any() else None
    # lower: largest q <= floor(n p_lo) with 1 - BinomCDF(q - 1) > confidence, q >= 1
    sf_lo = 1.0 - stats.binom.cdf(q - 1, n, p_lo)
    ok_l = (q <= math.floor(n * p_lo)) & (sf_lo > confidence) & (q >= 1) & (q <= n)
    q_l = int(q[ok_l][-1]) if ok_l.any() else None
    return OrderStatistics(q_l, q_u)


def median_certificate(samples: np.ndarray, radius: float, sigma: float, confidence: float) -> dict[str, float]:
    """Smoothed score (sample median) and certified interval of one image's ``n`` samples."""
    y = np.sort(np.asarray(samples, dtype=float))
    os_ = order_statistics(len(y), radius, sigma, confidence)
    med = float(np.median(y))
    if os_.abstain:
        return {"smoothed": med, "cert_lo": math.nan, "cert_hi": math.nan, "cert_delta": math.nan, "abstain": True}
    lo, hi = float(y[os_.q_lower - 1]), float(y[os_.q_upper - 1])
    return {"smoothed": med, "cert_lo": lo, "cert_hi": hi, "cert_delta": max(hi - med, med - lo), "abstain": False}


def clopper_pearson_lower(k: int, n: int, alpha: float) -> float:
    """One-sided ``1 - alpha`` Clopper–Pearson lower bound of a binomial proportion."""
    return 0.0 if k == 0 else float(stats.beta.ppf(alpha, k, n - k + 1))


def cohen_certificate(selection_bins: np.ndarray, estimation_bins: np.ndarray, sigma: float,
                      alpha: float) -> dict[str, float]:
    """Cohen et al.'s CERTIFY on bin indices: top bin from the selection samples, radius from the others."""
    selection_bins, estimation_bins = np.asarray(selection_bins, int), np.asarray(estimation_bins, int)
    top = int(np.bincount(selection_bins).argmax())
    k, n = int((estimation_bins == top).sum()), len(estimation_bins)
    p_a = clopper_pearson_lower(k, n, alpha)
    if p_a <= 0.5:
        return {"bin": top, "p_lower": p_a, "radius": math.nan, "abstain": True}
    return {"bin": top, "p_lower": p_a, "radius": float(sigma * stats.norm.ppf(p_a)), "abstain": False}
