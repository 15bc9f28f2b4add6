"""Verdicts (docs/measures.md, "Verdicts"): what an attacker who knows the defense achieves through it, and what the
defense costs, per cell as point values and as bootstrap replicates over images.

Per image of a cell (``d`` the attack's direction, +1 to raise predicted quality; ``sign`` −1 for a
lower-is-better metric; ``r`` the metric's score range):

- ``gain``: attack success through the defense, ``d · sign · (s'_D − s_D) / r`` (``D(x)`` and ``D(x')`` drawn
  with the same randomness by the runner); on the baseline (identity) it is the attack's own gain;
- ``bias``: the defense's own shift of clean scores, ``|s_D − s| / r``;
- ``quality``: the purified image's quality, ``½ [SSIM(A(x), D(x')) + PSNR(A(x), D(x'))/80]`` (the project's
  PSNR, capped at 100 dB; against the clean image in the defense's geometry where the run has it);
- ``fidelity_s`` = SROCC(s, s_D) and ``fidelity_m`` = SROCC(m, s_D) (both oriented to quality), per cell.

The bootstrap resamples image ids (``N_BOOT`` resamples, drawn from a seed derived from the sorted ids, so every
cell on the same images, in any run, is resampled identically and replicates combine across cells: the worst
case over attacks and the ranking are recomputed per resample, :mod:`benchmark.reports.ranking`). It is
vectorised (one gather of an ``N_BOOT × n`` index matrix per column) and stored per cell in
``<run>/cache/verdicts/<key>.npz``, keyed by the cell's stage keys, when the run's report is first written (at
the end of ``run``), so later ``report`` and ``leaderboard`` calls read it.
"""
from __future__ import annotations

import io
import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..correlation import orient
from ..seeds import seed_from
from ..store import atomic_write_bytes, content_key

log = logging.getLogger(__name__)

N_BOOT = 1000        # bootstrap resamples of the images
LEVEL = 0.95         # percentile interval
VERSION = 1          # of the stored replicates: bump when what they hold changes
INDICATIVE_N = 30    # fewer images: the ranking is indicative (docs/measures.md, "Verdicts")
PSNR_CAP = 100.0
STATS = ("gain", "bias", "quality", "fidelity_s", "fidelity_m")
CELL = ["dataset", "metric", "attack", "defense"]


def resample_index(ids: list[str], n_boot: int = N_BOOT) -> np.ndarray:
    """``n_boot × n`` indices into ``sorted(ids)``: the same for every cell on the same images."""
    ids = sorted(map(str, ids))
    rng = np.random.default_rng(seed_from("bootstrap", ids))
    return rng.integers(0, len(ids), size=(n_boot, len(ids)))


def _spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman ρ of each row pair of ``a`` and ``b`` (ties averaged); NaN where a row is constant."""
    ra = stats.rankdata(a, axis=-1)
    rb = stats.rankdata(b, axis=-1)
    ra = ra - ra.mean(axis=-1, keepdims=True)
    rb = rb - rb.mean(axis=-1, keepdims=True)
    den = np.sqrt((ra * ra).sum(-1) * (rb * rb).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(-1) / np.where(den > 0, den, 1.0), np.nan)


def per_image(g: pd.DataFrame) -> dict[str, np.ndarray]:
    """The per-image values of one cell's records (sorted by image id) that the verdict statistics average."""
    g = g.sort_values("image_id", kind="stable")
    lo, hi = float(g["range_lo"].iloc[0]), float(g["range_hi"].iloc[0])
    r = abs(hi - lo) or 1.0
    lower = bool(g["lower_better"].iloc[0]) if "lower_better" in g and pd.notna(g["lower_better"].iloc[0]) else False
    sign = -1.0 if lower else 1.0
    d = float(g["attack_direction"].iloc[0]) if "attack_direction" in g and pd.notna(
        g["attack_direction"].iloc[0]) else 1.0
    s, sd, sad = (g[c].to_numpy(float) for c in ("score", "score_def", "score_adv_def"))
    psnr_c, ssim_c = (("psnr_def_adv_aligned", "ssim_def_adv_aligned") if "psnr_def_adv_aligned" in g
                      and g["psnr_def_adv_aligned"].notna().all() else ("psnr_def_adv", "ssim_def_adv"))
    if psnr_c in g and ssim_c in g:
        quality = 0.5 * (g[ssim_c].to_numpy(float) + np.minimum(g[psnr_c].to_numpy(float), PSNR_CAP) / 80.0)
    else:
        quality = np.full(len(g), np.nan)
    mos_lower = bool(g["mos_lower_better"].iloc[0]) if "mos_lower_better" in g and pd.notna(
        g["mos_lower_better"].iloc[0]) else False
    m = g["mos"].to_numpy(float) if "mos" in g else np.full(len(g), np.nan)
    return {"ids": g["image_id"].astype(str).to_numpy(), "gain": d * sign * (sad - sd) / r,
            "bias": np.abs(sd - s) / r, "quality": quality, "s": s, "sd": sd,
            "m": orient(m, mos_lower), "sd_q": orient(sd, lower), "n": np.array(len(g))}


def cell_statistics(g: pd.DataFrame, n_boot: int = N_BOOT) -> dict[str, np.ndarray]:
    """``{stat: point}`` and ``{stat + "_reps": replicates (n_boot,)}`` of one cell (records of its images)."""
    v = per_image(g)
    n = int(v["n"])
    idx = resample_index(list(v["ids"]), n_boot)
    out: dict[str, np.ndarray] = {"n": np.array(n)}
    for k in ("gain", "bias", "quality"):
        x = v[k]
        out[k] = np.array(float(np.mean(x)))
        out[f"{k}_reps"] = x[idx].mean(axis=1)
    out["fidelity_s"] = _spearman_rows(v["s"][None], v["sd"][None])[0] if n >= 3 else np.array(np.nan)
    out["fidelity_s_reps"] = _spearman_rows(v["s"][idx], v["sd"][idx]) if n >= 3 else np.full(n_boot, np.nan)
    if n >= 3 and np.isfinite(v["m"]).all():
        out["fidelity_m"] = _spearman_rows(v["m"][None], v["sd_q"][None])[0]
        out["fidelity_m_reps"] = _spearman_rows(v["m"][idx], v["sd_q"][idx])
    else:
        out["fidelity_m"], out["fidelity_m_reps"] = np.array(np.nan), np.full(n_boot, np.nan)
    return {k: np.asarray(a, dtype=float) for k, a in out.items()}


def _cache_path(run_dir: Path, keys: dict | None) -> Path | None:
    if not keys:
        return None
    key = content_key({"verdicts": VERSION, "n_boot": N_BOOT, "stages": {k: keys.get(k) for k in
                                                                      ("clean", "attack", "def_clean", "def_adv")}})
    return Path(run_dir) / "cache" / "verdicts" / f"{key}.npz"


def _load(path: Path | None) -> dict[str, np.ndarray] | None:
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        log.info("verdicts: %s not readable (%s); recomputed", path, exc)
        return None


def _save(path: Path | None, stats_: dict[str, np.ndarray]) -> None:
    if path is None:
        return
    buf = io.BytesIO()
    np.savez(buf, **stats_)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as exc:  # a read-only run directory: recomputed next time, nothing lost
        log.info("verdicts: cache %s not written (%s)", path, exc)


def planned_keys(run_dir: Path) -> dict[tuple[str, ...], dict]:
    """The stage keys of each planned cell (``cells.json``), by (dataset, metric, attack, defense)."""
    f = Path(run_dir) / "cells.json"
    if not f.is_file():
        return {}
    return {tuple(c[k] for k in CELL): c.get("keys") for c in json.loads(f.read_text())}


def run_statistics(run_dir: Path, records: pd.DataFrame | None = None, cells: pd.DataFrame | None = None, *,
                   store: bool = True) -> dict[tuple[str, ...], dict[str, np.ndarray]]:
    """Verdict statistics of every cell of a run, by (dataset, metric, attack, defense): read from the cache, or
    computed from ``records`` (loaded when needed and not given) and, with ``store``, written to the cache."""
    keys = planned_keys(run_dir)
    wanted = [tuple(r) for r in cells[CELL].itertuples(index=False)] if cells is not None else list(keys)
    out: dict[tuple[str, ...], dict[str, np.ndarray]] = {}
    missing = []
    for cell in wanted:
        got = _load(_cache_path(run_dir, keys.get(cell)))
        if got is not None:
            out[cell] = got
        else:
            missing.append(cell)
    if missing:
        if records is None:
            from ..records import load_records

            from .runinfo import attach_direction

            records = attach_direction(load_records(Path(run_dir)), Path(run_dir))
        if len(records):
            groups = dict(iter(records.groupby(CELL, sort=False)))
            for cell in missing:
                g = groups.get(cell)
                if g is None or g.empty:
                    continue
                out[cell] = cell_statistics(g)
                if store:
                    _save(_cache_path(run_dir, keys.get(cell)), out[cell])
    return out


def interval(reps: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of the finite replicates (NaN when fewer than half of them are finite)."""
    r = np.asarray(reps, float)
    r = r[np.isfinite(r)]
    if len(r) < 2 or len(r) < 0.5 * np.size(reps):
        return (math.nan, math.nan)
    a = (1 - level) / 2
    return (float(np.quantile(r, a)), float(np.quantile(r, 1 - a)))


__all__ = ["INDICATIVE_N", "LEVEL", "N_BOOT", "STATS", "cell_statistics", "interval", "resample_index",
           "run_statistics"]
