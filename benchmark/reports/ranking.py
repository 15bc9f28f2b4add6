"""Ranking defenses on what an attacker who knows them achieves (docs/measures.md, "Verdicts"; docs/leaderboard.md).

Per (dataset, metric, budget) every defense is reduced to its worst case: the attack it met at that budget
(adaptive or transfer) with the largest attack success through the defense ``g_D = mean d·sign·(s'_D − s_D)/r``
(:mod:`benchmark.reports.verdicts`). Beside it:

- ``removed`` (gain removed) ``= 1 − g_D(worst) / g(worst attack on the baseline at the same budget)``: the
  reference is the strongest attack on the undefended metric (identity), not the worst attack's own gain; a
  negative value means the defense makes the metric easier to attack;
- costs, not robustness: ``bias`` (the defense's own shift of clean scores, ``mean |s_D − s|/r``), ``fidelity``
  (SROCC(s, s_D): the undefended metric's ranking of clean images that the defended one keeps; it needs no MOS and,
  on the few images of a run, is far less noisy than SROCC(m, s_D), which is shown beside it as ``fidelity_m``),
  ``quality`` (of the purified image under the worst attack, ½[SSIM + PSNR/80] against the clean image in the
  defense's geometry).

Rank: by the distance to the ideal ``√(mean_k (1 − u_k)²)`` over three utilities on fixed scales, so a defense's
score does not depend on which others are in the table: ``u_gain = clip(removed, 0, 1)`` (1: the attack no longer
moves the defended score), ``u_quality = clip(quality, 0, 1)``, ``u_fidelity = clip(fidelity, 0, 1)`` (a missing
value counts 0). Each utility grows with its criterion, so a defense worse on every criterion than another is
never ranked above it; a defense that removes no gain (flip against an adaptive attack) cannot win on image
quality, and one that wrecks the image (a constant output) cannot win on gain. Baselines (``baseline = True``)
are the reference row, not ranked.

Uncertainty: every criterion and the rank are recomputed on each bootstrap resample of the images (the
resamples are shared by all cells on the same images, so the worst case, the reference and the ranking are
recomputed jointly). Criteria get 95 % percentile intervals; the rank interval runs from the 2.5 % quantile of the
rank with ties counted in the defense's favour to the 97.5 % quantile with ties against it, widened to contain the
point rank. Defenses whose rank intervals overlap are not separable.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..measures import nan_mean
from .format import as_float
from .verdicts import INDICATIVE_N, LEVEL, interval

QUALITY_COLUMNS = ("purified_quality_aligned", "purified_quality")
PSNR_COLUMNS = ("psnr_def_adv_aligned", "psnr_def_adv")
SECTION = ["dataset", "metric", "budget_label"]
# the criteria shown with their bootstrap intervals (each gets _lo, _hi), with the direction that is better
CRITERIA = {"worst_gain": "lower", "removed": "higher", "quality": "higher", "fidelity": "higher", "bias": "lower"}
UNITS = {"linf": "L∞", "l2": "L2", "rmse": "RMSE", "universal": "amplitude"}
EASIER = "makes the metric easier to attack"
OPTIMISTIC = "optimistic bound: met no adaptive attack"
LOW_QUALITY = "lowest quality (below every other defense's interval)"
HIGH_BIAS = "largest bias (above every other defense's interval)"


def with_values(df: pd.DataFrame, names) -> list[str]:
    """Those of ``names`` (in their order) that ``df`` has with at least one numeric value."""
    return [n for n in names if n in df and pd.to_numeric(df[n], errors="coerce").notna().any()]


def row_tuples(df: pd.DataFrame, names) -> list:
    """``df.itertuples()`` over only those of ``names`` it has: the same values for those attributes, without
    converting every other column (a ranking has some fifty, replicate arrays among them)."""
    return list(df[[n for n in dict.fromkeys(names) if n in df]].itertuples())


def first_present(df: pd.DataFrame, names: tuple[str, ...]) -> str | None:
    """The first of ``names`` that ``df`` has with at least one numeric value."""
    return next(iter(with_values(df, names)), None)


def coalesce(df: pd.DataFrame, names: tuple[str, ...]) -> pd.Series:
    """Per row, the first finite value among ``names``."""
    out = pd.Series(math.nan, index=df.index, dtype=float)
    for n in reversed(names):
        if n in df:
            v = pd.to_numeric(df[n], errors="coerce")
            out = v.where(v.notna(), out)
    return out


def budget_labels(cells: pd.DataFrame) -> pd.Series:
    """Per cell, its budget with its unit (``4/255 L∞``): the worst case and the reference are taken per budget."""
    from .plots import fmt_budget

    unit_col = "budget_unit" if "budget_unit" in cells else "threat_model" if "threat_model" in cells else None
    if "budget" not in cells:
        return pd.Series("–", index=cells.index)
    units = cells[unit_col] if unit_col else pd.Series(None, index=cells.index, dtype=object)
    memo: dict = {}   # (budget, unit) -> label: a run has few budgets, so each label is formatted once
    out = []
    for v, unit in zip(cells["budget"], units):
        b = as_float(v)
        unit = UNITS.get(str(unit), str(unit)) if unit is not None and pd.notna(unit) else ""
        key = (b, math.copysign(1.0, b), unit) if math.isfinite(b) else None
        if key not in memo:
            memo[key] = f"{fmt_budget(b)} {unit}".strip() if math.isfinite(b) else "–"
        out.append(memo[key])
    return pd.Series(out, index=cells.index)


# the summary's column of a point statistic, for a cell without verdict statistics
POINT_COLUMNS = {"gain": "defended_gain", "bias": "defense_bias", "fidelity_s": "srocc_s_sdef",
                 "fidelity_m": "srocc_def_clean"}


def _points(cells: pd.DataFrame, stats: dict, name: str) -> np.ndarray:
    """Every cell's point statistic ``name`` (in the order of ``cells``): from its verdict statistics, else from the
    summary's column (the quality: the first of ``QUALITY_COLUMNS`` it has)."""
    if name == "quality":
        fallback = coalesce(cells, QUALITY_COLUMNS).to_numpy(float)
    elif POINT_COLUMNS.get(name) in cells:
        fallback = [as_float(v) for v in cells[POINT_COLUMNS[name]]]
    else:
        fallback = np.full(len(cells), math.nan)
    out = [float(s[name]) if s is not None and name in s else float(f)
           for s, f in zip((stats.get(i) for i in cells.index), fallback)]
    return np.array(out, dtype=float)


def _reps(stats: dict | None, name: str, n_boot: int) -> np.ndarray:
    if stats is not None and f"{name}_reps" in stats and len(stats[f"{name}_reps"]) == n_boot:
        return np.asarray(stats[f"{name}_reps"], float)
    return np.full(n_boot, np.nan)


def _nanargmax_rows(a: np.ndarray) -> np.ndarray:
    """Per column of ``a`` (k × B), the row of its largest finite value (0 where none is finite)."""
    return np.argmax(np.where(np.isfinite(a), a, -np.inf), axis=0)


def _first_finite(values: np.ndarray) -> float:
    """The first finite value of ``values`` (NaN when none is)."""
    hit = np.flatnonzero(np.isfinite(values))
    return float(values[hit[0]]) if len(hit) else math.nan


def _numeric(cells: pd.DataFrame, name: str) -> np.ndarray | None:
    """A column as ``pd.to_numeric(errors="coerce")`` gives it, as float64 (None when absent or not a number)."""
    if name not in cells:
        return None
    v = pd.to_numeric(cells[name], errors="coerce")
    return v.to_numpy(float, na_value=math.nan) if v.dtype.kind in "fiu" else None


def _nan_reduce(values: np.ndarray, how: str) -> float:
    """``max``, ``min`` or ``mean`` of the non-NaN ``values`` as a pandas Series of float64 computes it (NaN when
    there is none; the mean sums the values with the missing ones as 0, like pandas' ``nanmean``)."""
    missing = np.isnan(values)
    if missing.all():
        return math.nan
    if how == "mean":
        return nan_mean(values)
    kept = values[~missing]
    return float(kept.max() if how == "max" else kept.min())


# the worst cell's own value of these columns (as_float; NaN when the summary lacks the column)
WORST_COLUMNS = {"both_defended_gain": "both_defended_abs_gain", "abs_gain": "abs_gain",
                 "purified_quality": "purified_quality", "purified_quality_aligned": "purified_quality_aligned",
                 "srocc_clean": "srocc_clean", "srocc_def_clean": "srocc_def_clean", "plcc_def_clean": "plcc_def_clean",
                 "cert_width": "cert_width", "abstain_rate": "abstain_rate"}


class _Columns:
    """The columns :func:`defense_rows` reads, extracted once from ``cells`` (positional arrays), so that each
    (…, budget, defense) group is read by positions instead of through pandas."""

    def __init__(self, cells: pd.DataFrame, stats: dict):
        self.index = list(cells.index)
        self.points = {name: _points(cells, stats, name) for name in ("gain", "quality", "bias", "fidelity_s",
                                                                      "fidelity_m")}
        self.attack = cells["attack"].to_numpy(object)
        self.worst = {c: cells[c].to_numpy(object) for c in set(WORST_COLUMNS.values()) | {"ssim_attack",
                                                                                          "psnr_attack"} if c in cells}
        self.numeric = {c: _numeric(cells, c) for c in ("robust_abs_gain", "seconds_def_adv", "eot_samples",
                                                        "n_images")}
        self.flags = {c: cells[c].fillna(False).astype(bool).to_numpy(bool)
                      for c in ("adaptive_attack", "defense_baseline") if c in cells}

    def value(self, name: str, p: int) -> float:
        """``as_float`` of the cell at position ``p`` in column ``name`` (NaN when the summary lacks it)."""
        return as_float(self.worst[name][p]) if name in self.worst else math.nan


SERIES_REDUCTIONS = {"max": pd.Series.max, "min": pd.Series.min, "mean": pd.Series.mean}


def _group_reduce(cells: pd.DataFrame, cols: _Columns, name: str, pos: np.ndarray, how: str) -> float:
    """``float(pd.to_numeric(g[name], errors="coerce").<how>())`` of the group at positions ``pos``."""
    values = cols.numeric.get(name)
    if values is None:   # not a plain number column: as pandas computes it
        return float(SERIES_REDUCTIONS[how](pd.to_numeric(cells[name].iloc[pos], errors="coerce")))
    return _nan_reduce(values[pos], how)


def defense_rows(cells: pd.DataFrame, group: list[str] | None = None, stats: dict | None = None,
                 n_boot: int | None = None) -> pd.DataFrame:
    """One row per (dataset, metric, budget, defense): its worst case over the attacks it met at that budget and
    its costs, with ``cell_index`` (the cells behind the row, worst first) and the replicates (``_reps`` columns
    holding arrays) when ``stats`` (cell index -> verdict statistics) has them."""
    cells = cells.copy()
    cells["budget_label"] = budget_labels(cells)
    group = list(group or ["dataset", "metric", "defense"])
    group = [c for c in group if c != "defense"] + ["budget_label", "defense"]
    stats = stats or {}
    n_boot = n_boot or next((len(s["gain_reps"]) for s in stats.values() if "gain_reps" in s), 0)
    cols = _Columns(cells, stats)
    groups = sorted(cells.groupby(group, sort=False).indices.items(), key=lambda kv: kv[1][0])  # first seen first
    return pd.DataFrame([_defense_row(cells, cols, group, key, pos, stats, n_boot) for key, pos in groups])


def _defense_row(cells: pd.DataFrame, cols: _Columns, group: list[str], key, pos: np.ndarray, stats: dict,
                 n_boot: int) -> dict:
    """The row of :func:`defense_rows` of the group of cells at positions ``pos``."""
    idx = [cols.index[p] for p in pos]
    gains = cols.points["gain"][pos]
    finite = np.where(np.isfinite(gains), gains, -np.inf)
    k = int(np.argmax(finite)) if np.isfinite(gains).any() else 0
    order = [idx[k]] + [idx[j] for j in np.argsort(-finite, kind="stable") if j != k]
    w = pos[k]
    row = {**dict(zip(group, key if isinstance(key, tuple) else (key,))),
           "worst_gain": float(gains[k]), "worst_attack": cols.attack[w],
           "quality": float(cols.points["quality"][w]),
           "bias": _first_finite(cols.points["bias"][pos]),
           "fidelity_s": _first_finite(cols.points["fidelity_s"][pos]),
           "fidelity_m": _first_finite(cols.points["fidelity_m"][pos]),
           # the published measures, under their names (docs/measures.md §3)
           "worst_robust_gain": _group_reduce(cells, cols, "robust_abs_gain", pos, "max")
           if "robust_abs_gain" in cells else math.nan,
           "both_defended_gain": cols.value(WORST_COLUMNS["both_defended_gain"], w),
           "abs_gain": cols.value("abs_gain", w),
           "purified_quality": cols.value("purified_quality", w),
           "purified_quality_aligned": cols.value("purified_quality_aligned", w),
           "attacked_quality": 0.5 * (cols.value("ssim_attack", w) + min(cols.value("psnr_attack", w), 100.0) / 80.0),
           "srocc_clean": cols.value("srocc_clean", w), "srocc_def_clean": cols.value("srocc_def_clean", w),
           "plcc_def_clean": cols.value("plcc_def_clean", w),
           "cert_width": cols.value("cert_width", w), "abstain_rate": cols.value("abstain_rate", w),
           "seconds_def_adv": _group_reduce(cells, cols, "seconds_def_adv", pos, "mean")
           if "seconds_def_adv" in cells else math.nan,
           "eot_samples": _eot_samples(cells, cols, pos),
           "n_attacks": len({a for a in cols.attack[pos] if not pd.isna(a)}),
           "adaptive": bool(cols.flags["adaptive_attack"][pos].any()) if "adaptive_attack" in cols.flags else False,
           "baseline": bool(cols.flags["defense_baseline"][pos].any()) if "defense_baseline" in cols.flags else False,
           "n_images": int(_group_reduce(cells, cols, "n_images", pos, "min")) if "n_images" in cells else 0,
           "cell_index": order}
    if n_boot:
        gr = np.stack([_reps(stats.get(i), "gain", n_boot) for i in idx])
        at = _nanargmax_rows(gr)
        qr = np.stack([_reps(stats.get(i), "quality", n_boot) for i in idx])
        columns = np.arange(n_boot)
        row["worst_gain_reps"] = np.where(np.isfinite(gr).any(0), gr[at, columns], np.nan)
        row["quality_reps"] = qr[at, columns]
        first = next((i for i in idx if stats.get(i) is not None), idx[0])
        for name in ("bias", "fidelity_s", "fidelity_m"):
            row[f"{name}_reps"] = _reps(stats.get(first), name, n_boot)
    return row


def _eot_samples(cells: pd.DataFrame, cols: _Columns, pos: np.ndarray) -> int:
    """The largest ``eot_samples`` of the group at positions ``pos`` (0 when it has none)."""
    if "eot_samples" not in cells:
        return 0
    values = cols.numeric["eot_samples"]
    if values is None:   # not a plain number column: as pandas computes it
        v = pd.to_numeric(cells["eot_samples"].iloc[pos], errors="coerce")
        return int(v.max()) if v.notna().any() else 0
    return int(_nan_reduce(values[pos], "max")) if not np.isnan(values[pos]).all() else 0


def _utilities(gain_u: np.ndarray, quality: np.ndarray, fidelity: np.ndarray) -> np.ndarray:
    """Distance to the ideal from the three utilities (arrays of the same shape; NaN counts 0)."""
    u = [np.nan_to_num(np.clip(v, 0.0, 1.0), nan=0.0) for v in (gain_u, quality, fidelity)]
    return np.sqrt(sum((1.0 - x) ** 2 for x in u) / 3.0)


def _gain_utility(worst: np.ndarray, ref: np.ndarray | float) -> np.ndarray:
    """``clip(1 − worst/ref, 0, 1)``; without a usable reference, ``1 − worst / max(worst)`` over the defenses."""
    ref = np.asarray(ref, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        removed = 1.0 - worst / ref
        top = np.nanmax(np.where(np.isfinite(worst), worst, np.nan), axis=0, keepdims=True) if np.isfinite(
            worst).any() else np.ones_like(worst[:1])
        fallback = 1.0 - worst / np.where(top > 0, top, np.nan)
    return np.where(np.isfinite(ref) & (ref > 0), removed, fallback)


def rank_defenses(rows: pd.DataFrame, section: list[str] = SECTION) -> pd.DataFrame:
    """Add ``reference_gain``, ``removed``, ``fidelity``, ``distance``, ``rank`` (NA for baselines), the criteria's
    intervals (``_lo``/``_hi``), ``rank_low``/``rank_high``, ``separable`` and ``notes``, per section; sorted with
    each section's baseline rows first, then by rank."""
    out = []
    section = [c for c in section if c in rows]
    for _, g in rows.groupby(section, sort=False):
        g = g.copy()
        base = g["baseline"].astype(bool)
        has_reps = "worst_gain_reps" in g
        n_boot = len(g["worst_gain_reps"].iloc[0]) if has_reps else 0
        g["fidelity"] = g["fidelity_s"]
        ref = float(g.loc[base, "worst_gain"].max()) if base.any() else math.nan
        g["reference_gain"] = ref
        with np.errstate(invalid="ignore", divide="ignore"):
            g["removed"] = 1.0 - g["worst_gain"] / ref if math.isfinite(ref) and ref > 0 else math.nan
        if has_reps:
            ref_reps = np.nanmax(np.stack(list(g.loc[base, "worst_gain_reps"])), axis=0) if base.any() else \
                np.full(n_boot, np.nan)
            g["fidelity_reps"] = list(g["fidelity_s_reps"])
            with np.errstate(invalid="ignore", divide="ignore"):
                g["removed_reps"] = [1.0 - w / ref_reps for w in g["worst_gain_reps"]]
            for c in CRITERIA:
                lo_hi = _intervals(list(g[f"{c}_reps"]))
                g[f"{c}_lo"], g[f"{c}_hi"] = [a for a, _ in lo_hi], [b for _, b in lo_hi]
        else:
            for c in CRITERIA:
                g[f"{c}_lo"], g[f"{c}_hi"] = math.nan, math.nan
        g["distance"], g["rank"], g["rank_low"], g["rank_high"] = math.nan, pd.NA, pd.NA, pd.NA
        g["separable"], g["notes"] = "", ""
        ranked = g[~base]
        if len(ranked):
            w = ranked["worst_gain"].to_numpy(float)
            dist = _utilities(_gain_utility(w[:, None], ref)[:, 0], ranked["quality"].to_numpy(float),
                              ranked["fidelity"].to_numpy(float))
            gain_u = np.nan_to_num(_gain_utility(w[:, None], ref)[:, 0], nan=0.0)
            order = sorted(range(len(ranked)), key=lambda i: (round(float(dist[i]), 12), -gain_u[i],
                                                              str(ranked["defense"].iloc[i])))
            point = np.empty(len(ranked), dtype=int)
            point[order] = np.arange(1, len(ranked) + 1)
            g.loc[ranked.index, "distance"] = dist
            g.loc[ranked.index, "rank"] = point
            if has_reps:
                wr = np.stack(list(ranked["worst_gain_reps"]))
                dr = _utilities(_gain_utility(wr, ref_reps[None]), np.stack(list(ranked["quality_reps"])),
                                np.stack(list(ranked["fidelity_reps"])))
                dr = np.round(dr, 12)
                better = (dr[None, :, :] < dr[:, None, :]).sum(axis=1)          # strictly better, per resample
                not_worse = (dr[None, :, :] <= dr[:, None, :]).sum(axis=1)     # ties included (itself too)
                a = (1 - 0.95) / 2
                low = np.floor(np.quantile(better + 1, a, axis=1)).astype(int)
                high = np.ceil(np.quantile(not_worse, 1 - a, axis=1)).astype(int)
                g.loc[ranked.index, "rank_low"] = np.minimum(low, point)
                g.loc[ranked.index, "rank_high"] = np.maximum(high, point)
                g.loc[ranked.index, "separable"] = _separable(ranked["defense"].tolist(),
                                                              np.minimum(low, point), np.maximum(high, point))
            g.loc[ranked.index, "notes"] = _notes(g, ranked.index)
        g["_ref"] = base.map({True: 0, False: 1})
        out.append(g.sort_values(["_ref", "rank"], kind="stable", na_position="first").drop(columns="_ref"))
    table = pd.concat(out, ignore_index=True) if out else rows.assign(rank=pd.NA, distance=math.nan)
    for c in ("rank", "rank_low", "rank_high"):
        if c in table:
            table[c] = table[c].astype("Int64")
    return table


def _intervals(reps: list) -> list[tuple[float, float]]:
    """:func:`~benchmark.reports.verdicts.interval` of each array of replicates: those without a missing replicate
    in one quantile call (the same numbers), the others one by one."""
    arrays = [np.asarray(r, float) for r in reps]
    out: list = [None] * len(arrays)
    if arrays and len({a.shape for a in arrays}) == 1 and arrays[0].ndim == 1 and arrays[0].size >= 2:
        stacked = np.stack(arrays)
        full = np.isfinite(stacked).all(axis=1)
        if full.any():
            a = (1 - LEVEL) / 2
            q = np.quantile(stacked[full], [a, 1 - a], axis=1)
            for k, lo, hi in zip(np.flatnonzero(full), q[0], q[1]):
                out[k] = (float(lo), float(hi))
    return [o if o is not None else interval(r) for o, r in zip(out, reps)]


def _separable(names: list[str], low: np.ndarray, high: np.ndarray) -> list[str]:
    """Per defense, the others whose rank interval overlaps its own ("" when it is separable from all)."""
    return [", ".join(names[j] for j in range(len(names)) if j != i and low[j] <= high[i] and low[i] <= high[j])
            for i in range(len(names))]


def _notes(g: pd.DataFrame, ranked: pd.Index) -> list[str]:
    """What is unusual for a ranked defense in its section: flags, not every cost."""
    rows = g.loc[ranked]
    adaptive = [bool(v) for v in rows["adaptive"]]
    removed = [as_float(v) for v in rows["removed"]] if "removed" in rows else [math.nan] * len(rows)
    removed_hi = [as_float(v) for v in rows["removed_hi"]] if "removed_hi" in rows else [math.nan] * len(rows)
    quality = [as_float(v) for v in rows["quality"]]
    bias = [as_float(v) for v in rows["bias"]]
    q_lo = pd.to_numeric(rows["quality_lo"], errors="coerce").to_numpy(float, na_value=math.nan)
    b_hi = pd.to_numeric(rows["bias_hi"], errors="coerce").to_numpy(float, na_value=math.nan)
    out = []
    for k in range(len(rows)):
        others = np.arange(len(rows)) != k
        notes = []
        if not adaptive[k]:
            notes.append(OPTIMISTIC)
        if math.isfinite(removed_hi[k]) and removed_hi[k] < 0:
            notes.append(EASIER)
        elif not math.isfinite(removed_hi[k]) and removed[k] < 0:
            notes.append(EASIER)
        if others.any():
            lo = q_lo[others]
            if not np.isnan(lo).any() and quality[k] < lo.min():
                notes.append(LOW_QUALITY)
            hi = b_hi[others]
            if not np.isnan(hi).any() and bias[k] > hi.max():
                notes.append(HIGH_BIAS)
        out.append("; ".join(notes))
    return out


def not_separable_groups(table: pd.DataFrame) -> list[list[str]]:
    """Runs of consecutively ranked defenses whose rank intervals overlap (each run of two or more)."""
    ranked = table[table["rank"].notna()].sort_values("rank")
    groups, current, reach = [], [], -1
    for r in row_tuples(ranked, ["defense", "rank_low", "rank_high"]):
        lo, hi = r.rank_low, r.rank_high
        if lo is pd.NA or hi is pd.NA:
            continue
        if current and lo <= reach:
            current.append(r.defense)
            reach = max(reach, hi)
        else:
            if len(current) > 1:
                groups.append(current)
            current, reach = [r.defense], hi
    if len(current) > 1:
        groups.append(current)
    return groups


def indicative(n_images: int) -> bool:
    """Fewer than ``INDICATIVE_N`` images: the ranking is indicative only."""
    return n_images < INDICATIVE_N


RULE = ("Ranked per dataset, metric and budget on what an attacker who knows the defense achieves: its worst case is "
        "the attack, adaptive or transfer, with the largest gain through the defense g_D = mean d·sign·(s'_D − s_D)/r "
        "(D(x) and D(x') with the same random draw). Gain removed = 1 − g_D(worst)/g(strongest attack on {ref} at the "
        "same budget). Order: distance to the ideal over three utilities on fixed scales (gain removed, purified "
        "quality{aligned} and fidelity {fid}, each clipped to [0, 1]), so a defense that removes no gain cannot win on "
        "image quality and one that wrecks the image cannot win on gain. The defense's own score shift (bias) is a "
        "cost, shown beside it. Intervals: 95 % bootstrap over images; ranks whose intervals overlap are not "
        "separable. Baselines are the reference row, not ranked.")


def rule_text(cells: pd.DataFrame) -> str:
    aligned = first_present(cells, QUALITY_COLUMNS) == "purified_quality_aligned"
    return RULE.format(ref="the undefended metric (identity)",
                       aligned=" (against the clean image in the defense's geometry)" if aligned else "",
                       fid="SROCC(s, s_D)")
