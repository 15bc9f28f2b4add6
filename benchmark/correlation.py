"""Correlation of model scores with subjective scores (docs/measures.md#correlation-with-subjective-scores).

SROCC (Spearman ρ), KROCC (Kendall τ), PLCC (Pearson r) raw and after a monotonic logistic mapping
(4-parameter VQEG or 5-parameter Sheikh 2006, fitted with ``scipy.optimize.curve_fit``), RMSE after the
mapping, and bootstrap percentile intervals over images.

Both sides are oriented to quality before anything is computed (docs/measures.md#correlation-with-subjective-scores): the model's scores by
the metric's direction (``lower_better``: NIQE, DMOS-trained models) and the subjective scores by the
dataset's (``mos_lower_better``: DMOS, as in LIVE and CSIQ). A positive value therefore means agreement
whatever the two scales' directions, and a negative one means the model (or a defense in front of it)
inverts the ranking. The fitted PLCC gets the sign of the fitted mapping's slope (``sgn cov(x, ŷ)``): a
logistic fitted to an inverted model decreases, and its PLCC is reported negative instead of the
``+|r|`` a free fit would show. RMSE after the mapping does not depend on the orientation.

Small samples give NaN, never an exception: every correlation needs ``MIN_N`` images with finite
scores and neither side constant; a fitted mapping needs one image more than it has parameters (with
fewer, the curve passes through every point and its PLCC says nothing); a bootstrap interval needs
``MIN_N_BOOT`` images. ``reason`` says why a value is NaN. Every result names the mapping it used
(``mapping``) and says when a fit was not possible or did not converge (``mapping_failed``); a fit that
did not converge falls back to the raw (oriented) scores, so ``plcc`` equals ``plcc_raw`` there.
"""
from __future__ import annotations

import math
import warnings
from typing import Literal

import numpy as np
from scipy import optimize, stats

Mapping = Literal["none", "logistic4", "logistic5"]

MIN_N = 3                                        # SROCC/KROCC/PLCC: fewer images give NaN
MAPPING_PARAMS = {"none": 0, "logistic4": 4, "logistic5": 5}
MIN_N_BOOT = 5                                   # bootstrap interval: fewer images give NaN
KENDALL_PAIRS_MAX = 4000                         # kendall: scipy's O(n log n) count above this many images


def logistic4(x, b1, b2, b3, b4):
    """VQEG: ``(β1 - β2) / (1 + exp(-(x - β3)/|β4|)) + β2``."""
    return (b1 - b2) / (1 + np.exp(-(x - b3) / np.abs(b4))) + b2


def logistic5(x, b1, b2, b3, b4, b5):
    """Sheikh et al. 2006: ``β1 (½ - 1/(1 + exp(β2 (x - β3)))) + β4 x + β5``."""
    return b1 * (0.5 - 1 / (1 + np.exp(b2 * (x - b3)))) + b4 * x + b5


def orient(x, lower_better: bool) -> np.ndarray:
    """Scores in the quality direction: negated for a lower-is-better scale."""
    x = np.asarray(x, float)
    return -x if lower_better else x


def fit_mapping(x: np.ndarray, y: np.ndarray, mapping: Mapping) -> tuple[np.ndarray, bool]:
    """Mapped scores and whether the fit converged (identity where it did not)."""
    if mapping == "none":
        return x, True
    if len(x) <= MAPPING_PARAMS[mapping]:
        return x, False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if mapping == "logistic4":
                p0 = [y.max(), y.min(), x.mean(), (x.std() / 4) or 1.0]
                params, _ = optimize.curve_fit(logistic4, x, y, p0=p0, maxfev=20000)
                mapped = logistic4(x, *params)
            else:
                p0 = [y.max() - y.min(), 1.0 / (x.std() or 1.0), x.mean(), 0.0, y.mean()]
                params, _ = optimize.curve_fit(logistic5, x, y, p0=p0, maxfev=20000)
                mapped = logistic5(x, *params)
    except (RuntimeError, ValueError, TypeError, optimize.OptimizeWarning):
        return x, False
    return (mapped, True) if np.all(np.isfinite(mapped)) else (x, False)


def _nan_result(out: dict, reason: str) -> dict:
    return {**out, "srocc": math.nan, "krocc": math.nan, "plcc_raw": math.nan, "plcc": math.nan,
            "rmse": math.nan, "mapping_failed": True, "reason": reason}


def correlations(x, y, *, lower_better: bool = False, mos_lower_better: bool = False,
                 mapping: Mapping = "logistic4") -> dict[str, float | str | bool]:
    """SROCC, KROCC, raw PLCC, PLCC and RMSE after ``mapping`` of scores ``x`` against MOS ``y``, both
    oriented to quality (``lower_better``: the metric's direction, ``mos_lower_better``: the scale's)."""
    x, y = orient(x, lower_better), orient(y, mos_lower_better)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    out: dict[str, float | str | bool] = {"n": int(len(x)), "mapping": mapping}
    if len(x) < MIN_N:
        return _nan_result(out, f"{len(x)} image(s) with a score and MOS; correlations need {MIN_N}")
    x_constant = np.ptp(x) == 0
    if x_constant or np.ptp(y) == 0:
        return _nan_result(out, "constant " + ("scores" if x_constant else "MOS") + ": correlation undefined")
    srocc, krocc, plcc_raw = spearman(x, y), kendall(x, y), pearson(x, y)
    mapped, converged = fit_mapping(x, y, mapping)
    reason = ""
    if mapping != "none" and len(x) <= MAPPING_PARAMS[mapping]:
        plcc, rmse = math.nan, math.nan
        reason = f"{len(x)} images: the {mapping} mapping needs {MAPPING_PARAMS[mapping] + 1} for fitted PLCC/RMSE"
    else:
        slope = np.sign(np.cov(x, mapped)[0, 1]) if np.ptp(mapped) > 0 else math.nan
        plcc = slope * pearson(mapped, y)
        rmse = float(np.sqrt(np.mean((mapped - y) ** 2))) if converged else math.nan
        if not converged:
            reason = f"the {mapping} mapping did not converge: PLCC of the raw scores, no RMSE"
        elif not np.ptp(mapped) > 0:
            reason = f"the fitted {mapping} mapping is flat: no fitted PLCC"
    vals = {"srocc": srocc, "krocc": krocc, "plcc_raw": plcc_raw, "plcc": plcc, "rmse": rmse}
    return {**out, **{k: float(v) for k, v in vals.items()}, "mapping_failed": not converged, "reason": reason}


def rank_rows(a: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank) along each row: ``scipy.stats.rankdata(a, "average", axis=1)``
    value for value (the ranks are exact half-integers), without its per-call overhead. Rows with a NaN
    (which scipy ranks as all NaN) go to scipy."""
    if a.size == 0 or np.isnan(a).any():
        return stats.rankdata(a, method="average", axis=1)
    n = a.shape[1]
    # flat positions of the values in sorted order, row after row (tied values share one rank: any sort will do)
    flat = (np.argsort(a, axis=1) + np.arange(0, a.size, n)[:, None]).ravel()
    ordered = a.ravel()[flat]
    first = np.empty(a.size, bool)   # the first value of each run of equal values (each row starts one)
    first[1:] = ordered[1:] != ordered[:-1]
    first[::n] = True
    start = np.flatnonzero(first)
    count = np.empty_like(start)
    count[:-1] = start[1:] - start[:-1]
    count[-1] = a.size - start[-1]
    rank = (start % n + 1) + (count - 1) / 2.0   # a run's ordinal ranks k..k+count-1 average to this
    ranks = np.empty(a.size)
    ranks[flat] = rank.repeat(count)
    return ranks.reshape(a.shape)


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair; NaN where a row is constant."""
    const = (np.ptp(a, axis=1) == 0) | (np.ptp(b, axis=1) == 0)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=1) / den
    r[const | (den == 0)] = math.nan
    return np.clip(r, -1.0, 1.0)


def pearson(x, y) -> float:
    """Pearson r of two vectors (NaN if one is constant); equals ``scipy.stats.pearsonr`` without its overhead."""
    return float(_pearson_rows(np.asarray(x, float)[None], np.asarray(y, float)[None])[0])


def kendall(x, y) -> float:
    """Kendall τ-b of two vectors: ``scipy.stats.kendalltau(x, y)[0]`` bit for bit (the same integer counts of
    concordant minus discordant pairs and of ties, the same float formula ``(C - D) / √(T - Tx) / √(T - Ty)``,
    clipped to [-1, 1]), counted over all pairs at once without scipy's per-call overhead. scipy itself computes
    it for more than ``KENDALL_PAIRS_MAX`` images (the pair matrices grow as n²) or a non-finite value."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    if n > KENDALL_PAIRS_MAX or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return float(stats.kendalltau(x, y)[0])
    sx = (x[:, None] > x).astype(np.int8) - (x[:, None] < x)   # sign of x_i - x_j, for every pair (i, j)
    sy = (y[:, None] > y).astype(np.int8) - (y[:, None] < y)
    total = n * (n - 1) // 2
    x_ties = (int(np.count_nonzero(sx == 0)) - n) // 2   # pairs i < j tied in x (the diagonal left out)
    y_ties = (int(np.count_nonzero(sy == 0)) - n) // 2
    if x_ties == total or y_ties == total:
        return math.nan
    con_minus_dis = int((sx * sy).sum(dtype=np.int64)) // 2   # each pair counted twice, tied pairs 0
    tau = con_minus_dis / np.sqrt(total - x_ties) / np.sqrt(total - y_ties)
    return float(min(1.0, max(-1.0, tau)))


def spearman(x, y) -> float:
    """Spearman ρ: Pearson r of the average ranks, as ``scipy.stats.spearmanr``."""
    return float(_pearson_rows(rank_rows(np.asarray(x, float)[None]), rank_rows(np.asarray(y, float)[None]))[0])


def bootstrap_ci(x, y, *, measure: str = "srocc", n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                 lower_better: bool = False, mos_lower_better: bool = False,
                 mapping: Mapping = "none") -> tuple[float, float]:
    """Percentile interval of ``measure`` over ``n_boot`` resamples of the images (with replacement).

    The resample indices are ``default_rng(seed).integers(0, n, (n_boot, n))`` (the same stream as one
    draw of n per resample). SROCC and raw PLCC are computed for all resamples at once with numpy (SROCC:
    Pearson r of the average ranks within each resample, as ``scipy.stats.spearmanr``); other measures
    go through ``correlations`` resample by resample. Resamples where the measure is undefined (a
    constant side) are left out; fewer than ``MIN_N_BOOT`` images give NaN.
    """
    x, y = orient(x, lower_better), orient(y, mos_lower_better)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    if n < MIN_N_BOOT:
        return (math.nan, math.nan)
    idx = np.random.default_rng(seed).integers(0, n, (n_boot, n))
    xs, ys = x[idx], y[idx]
    if measure == "srocc":
        vals = _pearson_rows(rank_rows(xs), rank_rows(ys))
    elif measure == "plcc_raw" or (measure == "plcc" and mapping == "none"):
        vals = _pearson_rows(xs, ys)
    else:
        vals = np.array([correlations(a, b, mapping=mapping)[measure] for a, b in zip(xs, ys)], float)
    vals = vals[np.isfinite(vals)]
    if len(vals) == 0:
        return (math.nan, math.nan)
    a = (1 - level) / 2
    return float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))
