"""The leaderboard: several run directories merged into one table and one self-contained HTML page.

One row per (dataset, metric, defense): the defense's worst case over every attack it met in any of the
runs (formulas.md §3: the attack that restored the least, i.e. the largest robust gain ``mean|s − s'_D|/r``),
with the purified quality and both-defended gain under that same attack, the defense's cost in
correlation (SROCC/PLCC of ``s_D`` with MOS beside the undefended ``s``), its certificate where it has
one, its time per image, whether any adaptive attack was among those it met, and whether its purified
image is further from the clean one than the attacked image is. Rows are ranked within (dataset, metric)
by :mod:`benchmark.reports.ranking` (Pareto front over worst robust gain, purified quality and SROCC
kept, then distance to the ideal; baselines are the reference row, not ranked; docs/leaderboard.md).

Rows merge by plugin name and resolved parameters (:mod:`benchmark.reports.protocol`), so ``median`` and
``median(kernel=3)`` are one row. Runs whose protocol differs (image size or policy, dataset parameters,
metric parameters, attack budgets) are refused unless ``allow_mixed``; a run that contributes no row is
named in a warning and on the page.

    python -m benchmark leaderboard runs/* -o site/ [--allow-mixed]

Writes ``leaderboard.csv``, ``leaderboard.md`` and ``index.html`` into the output folder; the runs are only
read. Each run's stored ``summary.csv`` is used when it is newer than every stored stage of the run (and
has the columns needed), otherwise its summary is computed from the records.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ..errors import BenchmarkError
from ..schema import column
from ..store import atomic_write_text
from . import plots
from .format import DAMAGES, defense_flags, fmt, header, rank_text
from .html import template_env
from .protocol import differences, load_plugin_files, plugin_keys, protocol
from .ranking import QUALITY_COLUMNS, damages, defense_rows, first_present, rank_defenses, rule_text, \
    with_values
from .runinfo import attach_baseline, complete_summary, doc_href, load_manifest, measures_link
from .sections import verdict
from .tables import csv_text, markdown_text, restore_formulas

log = logging.getLogger(__name__)

GROUP = ["dataset", "metric", "defense"]
COLUMNS = ["rank", "front", "dataset", "metric", "defense", "baseline", "worst_robust_gain", "worst_attack",
           "abs_gain", "removed", "both_defended_gain", "quality", "attacked_quality", "purified_quality",
           "purified_quality_aligned", "damages",
           "srocc_clean", "srocc_def_clean", "plcc_def_clean", "cert_width", "abstain_rate", "seconds_def_adv",
           "n_attacks", "adaptive", "n_images", "distance", "runs"]
NEEDED = {"dataset", "metric", "attack", "defense", "robust_abs_gain", "n_images"}
SHOWN = ["worst_robust_gain", "removed", "quality", "srocc_def_clean", "plcc_def_clean", "both_defended_gain",
         "cert_width", "seconds_def_adv", "n_attacks"]


@dataclass
class Run:
    path: Path
    manifest: dict
    cells: pd.DataFrame
    reason: str = ""                      # why it contributes no row
    provenance: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name


def _newest_stage(run_dir: Path) -> float:
    newest = 0.0
    stages = run_dir / "stages"
    if stages.is_dir():
        for kind in os.scandir(stages):
            if kind.is_dir():
                for f in os.scandir(kind.path):
                    newest = max(newest, f.stat().st_mtime)
    return newest


def run_summary(run_dir: Path) -> pd.DataFrame:
    """The run's per-cell summary: its stored summary.csv when that is newer than every stored stage, else
    computed from the records (nothing is written into the run)."""
    stored = run_dir / "summary.csv"
    if stored.is_file() and stored.stat().st_mtime >= _newest_stage(run_dir):
        try:
            summary = pd.read_csv(stored)
            if NEEDED <= set(summary) or summary.empty:
                return restore_formulas(summary)  # summary.csv prefixes formula-like text with '
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            pass
    from ..measures import summarize
    from ..records import load_records

    records = load_records(run_dir)
    return complete_summary(summarize(records), records, run_dir)  # as write_tables does (aligned means, baseline)


def load_run(run_dir: Path) -> Run:
    run_dir = Path(run_dir)
    if not (run_dir / "cells.json").is_file():
        raise BenchmarkError(f"{run_dir} is not a run directory (no cells.json)")
    manifest = load_manifest(run_dir)
    load_plugin_files(manifest)
    cells = run_summary(run_dir)
    prov = {"run": run_dir.name, "path": str(run_dir), "cells": len(cells), "git_commit": manifest.get("git_commit"),
            "device": manifest.get("device_name") or (manifest.get("run") or {}).get("device"),
            "written": manifest.get("written"), "report": None}
    if (run_dir / "report.html").is_file():
        prov["report"] = "report.html"
    if cells.empty:
        n_err = len(list((run_dir / "errors").glob("*.json"))) if (run_dir / "errors").is_dir() else 0
        reason = f"no finished cell ({n_err} failed stage(s) in errors/)" if n_err else "no finished cell"
        return Run(run_dir, manifest, cells, reason, prov)
    if "defense_baseline" not in cells:  # a summary.csv written before the flag was; a computed one has it
        cells = attach_baseline(cells, None, run_dir, manifest)
    cells = cells.reset_index(drop=True)
    cells["cell_in_run"] = cells.index
    keys = plugin_keys(manifest)
    for fam, col in (("datasets", "dataset"), ("metrics", "metric"), ("attacks", "attack"), ("defenses", "defense")):
        cells[f"{col}_label_in_run"] = cells[col]
        cells[f"{col}_key"] = [keys[fam].get(v, (f"label:{v}", v))[0] for v in cells[col]]
        cells[f"{col}_canonical"] = [keys[fam].get(v, ("", v))[1] for v in cells[col]]
    # an adaptive attack differs from the same attack run plainly
    ada = cells["adaptive_attack"].astype(bool) if "adaptive_attack" in cells else pd.Series(False, cells.index)
    eot = cells["eot_samples"] if "eot_samples" in cells else 0
    cells["attack_key"] = cells["attack_key"] + ada.map({True: "+adaptive", False: ""}) + \
        pd.Series(eot, index=cells.index).astype(str).where(ada, "")
    return Run(run_dir, manifest, cells.assign(run=run_dir.name), "", prov)


def _unify_labels(cells: pd.DataFrame) -> pd.DataFrame:
    """One label per identity key: the runs' own label when they all agree, else the canonical one."""
    cells = cells.copy()
    for col in ("dataset", "metric", "attack", "defense"):
        labels = cells.groupby(f"{col}_key")[f"{col}_label_in_run"].agg(lambda s: sorted(set(s)))
        canon = cells.groupby(f"{col}_key")[f"{col}_canonical"].first()
        chosen = {k: (v[0] if len(v) == 1 else canon[k]) for k, v in labels.items()}
        cells[col] = cells[f"{col}_key"].map(chosen)
    return cells


def merge_runs(run_dirs: list[Path], *, allow_mixed: bool = False, progress: bool = False
               ) -> tuple[pd.DataFrame, list[Run], list[str]]:
    """All cells of the runs with unified labels, the runs, and the protocol differences (when allowed)."""
    runs = [load_run(d) for d in tqdm(run_dirs, desc="leaderboard: runs", unit="run", leave=False,
                                      disable=not progress or len(run_dirs) < 2)]
    for r in runs:
        if r.reason:
            log.warning("run %s contributes no row: %s", r.path, r.reason)
    useful = [r for r in runs if not r.reason]
    if not useful:
        raise BenchmarkError("no finished cell in " + ", ".join(str(d) for d in run_dirs))
    diffs = differences({r.name: protocol(r.path, r.manifest) for r in useful}) if len(useful) > 1 else []
    if diffs and not allow_mixed:
        raise BenchmarkError("the runs were made under different protocols, so their numbers do not compare: "
                             + " | ".join(diffs) + ". Pass --allow-mixed to merge them anyway")
    for d in diffs:
        log.warning("merging runs with different protocols (--allow-mixed): %s", d)
    cells = _unify_labels(pd.concat([r.cells for r in useful], ignore_index=True))
    return cells, runs, diffs


def leaderboard_table(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, metric, defense), its worst attack's numbers, ranked within (dataset, metric)."""
    rows = defense_rows(cells, GROUP)
    rows["runs"] = [", ".join(sorted(set(cells.loc[idx, "run"]))) for idx in rows["cell_index"]]
    table = rank_defenses(rows)
    return table


def _relative(path: Path, start: Path) -> str:
    """A link from a page in ``start`` to ``path`` (relative, so the site and the runs can move together)."""
    return Path(os.path.relpath(Path(path).resolve(), Path(start).resolve())).as_posix()


def _detail(cells: pd.DataFrame, idx: list[int], out_dir: Path, runs: dict[str, Run]) -> list[dict]:
    harm = damages(cells)
    qcol = first_present(cells, QUALITY_COLUMNS)
    out = []
    for k, i in enumerate(idx):
        c = cells.loc[i]
        run = runs[c["run"]]
        href = None
        if run.provenance.get("report"):
            href = f"{_relative(run.path / 'report.html', out_dir)}#cell-{int(c['cell_in_run'])}"
        out.append({"worst": k == 0, "run": c["run"], "attack": c["attack"], "href": href,
                    "vals": [fmt(c.get(n)) for n in ("robust_abs_gain", "both_defended_abs_gain", "abs_gain")]
                    + [fmt(c.get(qcol)) if qcol else "–", fmt(c.get("psnr_attack")),
                       fmt(c.get("psnr_def_adv_aligned", c.get("psnr_def_adv")))],
                    "notes": "; ".join((["worst case"] if k == 0 else [])
                                       + (["adaptive"] if c.get("adaptive_attack") else [])
                                       + ([DAMAGES] if harm[i] else []))})
    return out


def build_leaderboard(run_dirs: list[Path], out_dir: Path, *, allow_mixed: bool = False, progress: bool = True) -> Path:
    cells, runs, diffs = merge_runs(run_dirs, allow_mixed=allow_mixed, progress=progress)
    table = leaderboard_table(cells)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = table.reindex(columns=COLUMNS)
    atomic_write_text(out_dir / "leaderboard.csv", csv_text(csv))    # labels written inert (tables.py)
    atomic_write_text(out_dir / "leaderboard.md", markdown_text(csv, floatfmt=".4g"))
    by_name = {r.name: r for r in runs}
    baselines = set(table.loc[table["baseline"].astype(bool), "defense"])
    colours = plots.colour_map(list(table["defense"]), baselines)
    qcol = first_present(cells, QUALITY_COLUMNS) or "purified_quality"
    shown = with_values(table, SHOWN)
    sections = []
    for (ds, metric), g in table.groupby(["dataset", "metric"], sort=False):
        rows = []
        for i, r in g.iterrows():
            rank, front = rank_text(r["rank"], r["front"], r["baseline"])
            rows.append({"id": f"d-{i}", "rank": rank, "front": front, "defense": r["defense"],
                         "worst_attack": r["worst_attack"], "baseline": bool(r["baseline"]), "runs": r["runs"],
                         "vals": [{"text": fmt(r[c]), "sort": r[c] if isinstance(r[c], (int, float)) else ""}
                                  for c in shown],
                         "flags": defense_flags(r["damages"], r["adaptive"], r["baseline"]),
                         "cells": _detail(cells, r["cell_index"], out_dir, by_name)})
        pts = [{"gain": float(r["worst_robust_gain"]), "quality": float(r["quality"]), "defense": r["defense"],
                "attack": "worst attack", "href": f"#d-{i}",
                "title": f"{r['defense']}: worst robust gain {fmt(r['worst_robust_gain'])} ({r['worst_attack']}), "
                         f"quality {fmt(r['quality'])}"} for i, r in g.iterrows()]
        plot = plots.tradeoff(pts, {d: colours[d] for d in g["defense"]}, {"worst attack": "circle"},
                              xlabel="worst robust gain (lower is better)",
                              ylabel=f"{column(qcol).title} (higher is better)")
        sections.append({"dataset": ds, "metric": metric, "id": f"s-{len(sections)}", "rows": rows, "plot": plot,
                         "verdict": verdict(g)})
    html = template_env().get_template("leaderboard.html.j2").render(
        title="Leaderboard", sections=sections, rule=rule_text(cells), measures=measures_link(),
        leaderboard_doc={"text": "docs/leaderboard.md", "href": doc_href("docs/leaderboard.md")},
        header=[header(c, column(qcol).hover if c == "quality" else None) for c in shown],
        detail_header=["robust gain", "both-defended gain", "attack alone", column(qcol).title, "PSNR(x, x')",
                       "PSNR(x, D(x'))"],
        empty_runs=[{"run": r.name, "path": str(r.path), "reason": r.reason} for r in runs if r.reason],
        mixed=diffs, provenance=[{**r.provenance, "report_href": _relative(r.path / "report.html", out_dir)
                                  if r.provenance.get("report") else None} for r in runs],
        non_adaptive=[f"{r.defense} on {r.metric}" for r in table.itertuples() if not r.adaptive and not r.baseline])
    out = out_dir / "index.html"
    atomic_write_text(out, html)
    return out
