"""Correlation of model scores with subjective scores (formulas.md §4).

SROCC (Spearman ρ), KROCC (Kendall τ), PLCC (Pearson r) raw and after a monotonic logistic mapping
(4-parameter VQEG or 5-parameter Sheikh 2006, fitted with ``scipy.optimize.curve_fit``), RMSE after the
mapping, and bootstrap percentile intervals over images. Absolute values are reported for
lower-is-better models. Every result names the mapping it used (``mapping``), and says when a fit did
not converge (``mapping_failed``: the raw scores are used instead).
"""
from __future__ import annotations

import math
import warnings
from typing import Literal

import numpy as np
from scipy import optimize, stats

Mapping = Literal["none", "logistic4", "logistic5"]


def logistic4(x, b1, b2, b3, b4):
    """VQEG: ``(β1 - β2) / (1 + exp(-(x - β3)/|β4|)) + β2``."""
    return (b1 - b2) / (1 + np.exp(-(x - b3) / np.abs(b4))) + b2


def logistic5(x, b1, b2, b3, b4, b5):
    """Sheikh et al. 2006: ``β1 (½ - 1/(1 + exp(β2 (x - β3)))) + β4 x + β5``."""
    return b1 * (0.5 - 1 / (1 + np.exp(b2 * (x - b3)))) + b4 * x + b5


def fit_mapping(x: np.ndarray, y: np.ndarray, mapping: Mapping) -> tuple[np.ndarray, bool]:
    """Mapped scores and whether the fit converged (identity where it did not)."""
    if mapping == "none":
        return x, True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if mapping == "logistic4":
                p0 = [y.max(), y.min(), x.mean(), (x.std() / 4) or 1.0]
                params, _ = optimize.curve_fit(logistic4, x, y, p0=p0, maxfev=20000)
                return logistic4(x, *params), True
            p0 = [y.max() - y.min(), 1.0 / (x.std() or 1.0), x.mean(), 0.0, y.mean()]
            params, _ = optimize.curve_fit(logistic5, x, y, p0=p0, maxfev=20000)
            return logistic5(x, *params), True
    except (RuntimeError, ValueError, optimize.OptimizeWarning):
        return x, False


def correlations(x, y, *, lower_better: bool = False, mapping: Mapping = "logistic4") -> dict[str, float | str | bool]:
    """SROCC, KROCC, raw PLCC, PLCC and RMSE after ``mapping`` of scores ``x`` against MOS ``y``."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    out: dict[str, float | str | bool] = {"n": int(len(x)), "mapping": mapping}
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return {**out, "srocc": math.nan, "krocc": math.nan, "plcc_raw": math.nan, "plcc": math.nan,
                "rmse": math.nan, "mapping_failed": True}
    srocc, krocc = stats.spearmanr(x, y)[0], stats.kendalltau(x, y)[0]
    plcc_raw = stats.pearsonr(x, y)[0]
    mapped, converged = fit_mapping(x, y, mapping)
    plcc = stats.pearsonr(mapped, y)[0] if np.std(mapped) > 0 else math.nan
    rmse = float(np.sqrt(np.mean((mapped - y) ** 2))) if converged else math.nan
    vals = {"srocc": srocc, "krocc": krocc, "plcc_raw": plcc_raw, "plcc": plcc}
    if lower_better:
        # formulas.md §4 reports |·| for lower-is-better models; we report the correlation in the model's
        # quality direction instead, which is |·| whenever the model ranks the way it declares and stays
        # negative when it (or a defense in front of it) inverts the ranking, which |·| would hide. The
        # fitted PLCC is already oriented by its mapping and is left alone unless the mapping failed.
        vals = {k: (v if k == "plcc" and converged and mapping != "none" else -v) for k, v in vals.items()}
    return {**out, **{k: float(v) for k, v in vals.items()}, "rmse": rmse, "mapping_failed": not converged}


def bootstrap_ci(x, y, *, measure: str = "srocc", n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                 lower_better: bool = False, mapping: Mapping = "none") -> tuple[float, float]:
    """Percentile interval of ``measure`` over ``n_boot`` resamples of the images (with replacement)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(x), len(x))
        v = correlations(x[idx], y[idx], lower_better=lower_better, mapping=mapping)[measure]
        if np.isfinite(v):
            vals.append(v)
    if not vals:
        return (math.nan, math.nan)
    a = (1 - level) / 2
    return float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))
