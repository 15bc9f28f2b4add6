"""The leaderboard: several run directories merged into one table and one self-contained HTML page.

One row per (dataset, metric, defense): the defense's worst case over every attack it met in any of the
runs (formulas.md §3: the attack that restored the least, i.e. the largest robust gain ``mean|s − s'_D|/r``),
with the purified quality and both-defended gain of that same attack, the defense's cost in correlation
(SROCC/PLCC of ``s_D`` with MOS beside the undefended ``s``), its certificate where it has one, its time
per image, and whether any adaptive attack was among those it met (formulas.md §1: a defense met by no
adaptive attack is flagged). Rows are ranked within (dataset, metric) by worst robust gain, lowest first.

    python -m benchmark leaderboard runs/* -o site/

Writes ``leaderboard.csv``, ``leaderboard.md`` and ``index.html`` into the output folder; the runs are
only read (their summaries are recomputed from their stored records, so they need not be re-rendered).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from ..errors import BenchmarkError
from ..measures import summarize
from ..records import load_records
from ..store import atomic_write_text
from .html import _fmt, template_env, tradeoff_points

log = logging.getLogger(__name__)

GROUP = ["dataset", "metric", "defense"]
COLUMNS = {  # leaderboard column -> title in the HTML page
    "rank": "rank", "dataset": "dataset", "metric": "metric", "defense": "defense",
    "worst_robust_gain": "worst robust gain ↓", "worst_attack": "worst attack",
    "both_defended_gain": "both-defended gain", "purified_quality": "purified quality ↑",
    "srocc_clean": "SROCC(m, s)", "srocc_def_clean": "SROCC(m, s_D)", "plcc_def_clean": "PLCC(m, s_D)",
    "cert_width": "certified width", "abstain_rate": "abstain", "seconds_def_adv": "defense s/img",
    "n_attacks": "attacks", "adaptive": "adaptive attack met", "n_images": "n", "runs": "runs",
}


def run_summaries(run_dirs: list[Path]) -> tuple[pd.DataFrame, list[dict]]:
    """Every cell of every run (a ``run`` column added) and each run's provenance."""
    frames, provenance = [], []
    for run_dir in run_dirs:
        run_dir = Path(run_dir)
        if not (run_dir / "cells.json").is_file():
            raise BenchmarkError(f"{run_dir} is not a run directory (no cells.json)")
        summary = summarize(load_records(run_dir))
        if summary.empty:
            log.warning("%s has no finished cell; left out", run_dir)
            continue
        frames.append(summary.assign(run=run_dir.name))
        manifest = run_dir / "manifest.json"
        m = json.loads(manifest.read_text()) if manifest.is_file() else {}
        provenance.append({"run": run_dir.name, "path": str(run_dir), "cells": len(summary),
                           "git_commit": m.get("git_commit"), "device": (m.get("run") or {}).get("device"),
                           "device_name": m.get("device_name"), "written": m.get("written")})
    if not frames:
        raise BenchmarkError("no finished cell in " + ", ".join(str(d) for d in run_dirs))
    return pd.concat(frames, ignore_index=True), provenance


def _first(g: pd.DataFrame, col: str) -> float:
    """A per-defense measure (the same for every attack, e.g. SROCC of s_D): its first stored value."""
    return next((float(v) for v in g[col] if pd.notna(v)), float("nan")) if col in g else float("nan")


def leaderboard_table(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, metric, defense), its worst attack's numbers, ranked within (dataset, metric)."""
    rows = []
    for key, g in cells.groupby(GROUP, sort=False):
        worst = g.loc[g["robust_abs_gain"].astype(float).idxmax()]
        rows.append({**dict(zip(GROUP, key)), "worst_robust_gain": float(worst["robust_abs_gain"]),
                     "worst_attack": worst["attack"], "both_defended_gain": float(worst["both_defended_abs_gain"]),
                     "purified_quality": float(worst.get("purified_quality", float("nan"))),
                     **{c: _first(g, c) for c in ("srocc_clean", "srocc_def_clean", "plcc_def_clean",
                                                  "cert_width", "abstain_rate")},
                     "seconds_def_adv": float(g["seconds_def_adv"].mean()) if "seconds_def_adv" in g else float("nan"),
                     "n_attacks": int(g["attack"].nunique()), "adaptive": bool(g["adaptive_attack"].astype(bool).any()),
                     "n_images": int(g["n_images"].min()), "runs": ", ".join(sorted(set(g["run"])))})
    table = pd.DataFrame(rows).sort_values(["dataset", "metric", "worst_robust_gain"], kind="stable")
    table.insert(0, "rank", table.groupby(["dataset", "metric"]).cumcount() + 1)
    return table.reset_index(drop=True)[list(COLUMNS)]


def build_leaderboard(run_dirs: list[Path], out_dir: Path) -> Path:
    cells, provenance = run_summaries(run_dirs)
    table = leaderboard_table(cells)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "leaderboard.csv", table.to_csv(index=False))
    atomic_write_text(out_dir / "leaderboard.md", table.to_markdown(index=False, floatfmt=".4g") + "\n")
    env = template_env()
    points = tradeoff_points(table.rename(columns={"worst_robust_gain": "robust_abs_gain"})
                             .assign(attack=table["worst_attack"]))
    html = env.get_template("leaderboard.html.j2").render(
        title="Leaderboard", columns=list(COLUMNS.values()),
        rows=[[_fmt(v) for v in r] for r in table.itertuples(index=False)],
        non_adaptive=[f"{r.defense} on {r.metric}" for r in table.itertuples()
                      if not r.adaptive and r.defense != "identity"],
        points=points, provenance=provenance)
    out = out_dir / "index.html"
    atomic_write_text(out, html)
    return out
