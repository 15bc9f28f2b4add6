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
vectorised over the cells on the same images (one gather of an ``N_BOOT × n`` index matrix per column), and a
fidelity is computed once per (clean scores, defended clean scores), i.e. once per defense rather than per attack;
nothing is stored (on 10,080 cells of 20 images this takes seconds, where reading stored replicates took longer).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..correlation import rank_rows
from ..records import cells_of, load_records
from ..seeds import seed_from
from .runinfo import attach_direction

N_BOOT = 1000        # bootstrap resamples of the images
LEVEL = 0.95         # percentile interval
INDICATIVE_N = 30    # fewer images: the ranking is indicative (docs/measures.md, "Verdicts")
PSNR_CAP = 100.0
STATS = ("gain", "bias", "quality", "fidelity_s", "fidelity_m")
CELL = ["dataset", "metric", "attack", "defense"]


def resample_index(ids: list[str], n_boot: int = N_BOOT) -> np.ndarray:
    """``n_boot × n`` indices into ``sorted(ids)``: the same for every cell on the same images."""
    ids = sorted(map(str, ids))
    rng = np.random.default_rng(seed_from("bootstrap", ids))
    return rng.integers(0, len(ids), size=(n_boot, len(ids)))


def _centred_ranks(a: np.ndarray) -> np.ndarray:
    """The ranks of each row of ``a`` (ties averaged) less their row mean."""
    r = rank_rows(a.reshape(-1, a.shape[-1])).reshape(a.shape)   # = scipy.stats.rankdata(a, axis=-1)
    return r - r.mean(axis=-1, keepdims=True)


def _spearman_rows(a: np.ndarray, b: np.ndarray, ra: np.ndarray | None = None, rb: np.ndarray | None = None
                   ) -> np.ndarray:
    """Spearman ρ of each row pair of ``a`` and ``b`` (ties averaged); NaN where a row is constant (``ra``, ``rb``:
    their centred ranks, when the caller has them)."""
    ra = _centred_ranks(a) if ra is None else ra
    rb = _centred_ranks(b) if rb is None else rb
    den = np.sqrt((ra * ra).sum(-1) * (rb * rb).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(-1) / np.where(den > 0, den, 1.0), np.nan)


def _column(records: pd.DataFrame, name: str, default: float = math.nan) -> np.ndarray:
    """A per-row float column (``default`` where the records lack it)."""
    return records[name].to_numpy(float) if name in records else np.full(len(records), default)


def _flag(records: pd.DataFrame, name: str) -> np.ndarray:
    """A per-row boolean column; missing or NaN (records of old runs) is False."""
    if name not in records:
        return np.zeros(len(records), bool)
    v = records[name]
    return v.where(v.notna(), False).astype(bool).to_numpy()


def per_row(records: pd.DataFrame) -> dict[str, np.ndarray]:
    """The per-image values the verdict statistics average, for every row of ``records`` at once (the per-cell
    metadata, direction, range and scale, is constant within a cell). ``quality`` is given both ways, against the
    clean image in the defense's geometry (``quality_aligned``) and as stored: a cell uses the first where it has
    it for every image."""
    lo, hi = _column(records, "range_lo"), _column(records, "range_hi")
    r = np.abs(hi - lo)
    r = np.where(r == 0, 1.0, r)                      # abs(hi - lo) or 1.0
    sign = np.where(_flag(records, "lower_better"), -1.0, 1.0)
    d = _column(records, "attack_direction", 1.0)
    d = np.where(np.isnan(d), 1.0, d)
    s, sd, sad = (records[c].to_numpy(float) for c in ("score", "score_def", "score_adv_def"))
    m = _column(records, "mos")
    # both oriented to quality, as correlation.orient does per cell
    out = {"gain": d * sign * (sad - sd) / r, "bias": np.abs(sd - s) / r, "s": s, "sd": sd,
           "m": np.where(_flag(records, "mos_lower_better"), -m, m), "sd_q": np.where(sign < 0, -sd, sd)}
    for tag, (psnr_c, ssim_c) in (("quality_aligned", ("psnr_def_adv_aligned", "ssim_def_adv_aligned")),
                                  ("quality", ("psnr_def_adv", "ssim_def_adv"))):
        if psnr_c in records and ssim_c in records:
            out[tag] = 0.5 * (_column(records, ssim_c) + np.minimum(_column(records, psnr_c), PSNR_CAP) / 80.0)
        else:
            out[tag] = np.full(len(records), np.nan)
    out["has_aligned"] = ~np.isnan(_column(records, "psnr_def_adv_aligned"))
    return out


GATHER = 2 ** 20   # values gathered at once when resampling the cells on the same images (8 MB: fastest measured)


def _resampled_means(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``x[k][idx].mean(axis=1)`` for every row ``k`` of ``x`` (cells × images), bit for bit: the gathered values of a
    chunk of cells are reduced as one 2-D array of (cell, resample) rows, as one cell's would be."""
    b, n = idx.shape
    step = max(1, GATHER // max(1, idx.size))
    return np.concatenate([x[i:i + step][:, idx].reshape(-1, n).mean(axis=1).reshape(-1, b)
                           for i in range(0, len(x), step)])


def frame_statistics(records: pd.DataFrame, n_boot: int = N_BOOT) -> dict[tuple[str, ...], dict[str, np.ndarray]]:
    """``{stat: point}`` and ``{stat + "_reps": replicates (n_boot,)}`` of every cell of ``records``, by (dataset,
    metric, attack, defense). Per-image values are computed for all rows at once; a fidelity (which depends on the
    clean and the defended clean scores only, so is the same for every attack of a defense) is computed once."""
    if records.empty:
        return {}
    v = per_row(records)
    ids_all = records["image_id"].astype(str).to_numpy(object)
    by_ids: dict[tuple[str, ...], list] = {}      # sorted image ids -> [(cell, positions sorted by image id)]
    for cell, pos in records.groupby(CELL, sort=False).indices.items():
        pos = pos[np.argsort(ids_all[pos], kind="stable")]
        by_ids.setdefault(tuple(ids_all[pos]), []).append((cell, pos))
    out: dict[tuple[str, ...], dict[str, np.ndarray]] = {}
    fidelity: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
    for ids, group in by_ids.items():
        n = len(ids)
        idx = resample_index(list(ids), n_boot)
        # the resampled scores' centred ranks, by the scores: the clean scores' (and the MOS') are the same for every
        # defense of a (dataset, metric)
        ranks: dict[bytes, np.ndarray] = {}

        def resampled_ranks(x: np.ndarray) -> np.ndarray:
            key = x.tobytes()
            if key not in ranks:
                ranks[key] = _centred_ranks(x[idx])
            return ranks[key]

        rows = np.stack([pos for _, pos in group])
        aligned = v["has_aligned"][rows].all(axis=1)
        quality = np.where(aligned[:, None], v["quality_aligned"][rows], v["quality"][rows])
        values = {"gain": v["gain"][rows], "bias": v["bias"][rows], "quality": quality}
        reps = {k: _resampled_means(x, idx) for k, x in values.items()}
        for j, (cell, pos) in enumerate(group):
            st: dict[str, np.ndarray] = {"n": np.array(n)}
            for k, x in values.items():
                st[k] = np.array(float(np.mean(x[j])))
                st[f"{k}_reps"] = reps[k][j]
            for name, (a, b) in (("fidelity_s", ("s", "sd")), ("fidelity_m", ("m", "sd_q"))):
                xa, xb = v[a][pos], v[b][pos]
                if n < 3 or (name == "fidelity_m" and not np.isfinite(xa).all()):
                    st[name], st[f"{name}_reps"] = np.array(np.nan), np.full(n_boot, np.nan)
                    continue
                key = (name, ids, xa.tobytes(), xb.tobytes())
                if key not in fidelity:
                    fidelity[key] = (_spearman_rows(xa[None], xb[None])[0],
                                     _spearman_rows(xa[idx], xb[idx], resampled_ranks(xa), resampled_ranks(xb)))
                st[name], st[f"{name}_reps"] = fidelity[key]
            out[cell] = {k: np.asarray(a, dtype=float) for k, a in st.items()}
    return out


def cell_statistics(g: pd.DataFrame, n_boot: int = N_BOOT) -> dict[str, np.ndarray]:
    """``{stat: point}`` and ``{stat + "_reps": replicates (n_boot,)}`` of one cell (records of its images)."""
    g = g.assign(**{c: "" for c in CELL if c not in g})
    return next(iter(frame_statistics(g, n_boot).values()))


def run_statistics(run_dir: Path, records: pd.DataFrame | None = None, cells: pd.DataFrame | None = None
                   ) -> dict[tuple[str, ...], dict[str, np.ndarray]]:
    """Verdict statistics of the cells of a run (``cells``: those of this frame; default every cell of the records),
    by (dataset, metric, attack, defense), computed from ``records`` (loaded from the run when not given)."""
    if records is None:
        records = attach_direction(load_records(Path(run_dir)), Path(run_dir))
    return frame_statistics(cells_of(records, cells) if cells is not None and len(records) else records)


def interval(reps: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of the finite replicates (NaN when fewer than half of them are finite)."""
    r = np.asarray(reps, float)
    r = r[np.isfinite(r)]
    if len(r) < 2 or len(r) < 0.5 * np.size(reps):
        return (math.nan, math.nan)
    a = (1 - level) / 2
    return (float(np.quantile(r, a)), float(np.quantile(r, 1 - a)))


__all__ = ["INDICATIVE_N", "LEVEL", "N_BOOT", "STATS", "cell_statistics", "frame_statistics", "interval",
           "resample_index", "run_statistics"]
