"""Summary measures, each a function of the per-image records (formulas.md §2–4).

Record columns used: ``score`` (s), ``score_adv`` (s'), ``score_def`` (s_D), ``score_adv_def`` (s'_D),
``mos`` (m), ``lower_better``, ``range_lo``, ``range_hi``, and the full-reference columns
``psnr_*``/``ssim_*``. Every summary is recomputable from the stored records, so a new measure never
needs a re-run.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from .correlation import bootstrap_ci, correlations

EPS_REL = 1e-6  # formulas.md §2: relative gain denominator s + 1e-6
PLCC_MAPPING = "logistic4"  # PLCC after the VQEG 4-parameter logistic; plcc_raw_* is the raw value
N_BOOT = 1000              # bootstrap resamples for the SROCC intervals
EPS_R = 1e-6    # robustness score R: |s' - s| is floored at EPS_R · r (our choice, recorded here)

CELL = ["dataset", "metric", "attack", "defense"]


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval ``scipy.stats.t.interval(level, n-1, mean, sem)`` (MSU convention)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return (math.nan, math.nan, math.nan)
    m = float(v.mean())
    if len(v) < 2 or float(np.std(v)) == 0.0:
        return (m, m, m)
    lo, hi = stats.t.interval(level, len(v) - 1, loc=m, scale=stats.sem(v))
    return (m, float(lo), float(hi))


def absolute_gain(s, s_other, r: float) -> float:
    """Guardians absolute gain ``mean |s - s'| / r``."""
    return float(np.mean(np.abs(np.asarray(s) - np.asarray(s_other))) / r)


def relative_gain(s, s_other) -> float:
    """Guardians relative gain ``mean |s - s'| / (s + 1e-6)``."""
    s, o = np.asarray(s, float), np.asarray(s_other, float)
    return float(np.mean(np.abs(s - o) / (np.abs(s) + EPS_REL)))


def msu_normalized_gains(s, s_adv, sign: int) -> dict[str, float]:
    """MSU gains: min–max scaler fitted on the clean scores, applied to both; mean and 95 % t-interval."""
    s, a = np.asarray(s, float), np.asarray(s_adv, float)
    lo, hi = float(s.min()), float(s.max())
    span = hi - lo if hi > lo else 1.0
    ns, na = (s - lo) / span, (a - lo) / span
    abs_g = sign * (na - ns)
    rel_g = sign * (na - ns) / (ns + 1.0)
    out = {}
    for key, v in (("msu_abs_gain", abs_g), ("msu_rel_gain", rel_g)):
        m, l, h = mean_ci(v)
        out.update({key: m, f"{key}_lo": l, f"{key}_hi": h})
    return out


def robustness_score(s, s_adv, lo: float, hi: float) -> float:
    """Zhang et al. (NeurIPS 2022): ``mean log10(max(hi - s, s - lo) / |s' - s|)``; higher is more robust."""
    s, a = np.asarray(s, float), np.asarray(s_adv, float)
    floor = EPS_R * abs(hi - lo)
    return float(np.mean(np.log10(np.maximum(hi - s, s - lo) / np.maximum(np.abs(a - s), floor))))


def distribution_shift(s, s_adv) -> dict[str, float]:
    """``sgn(mean ŝ' - mean ŝ) · W1(ŝ, ŝ')`` and the same with the energy distance; ŝ min–max on clean scores."""
    s, a = np.asarray(s, float), np.asarray(s_adv, float)
    lo, hi = float(s.min()), float(s.max())
    span = hi - lo if hi > lo else 1.0
    ns, na = (s - lo) / span, (a - lo) / span
    sgn = float(np.sign(na.mean() - ns.mean()))
    return {"wasserstein_score": sgn * float(stats.wasserstein_distance(ns, na)),
            "energy_score": sgn * float(stats.energy_distance(ns, na))}


def correlation(x, y, lower_better: bool = False) -> dict[str, float]:
    """SROCC and raw PLCC of model scores ``x`` with subjective scores ``y`` (in the model's direction: see correlations)."""
    c = correlations(x, y, lower_better=lower_better, mapping="none")
    return {"srocc": c["srocc"], "plcc": c["plcc_raw"]}


def certificate_summary(g: pd.DataFrame, r: float) -> dict[str, float]:
    """Certificate columns of a smoothing defense (clean branch), formulas.md §5."""
    ab = g["abstain_clean"].astype(bool)
    ok = g[~ab]
    out = {"abstain_rate": float(ab.mean())}
    if len(ok):
        width = ok["cert_hi_clean"] - ok["cert_lo_clean"]
        out.update({"cert_width": float(width.mean()), "cert_delta": float(ok["cert_delta_clean"].mean()),
                    "cert_delta_norm": float(ok["cert_delta_clean"].mean() / r),
                    # attacked smoothed score inside the clean image's certified interval (guaranteed
                    # only when the attack's L2 norm is within the certified radius)
                    "adv_within_cert": float(((ok["score_adv_def"] >= ok["cert_lo_clean"])
                                              & (ok["score_adv_def"] <= ok["cert_hi_clean"])).mean())})
    if "cert_radius_clean" in g:
        out["cert_radius"] = float(ok["cert_radius_clean"].mean()) if len(ok) else math.nan
    return out


def summarize_cell(g: pd.DataFrame) -> dict[str, float]:
    """All summary measures of one (dataset, metric, attack, defense) cell."""
    r = abs(float(g["range_hi"].iloc[0]) - float(g["range_lo"].iloc[0])) or 1.0
    lower = bool(g["lower_better"].iloc[0])
    sign = -1 if lower else 1
    s, sa, sd, sad = (g[c].to_numpy(float) for c in ("score", "score_adv", "score_def", "score_adv_def"))
    out: dict[str, float] = {"n_images": int(len(g))}
    out["abs_gain"] = absolute_gain(s, sa, r)
    out["rel_gain"] = relative_gain(s, sa)
    out.update(msu_normalized_gains(s, sa, sign))
    lo, hi = float(g["range_lo"].iloc[0]), float(g["range_hi"].iloc[0])
    out["robustness_R"] = robustness_score(s, sa, lo, hi)
    out.update(distribution_shift(s, sa))
    out["robust_abs_gain"] = absolute_gain(s, sad, r)
    out["robust_rel_gain"] = relative_gain(s, sad)
    out["both_defended_abs_gain"] = absolute_gain(sd, sad, r)
    # Directional gains (how far the attack pushed in the quality direction), in units of r.
    out["signed_gain"] = float(np.mean(sign * (sa - s)) / r)
    out["robust_signed_gain"] = float(np.mean(sign * (sad - s)) / r)
    for col in ("psnr_attack", "ssim_attack", "linf_attack", "l2_attack", "psnr_def_adv", "ssim_def_adv",
                "psnr_def_clean", "ssim_def_clean", "seconds_def_clean", "seconds_def_adv", "lpips_attack",
                "lpips_def_adv", "lpips_def_clean", "ms_ssim_attack", "ms_ssim_def_adv", "ms_ssim_def_clean",
                "dists_attack", "dists_def_adv", "dists_def_clean"):
        if col in g:
            out[col] = float(g[col].mean())
    if {"psnr_def_adv", "ssim_def_adv"} <= set(g):
        # Guardians similarity and the purification paper's quality score (formulas.md §3).
        out["similarity"] = float(np.mean(g["ssim_def_adv"] + g["psnr_def_adv"] / 40.0))
        out["purified_quality"] = float(np.mean(0.5 * (g["ssim_def_adv"] + g["psnr_def_adv"] / 80.0)))
    if "abstain_clean" in g and g["abstain_clean"].notna().all():  # a smoothing defense's cell
        out.update(certificate_summary(g, r))
    if "mos" in g and g["mos"].notna().sum() >= 3:
        m = g["mos"].to_numpy(float)
        for tag, col in (("clean", s), ("def_clean", sd), ("def_adv", sad), ("adv", sa)):
            c = correlations(col, m, lower_better=lower, mapping=PLCC_MAPPING)
            for k in ("srocc", "krocc", "plcc", "plcc_raw", "rmse"):
                out[f"{k}_{tag}"] = c[k]
            out[f"plcc_mapping_failed_{tag}"] = c["mapping_failed"]
        out["plcc_mapping"] = PLCC_MAPPING
        for tag, col in (("clean", s), ("def_clean", sd)):
            out[f"srocc_{tag}_lo"], out[f"srocc_{tag}_hi"] = bootstrap_ci(col, m, lower_better=lower, n_boot=N_BOOT)
        out["srocc_s_sdef"] = float(stats.spearmanr(s, sd)[0]) if np.std(s) > 0 and np.std(sd) > 0 else math.nan
    return out


def summarize(records: pd.DataFrame) -> pd.DataFrame:
    """One row per cell with every summary measure (records with errors excluded)."""
    if records.empty:
        return pd.DataFrame(columns=CELL)
    rows = []
    for key, g in records.groupby(CELL, sort=False):
        row = dict(zip(CELL, key))
        row["adaptive_attack"] = bool(g["adaptive_attack"].iloc[0]) if "adaptive_attack" in g else False
        if "eot_samples" in g:
            row["eot_samples"] = int(g["eot_samples"].iloc[0])
        row.update(summarize_cell(g))
        rows.append(row)
    return pd.DataFrame(rows)
