"""Summary measures, each a function of the per-image records (docs/measures.md).

Record columns used: ``score`` (s), ``score_adv`` (s'), ``score_def`` (s_D), ``score_adv_def`` (s'_D),
``mos`` (m), ``lower_better`` (the metric's direction), ``mos_lower_better`` (the subjective scale's;
absent in records of old runs: higher is better), ``range_lo``, ``range_hi``, and the full-reference
columns ``psnr_*``/``ssim_*`` (with every per-image column the schema names, :func:`record_means`). Every
summary is recomputable from the stored records, so a new measure never needs a re-run.

Small cells never raise: a measure that is undefined for the cell's images (too few of them, constant
clean scores, no certificate) is NaN, and the cell's ``nan_reasons`` says why.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Iterator

import numpy as np
import pandas as pd
from scipy import stats

from .correlation import MIN_N, MIN_N_BOOT, bootstrap_ci, correlations, spearman
from .schema import CELL as CELL_KEY, COLUMNS

EPS_REL = 1e-6             # Guardians relative gain: |s - s'| / (|s| + 1e-6)
EPS_R = 1e-6               # robustness score R: 1e-6 added to |ŝ' - ŝ| (MSU's eps), on the [0, 1] scale
PLCC_MAPPING = "logistic4"  # PLCC after the VQEG 4-parameter logistic; plcc_raw_* is the raw value
N_BOOT = 1000              # bootstrap resamples for the SROCC intervals (seed 0)

CELL = list(CELL_KEY)  # a list, as pandas groupby wants
# Schema groups whose summary columns that the records also hold are those record columns' cell means
# (full-reference quality of the image pairs, perturbation norms, defense time).
MEAN_GROUPS = ("attack", "quality", "cost")
MEAN_COLUMNS = tuple(c.name for c in COLUMNS.values() if c.kind == "summary" and c.group in MEAN_GROUPS)


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval ``scipy.stats.t.interval(level, n-1, mean, sem)`` (MSU convention).

    Non-finite values are left out; one value gives a NaN interval, identical values a zero-width one."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return (math.nan, math.nan, math.nan)
    m = float(v.mean())
    if len(v) < 2:
        return (m, math.nan, math.nan)
    if float(np.ptp(v)) == 0.0:
        return (m, m, m)
    # = stats.t.interval(level, n - 1, loc=m, scale=stats.sem(v)), without its per-call overhead
    half = t_quantile(0.5 + level / 2, len(v) - 1) * float(np.std(v, ddof=1)) / math.sqrt(len(v))
    return (m, m - half, m + half)


@functools.lru_cache(maxsize=256)
def t_quantile(q: float, dof: int) -> float:
    """``scipy.stats.t.ppf(q, dof)``, computed once per (q, dof): every cell of a run has the same few image counts."""
    return float(stats.t.ppf(q, dof))


def absolute_gain(s, s_other, r: float) -> float:
    """Guardians absolute gain ``mean |s - s'| / r``."""
    return float(np.mean(np.abs(np.asarray(s, float) - np.asarray(s_other, float))) / r)


def relative_gain(s, s_other) -> float:
    """Guardians relative gain ``mean |s - s'| / (|s| + 1e-6)``.

    The Guardians code (msu-video-group/adversarial-defenses-for-iqa, metrics/defences/utils/
    defence_scoring_methods.py, ``rel_gain``) divides by ``s + 1e-6``; that is the same number for every
    non-negative score. |s| keeps the gain a positive magnitude for metrics with negative scores (where
    ``s + 1e-6`` would flip its sign or divide by ~0 near s = -1e-6): a deliberate difference."""
    s, o = np.asarray(s, float), np.asarray(s_other, float)
    return float(np.mean(np.abs(s - o) / (np.abs(s) + EPS_REL)))


def minmax_on_clean(s, *others) -> list[np.ndarray] | None:
    """MSU's scaling: a min–max scaler fitted on the clean scores ``s``, applied to ``s`` and ``others``.

    None when the clean scores are all equal (one image, or a constant metric): sklearn's MinMaxScaler,
    which the MSU code uses, then divides by 1, which makes every scaled measure a raw score difference;
    we report NaN instead."""
    s = np.asarray(s, float)
    lo, hi = float(s.min()), float(s.max())
    if not hi > lo:
        return None
    return [(np.asarray(v, float) - lo) / (hi - lo) for v in (s, *others)]


def robustness_scores(s_hat, a_hat, beta1: float = 1.0, beta2: float = 0.0, eps: float = EPS_R) -> np.ndarray:
    """Per-image robustness score on scaled scores: ``log10(max(β1 - ŝ, ŝ - β2) / (|ŝ' - ŝ| + eps))``.

    Zhang et al. (NeurIPS 2022) as computed by the MSU benchmark: msu-video-group/
    MSU_Metrics_Robustness_Benchmark, robustness_benchmark/score_methods.py, ``robustness_score``
    (beta1 = 1, beta2 = 0, eps = 1e-6; the metric's direction plays no part). Higher is more robust."""
    s_hat, a_hat = np.asarray(s_hat, float), np.asarray(a_hat, float)
    return np.log10(np.maximum(beta1 - s_hat, s_hat - beta2) / (np.abs(a_hat - s_hat) + eps))


def robustness_score_range(s, s_adv, lo: float, hi: float) -> float:
    """Zhang's original R on the metric's declared range ``[lo, hi]`` (``robustness_R_range``): the MSU
    formula on ``(s - lo)/(hi - lo)``, i.e. ``mean log10(max(hi - s, s - lo) / (|s' - s| + 1e-6·r))``."""
    r = abs(hi - lo) or 1.0
    return float(np.mean(robustness_scores((np.asarray(s, float) - lo) / r, (np.asarray(s_adv, float) - lo) / r)))


def msu_normalized_gains(s, s_adv, sign: int) -> dict[str, float]:
    """MSU normalised absolute and relative gains (mean, 95 % t-interval) on min–max-scaled scores.

    ``sign · (ŝ' - ŝ)`` and ``sign · (ŝ' - ŝ) / (ŝ + 1)``: score_methods.py ``normalized_absolute_gain``
    and ``normalized_relative_gain`` with ``inverse_sign`` for a lower-is-better metric."""
    return _msu_gains(minmax_on_clean(s, s_adv), sign)


def _msu_gains(scaled: list[np.ndarray] | None, sign: int) -> dict[str, float]:
    """:func:`msu_normalized_gains` of the scaled scores ``[ŝ, ŝ']`` (None: constant clean scores)."""
    if scaled is None:
        return {f"{k}{t}": math.nan for k in ("msu_abs_gain", "msu_rel_gain") for t in ("", "_lo", "_hi")}
    ns, na = scaled
    out = {}
    for key, v in (("msu_abs_gain", sign * (na - ns)), ("msu_rel_gain", sign * (na - ns) / (ns + 1.0))):
        m, lo, hi = mean_ci(v)
        out.update({key: m, f"{key}_lo": lo, f"{key}_hi": hi})
    return out


def robustness_score(s, s_adv) -> dict[str, float]:
    """``robustness_R`` (MSU definition: min–max scaling on the clean scores) with its 95 % t-interval."""
    return _robustness_score(minmax_on_clean(s, s_adv))


def _robustness_score(scaled: list[np.ndarray] | None) -> dict[str, float]:
    """:func:`robustness_score` of the scaled scores ``[ŝ, ŝ']`` (None: constant clean scores)."""
    if scaled is None:
        return {"robustness_R": math.nan, "robustness_R_lo": math.nan, "robustness_R_hi": math.nan}
    m, lo, hi = mean_ci(robustness_scores(*scaled))
    return {"robustness_R": m, "robustness_R_lo": lo, "robustness_R_hi": hi}


def distribution_shift(s, s_adv, sign: int = 1) -> dict[str, float]:
    """``sign · sgn(mean ŝ' - mean ŝ) · W1(ŝ, ŝ')`` and the same with the energy distance (docs/measures.md#attack-strength).

    score_methods.py ``calc_wasserstein_score`` / ``energy_distance_score``: ``sign`` is MSU's
    ``inverse_sign``, so an attack that raised predicted quality scores positive whatever the metric's
    direction."""
    return _distribution_shift(minmax_on_clean(s, s_adv), sign)


def _distribution_shift(scaled: list[np.ndarray] | None, sign: int) -> dict[str, float]:
    """:func:`distribution_shift` of the scaled scores ``[ŝ, ŝ']`` (None: constant clean scores)."""
    if scaled is None:
        return {"wasserstein_score": math.nan, "energy_score": math.nan}
    ns, na = scaled
    k = sign * float(np.sign(na.mean() - ns.mean()))
    return {"wasserstein_score": k * float(stats.wasserstein_distance(ns, na)),
            "energy_score": k * float(stats.energy_distance(ns, na))}


def correlation(x, y, lower_better: bool = False, mos_lower_better: bool = False) -> dict[str, float]:
    """SROCC and raw PLCC of model scores ``x`` with subjective scores ``y``, both oriented to quality."""
    c = correlations(x, y, lower_better=lower_better, mos_lower_better=mos_lower_better, mapping="none")
    return {"srocc": c["srocc"], "plcc": c["plcc_raw"]}


def certificate_summary(g: pd.DataFrame, r: float) -> dict[str, float]:
    """Certificate columns of a smoothing defense (clean branch), docs/measures.md#certified-defenses."""
    ab = g["abstain_clean"].astype(bool)
    ok = g[~ab]
    out = {"abstain_rate": float(ab.mean()), "cert_width": math.nan, "cert_delta": math.nan,
           "cert_delta_norm": math.nan, "adv_within_cert": math.nan}
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


def nan_mean(v: np.ndarray) -> float:
    """``float(pd.Series(v).mean())`` of a float64 array, bit for bit, without the Series: pandas sums the array
    with its NaNs set to 0 (numpy's pairwise sum, so the zeros stay in place) and divides by the number of the
    others, NaN when there is none (pandas.core.nanops.nanmean; pandas never uses bottleneck for a mean).
    An infinite value is kept: the mean is then infinite, or NaN with both signs."""
    nan = np.isnan(v)
    count = v.size - int(nan.sum())
    if count == 0:
        return math.nan
    if count < v.size:
        v = np.where(nan, 0.0, v)
    return float(v.sum() / np.float64(count))


class CellColumns:
    """One cell's records as numpy arrays: the float64 columns are converted in one step (one pandas column lookup
    per measure was most of a cell's time); a column of another dtype is read from the frame when asked for, as
    the frame's own methods read it."""

    def __init__(self, g: pd.DataFrame):
        self.frame = g
        self.names = set(g.columns.to_numpy().tolist())
        floats = g.select_dtypes(include=[np.float64])
        self.floats: dict[str, np.ndarray] = dict(zip(floats.columns.to_numpy().tolist(), floats.to_numpy().T))

    def __contains__(self, col: str) -> bool:
        return col in self.names

    def values(self, col: str) -> np.ndarray:
        """``g[col].to_numpy(float)``."""
        v = self.floats.get(col)
        return v if v is not None else self.frame[col].to_numpy(float)

    def first(self, col: str):
        """``g[col].iloc[0]``."""
        v = self.floats.get(col)
        return v[0] if v is not None else self.frame.iat[0, self.frame.columns.get_loc(col)]

    def mean(self, col: str) -> float:
        """``float(g[col].mean())``: NaN left out."""
        v = self.floats.get(col)
        return nan_mean(v) if v is not None else float(self.frame[col].mean())

    def any_value(self, col: str) -> bool:
        """``g[col].notna().any()``."""
        v = self.floats.get(col)
        return bool((~np.isnan(v)).any()) if v is not None else bool(self.frame[col].notna().any())


def record_means(g: pd.DataFrame | CellColumns) -> dict[str, float]:
    """The cell mean of every per-image column that the schema (:mod:`benchmark.schema`) names as a summary
    column of the same name in :data:`MEAN_GROUPS`, in the schema's order; a full-reference measure added to
    the records and the schema is averaged here without a change."""
    cell = g if isinstance(g, CellColumns) else CellColumns(g)
    return {name: cell.mean(name) for name in MEAN_COLUMNS if name in cell}


def _flag(cell: CellColumns, col: str) -> bool:
    """A per-cell boolean column; missing or NaN (records of old runs) is False."""
    if col not in cell:
        return False
    v = cell.first(col)
    return bool(v) if pd.notna(v) else False


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if len(a) < MIN_N or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return spearman(a, b)


SCORES = ("score", "score_adv", "score_def", "score_adv_def")
NAMED_LEFT_OUT = 10  # images named in nan_reasons when scores are non-finite (skipped.json lists every one)


def finite_rows(g: pd.DataFrame) -> tuple[pd.DataFrame, int, str]:
    """The cell's rows whose four scores are finite, their number, and a note naming the images left out.

    A NaN or infinite score is a property of its image (the metric failed on it): the image is left out of
    every measure of the cell, and everything else is kept. A cell with no finite image keeps one row with NaN
    scores, so that every measure is NaN (with 0 images)."""
    ok = np.isfinite(g[list(SCORES)].to_numpy(float)).all(axis=1)
    if ok.all():
        return g, len(g), ""
    bad = g.loc[~ok]
    named = [f"{row['image_id']} ({', '.join(c for c in SCORES if not np.isfinite(float(row[c])))})"
             for _, row in bad.head(NAMED_LEFT_OUT).iterrows()]
    more = f" and {len(bad) - NAMED_LEFT_OUT} more" if len(bad) > NAMED_LEFT_OUT else ""
    note = f"{len(bad)} image(s) left out for a NaN or infinite score: {', '.join(named)}{more} (skipped.json)"
    if ok.any():
        return g.loc[ok], int(ok.sum()), note
    return g.iloc[:1].assign(**{c: math.nan for c in SCORES}), 0, note


def _memo(memo: dict | None, fn, *arrays: np.ndarray, **kw):
    """``fn(*arrays, **kw)``, computed once per distinct input when ``memo`` is a dict: the correlations of the
    clean scores are the same in every cell of a (dataset, metric), those of s_D in every attack's cell."""
    if memo is None:
        return fn(*arrays, **kw)
    key = (fn.__name__, *(a.tobytes() for a in arrays), tuple(sorted(kw.items())))
    if key not in memo:
        memo[key] = fn(*arrays, **kw)
    return memo[key]


def summarize_cell(g: pd.DataFrame, memo: dict | None = None) -> dict[str, float]:
    """All summary measures of one (dataset, metric, attack, defense) cell, over its images with finite scores
    (``memo``: a dict shared by the cells of one summary, so that a correlation shared by cells is computed once)."""
    notes: list[str] = []
    cell = CellColumns(g)
    n_finite = len(g)
    if not np.isfinite([cell.values(c) for c in SCORES]).all():
        g, n_finite, left_out = finite_rows(g)
        notes.append(left_out)
        cell = CellColumns(g)
    lo, hi = float(cell.first("range_lo")), float(cell.first("range_hi"))
    r = abs(hi - lo) or 1.0
    lower = _flag(cell, "lower_better")
    sign = -1 if lower else 1
    s, sa, sd, sad = (cell.values(c) for c in SCORES)
    n = n_finite
    out: dict[str, float] = {"n_images": int(n)}
    out["abs_gain"] = absolute_gain(s, sa, r)
    out["rel_gain"] = relative_gain(s, sa)
    scaled = minmax_on_clean(s, sa)   # [ŝ, ŝ'], or None for constant clean scores
    out.update(_msu_gains(scaled, sign))
    out.update(_robustness_score(scaled))
    out["robustness_R_range"] = robustness_score_range(s, sa, lo, hi)
    out.update(_distribution_shift(scaled, sign))
    if scaled is None:
        notes.append(f"clean scores all equal ({n} image(s)): no min–max scaling, so no MSU gains, R, W1, energy")
    out["robust_abs_gain"] = absolute_gain(s, sad, r)
    out["robust_rel_gain"] = relative_gain(s, sad)
    out["both_defended_abs_gain"] = absolute_gain(sd, sad, r)
    out["both_defended_rel_gain"] = relative_gain(sd, sad)
    # Directional gains (how far the attack pushed in the quality direction), in units of r.
    out["signed_gain"] = float(np.mean(sign * (sa - s)) / r)
    out["robust_signed_gain"] = float(np.mean(sign * (sad - s)) / r)
    # Verdicts (docs/measures.md): attack success through the defense in the attacker's direction d, and the
    # defense's own shift of clean scores (a cost, not robustness)
    d = float(cell.first("attack_direction")) \
        if "attack_direction" in cell and pd.notna(cell.first("attack_direction")) else 1.0
    out["defended_gain"] = float(np.mean(d * sign * (sad - sd)) / r)
    out["defense_bias"] = float(np.mean(np.abs(sd - s)) / r)
    out.update(record_means(cell))
    # Guardians similarity and the purification study's quality score (docs/measures.md#defense) against x, and against
    # A(x) (_aligned), in the studies' convention: scikit-image's RGB SSIM and PSNR, *_skimage_* (docs/measures.md,
    # "Published conventions"). Means as the studies' np.mean: an inf PSNR (identical images) makes the mean
    # inf; NaN pairs are left out (Guardians).
    if "psnr_def_adv" in cell and "psnr_skimage_def_adv" not in cell:  # defense stages of an older version
        out.update(similarity=math.nan, purified_quality=math.nan, similarity_clean=math.nan)
        notes.append("defense stages stored before the scikit-image quality columns: no similarity or purified "
                     "quality (run again with --resume: only the defense stages are recomputed)")
    for ref in ("", "_aligned"):
        if f"psnr_skimage_def_adv{ref}" in cell and f"ssim_skimage_def_adv{ref}" in cell:
            ssim_v, psnr_v = cell.values(f"ssim_skimage_def_adv{ref}"), cell.values(f"psnr_skimage_def_adv{ref}")
            out[f"similarity{ref}"] = nan_mean(ssim_v + psnr_v / 40.0)
            out[f"purified_quality{ref}"] = nan_mean(0.5 * (ssim_v + psnr_v / 80.0))
    if "psnr_skimage_def_clean" in cell and "ssim_skimage_def_clean" in cell:
        out["similarity_clean"] = nan_mean(cell.values("ssim_skimage_def_clean")
                                           + cell.values("psnr_skimage_def_clean") / 40.0)
    if "abstain_clean" in cell and g["abstain_clean"].notna().all():  # a smoothing defense's cell
        out.update(certificate_summary(g, r))
        if not math.isfinite(out["cert_width"]):
            notes.append("every image abstained: no certificate width")
    # SROCC(s, s_D): both sides are the same metric's scores, so the orientation cancels.
    out["srocc_s_sdef"] = _spearman(s, sd)
    if "mos" in cell and cell.any_value("mos"):
        mos_lower = _flag(cell, "mos_lower_better")
        out["mos_lower_better"] = mos_lower
        m = cell.values("mos")
        why: dict[str, list[str]] = {}   # reason -> the correlations it concerns
        for tag, col in (("clean", s), ("def_clean", sd), ("def_adv", sad), ("adv", sa)):
            c = _memo(memo, correlations, col, m, lower_better=lower, mos_lower_better=mos_lower,
                      mapping=PLCC_MAPPING)
            for k in ("srocc", "krocc", "plcc", "plcc_raw", "rmse"):
                out[f"{k}_{tag}"] = c[k]
            out[f"plcc_mapping_failed_{tag}"] = c["mapping_failed"]
            if c["reason"]:
                why.setdefault(str(c["reason"]), []).append(tag)
        notes += [f"{reason} (correlations of {', '.join(tags)})" for reason, tags in why.items()]
        out["plcc_mapping"] = PLCC_MAPPING
        for tag, col in (("clean", s), ("def_clean", sd)):
            out[f"srocc_{tag}_lo"], out[f"srocc_{tag}_hi"] = _memo(
                memo, bootstrap_ci, col, m, lower_better=lower, mos_lower_better=mos_lower, n_boot=N_BOOT)
        n_mos = int((np.isfinite(m) & np.isfinite(s)).sum())
        if n_mos < MIN_N_BOOT:
            notes.append(f"{n_mos} image(s) with MOS: bootstrap intervals need {MIN_N_BOOT}")
    if not math.isfinite(out["srocc_s_sdef"]):
        notes.append(f"SROCC(s, s_D) needs {MIN_N} images and non-constant scores")
    out["nan_reasons"] = "; ".join(dict.fromkeys(notes))
    return out


def summary_rows(records: pd.DataFrame) -> Iterator[tuple[tuple[str, ...], dict]]:
    """``(cell, row)`` for every cell of ``records``, in the order of their first rows: the cell's labels and every
    summary measure (the rows :func:`summarize` tabulates; a correlation shared by cells is computed once)."""
    memo: dict = {}
    for key, g in records.groupby(CELL, sort=False):
        row = dict(zip(CELL, key))
        row["adaptive_attack"] = bool(g["adaptive_attack"].iloc[0]) if "adaptive_attack" in g else False
        if "eot_samples" in g:
            row["eot_samples"] = int(g["eot_samples"].iloc[0])
        for col in ("budget", "threat_model"):   # the worst case is taken per budget
            if col in g:
                row[col] = g[col].iloc[0]
        row.update(summarize_cell(g, memo))
        yield key, row


def summarize(records: pd.DataFrame) -> pd.DataFrame:
    """One row per cell with every summary measure (records with errors excluded)."""
    if records.empty:
        return pd.DataFrame(columns=CELL)
    return pd.DataFrame([row for _, row in summary_rows(records)])
