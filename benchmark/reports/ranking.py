"""Ranking defenses so that destroying the image cannot win (docs/leaderboard.md, "How defenses are ranked").

Per (dataset, metric), every defense is reduced to its worst case: the attack it met that left the
largest robust gain ``mean |s − s'_D| / r`` (the strongest attack met). It is then judged on three
criteria at once:

1. worst robust gain, lower is better (how much of the attack survives the defense);
2. purified quality under that attack, higher is better: ``purified_quality_aligned`` where the run has it
   (D(x') against the clean image in the defense's geometry), else ``purified_quality`` (the same for
   defenses that do not move pixels);
3. SROCC(m, s_D), higher is better: the agreement with MOS the defended metric keeps (only where the
   dataset has MOS).

Defenses are sorted into Pareto fronts (front 1: no other defense is at least as good on every criterion
and strictly better on one; front 2: the same once front 1 is removed; ...), and within a front by the
distance to the ideal point: each criterion min–max scaled over the ranked defenses of the (dataset,
metric) to ``u ∈ [0, 1]`` (1 = best; a criterion on which all are equal gives 1), distance
``√(mean_k (1 − u_k)²)``, smaller first. A missing value counts as the worst on its criterion. A defense
that declares itself a baseline (``baseline = True``: ``identity``) is shown as the reference and never
ranked. So a defense that is worse on every criterion than another can never be ranked above it, and a
defense that wins on gain by wrecking the image lands behind one that is nearly as robust at a
fraction of the damage.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .format import as_float

QUALITY_COLUMNS = ("purified_quality_aligned", "purified_quality")
PSNR_COLUMNS = ("psnr_def_adv_aligned", "psnr_def_adv")
CRITERIA = {"worst_robust_gain": "lower", "quality": "higher", "srocc_def_clean": "higher"}
SECTION = ["dataset", "metric"]
DAMAGE_MARGIN_DB = 0.01  # "damages more than the attack": PSNR(x, D(x')) below PSNR(x, x') by more than this


def with_values(df: pd.DataFrame, names) -> list[str]:
    """Those of ``names`` (in their order) that ``df`` has with at least one numeric value."""
    return [n for n in names if n in df and pd.to_numeric(df[n], errors="coerce").notna().any()]


def first_present(df: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    """The first of ``names`` that ``df`` has with at least one numeric value."""
    return next(iter(with_values(df, names)), None)


def coalesce(df: pd.DataFrame, names: tuple[str, ...]) -> pd.Series:
    """Per row, the first finite value among ``names`` (the aligned measure where the run has it: runs stored
    before it was recorded, merged into one leaderboard, fall back to the unaligned one)."""
    out = pd.Series(math.nan, index=df.index, dtype=float)
    for n in reversed(names):
        if n in df:
            v = pd.to_numeric(df[n], errors="coerce")
            out = v.where(v.notna(), out)
    return out


def damages(cells: pd.DataFrame) -> pd.Series:
    """Per cell: the purified attacked image is further from the clean image than the attacked image is,
    ``PSNR(x, D(x')) < PSNR(x, x') − 0.01 dB`` (cell means; the aligned PSNR where the run has it)."""
    if "psnr_attack" not in cells:
        return pd.Series(False, index=cells.index)
    margin = DAMAGE_MARGIN_DB  # equal PSNRs (identity; a flip against the flipped x) differ by rounding only
    return (coalesce(cells, PSNR_COLUMNS) < pd.to_numeric(cells["psnr_attack"], errors="coerce") - margin).astype(bool)


def defense_rows(cells: pd.DataFrame, group: list[str]) -> pd.DataFrame:
    """One row per ``group`` (e.g. dataset, metric, defense): the worst attack's numbers (``worst_*``,
    ``quality`` as ranked, ``damages``), the defense-level measures, ``baseline`` and ``cell_index``
    (the index labels of the cells behind the row, worst first)."""
    quality, psnr = coalesce(cells, QUALITY_COLUMNS), coalesce(cells, PSNR_COLUMNS)
    harm = damages(cells)
    rows = []
    for key, g in cells.groupby(group, sort=False):
        gains = pd.to_numeric(g["robust_abs_gain"], errors="coerce")
        worst_idx = gains.idxmax() if gains.notna().any() else g.index[0]
        worst = g.loc[worst_idx]
        order = [worst_idx] + [i for i in gains.sort_values(ascending=False).index if i != worst_idx]
        first = {c: next((as_float(v) for v in g[c] if pd.notna(v)), math.nan) if c in g else math.nan
                 for c in ("srocc_clean", "srocc_def_clean", "plcc_clean", "plcc_def_clean", "cert_width",
                           "abstain_rate")}
        rows.append({
            **dict(zip(group, key if isinstance(key, tuple) else (key,))),
            "worst_robust_gain": as_float(worst["robust_abs_gain"]), "worst_attack": worst["attack"],
            "both_defended_gain": as_float(worst.get("both_defended_abs_gain")),
            "quality": float(quality.loc[worst_idx]),
            "purified_quality": as_float(worst.get("purified_quality")),
            "purified_quality_aligned": as_float(worst.get("purified_quality_aligned")),
            "abs_gain": as_float(worst.get("abs_gain")),
            "removed": 1 - as_float(worst["robust_abs_gain"]) / as_float(worst.get("abs_gain"))
            if as_float(worst.get("abs_gain")) > 0 else math.nan,
            "attacked_quality": 0.5 * (as_float(worst.get("ssim_attack")) + as_float(worst.get("psnr_attack")) / 80.0),
            "psnr_attack": as_float(worst.get("psnr_attack")),
            "psnr_def_adv": float(psnr.loc[worst_idx]),
            "damages": bool(harm.loc[worst_idx]), "damage_attacks": sorted(set(g.loc[harm.loc[g.index], "attack"])),
            **first,
            "seconds_def_adv": float(pd.to_numeric(g["seconds_def_adv"], errors="coerce").mean())
            if "seconds_def_adv" in g else math.nan,
            "n_attacks": int(g["attack"].nunique()),
            "adaptive": bool(g["adaptive_attack"].astype(bool).any()) if "adaptive_attack" in g else False,
            "baseline": bool(g["defense_baseline"].astype(bool).any()) if "defense_baseline" in g else False,
            "n_images": int(pd.to_numeric(g["n_images"], errors="coerce").min()) if "n_images" in g else 0,
            "cell_index": order,
        })
    return pd.DataFrame(rows)


def pareto_fronts(values: np.ndarray) -> np.ndarray:
    """Front number (1 = non-dominated) of each row of ``values`` (n × k, every column oriented so that
    larger is better; NaN is worse than any number)."""
    v = np.where(np.isnan(values), -np.inf, values.astype(float))
    n = len(v)
    front = np.zeros(n, dtype=int)
    remaining = set(range(n))
    level = 0
    while remaining:
        level += 1
        idx = sorted(remaining)
        current = [i for i in idx if not any(np.all(v[j] >= v[i]) and np.any(v[j] > v[i]) for j in idx if j != i)]
        for i in current:
            front[i] = level
        remaining -= set(current)
    return front


def ideal_distance(values: np.ndarray) -> np.ndarray:
    """``√(mean_k (1 − u_k)²)`` with ``u_k`` each column min–max scaled to [0, 1] (larger is better; a
    constant column gives 1, NaN gives 0)."""
    v = values.astype(float)
    lo, hi = np.nanmin(np.where(np.isnan(v), np.inf, v), axis=0), np.nanmax(np.where(np.isnan(v), -np.inf, v), axis=0)
    span = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        u = np.where(span > 0, (v - lo) / np.where(span > 0, span, 1.0), 1.0)
    u = np.where(np.isnan(v), 0.0, u)
    return np.sqrt(np.mean((1.0 - u) ** 2, axis=1))


def criteria_used(rows: pd.DataFrame) -> list[str]:
    """The criteria with a finite value for at least one of ``rows`` (SROCC only where there is MOS)."""
    return with_values(rows, CRITERIA)


def rank_defenses(rows: pd.DataFrame, section: list[str] = SECTION) -> pd.DataFrame:
    """Add ``front``, ``distance`` and ``rank`` (NA for baselines) per section, sorted: each section's
    baseline rows first (the reference), then by rank."""
    out = []
    for _, g in rows.groupby(section, sort=False):
        g = g.copy()
        ranked = g[~g["baseline"].astype(bool)]
        g["front"], g["distance"], g["rank"] = pd.NA, math.nan, pd.NA
        if len(ranked):
            crit = criteria_used(ranked)
            vals = np.column_stack([pd.to_numeric(ranked[c], errors="coerce").to_numpy(float)
                                    * (-1.0 if CRITERIA[c] == "lower" else 1.0) for c in crit])
            front, dist = pareto_fronts(vals), ideal_distance(vals)
            order = sorted(range(len(ranked)), key=lambda i: (front[i], round(dist[i], 12),
                                                             vals[i, 0] * -1, str(ranked.iloc[i]["defense"])))
            g.loc[ranked.index, "front"] = front
            g.loc[ranked.index, "distance"] = dist
            g.loc[ranked.index[order], "rank"] = np.arange(1, len(ranked) + 1)
        g["_ref"] = g["baseline"].astype(bool).map({True: 0, False: 1})
        out.append(g.sort_values(["_ref", "rank"], kind="stable", na_position="first").drop(columns="_ref"))
    table = pd.concat(out, ignore_index=True) if out else rows.assign(front=pd.NA, distance=math.nan, rank=pd.NA)
    table["front"] = table["front"].astype("Int64")
    table["rank"] = table["rank"].astype("Int64")
    return table


RULE = ("Ranked per dataset and metric by Pareto front over three criteria: worst robust gain ↓ (the attack "
        "that restored least), purified quality ↑ under that attack{aligned} and SROCC(m, s_D) ↑ (where "
        "there is MOS); within a front by the distance to the ideal point (each criterion min–max scaled over "
        "the ranked defenses). A defense worse on every criterion than another is never ranked above it, so "
        "destroying the image cannot win. Baselines (identity) are the reference row, not ranked.")


def rule_text(cells: pd.DataFrame) -> str:
    aligned = first_present(cells, QUALITY_COLUMNS) == "purified_quality_aligned"
    return RULE.format(aligned=" (measured against the clean image in the defense's geometry)" if aligned else "")
