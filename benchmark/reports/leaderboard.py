"""The leaderboard: several run directories merged into one table and one self-contained HTML page.

One row per (dataset, metric, budget, defense): the defense's worst case over every attack it met at that budget
in any of the runs, adaptive or transfer (the largest gain through the defense ``g_D = mean d·sign·(s'_D − s_D)/r``,
docs/measures.md "Verdicts"), the gain it removes against the strongest attack on the baseline at the same budget,
its costs (bias, fidelity, purified quality under that attack), the published measures under their names (worst
robust gain, both-defended gain, purified quality), its certificate where it has one, its time per image and
whether any adaptive attack was among those it met. Rows are ranked within (dataset, metric, budget) by
:mod:`benchmark.reports.ranking`, with 95 % bootstrap intervals for every criterion and the rank (``rank_low``,
``rank_high``): the runs' stored bootstrap replicates (:mod:`benchmark.reports.verdicts`) are combined, so the worst
case over cells of several runs is recomputed per resample (runs on the same images resample them identically).

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
from ..records import load_records
from ..schema import column
from ..store import atomic_write_text
from . import plots
from .format import defense_flags, fmt, header, rank_text, value_cell
from .html import cell_page, template_env
from .protocol import differences, load_plugin_files, plugin_keys, protocol
from .ranking import defense_rows, indicative, rank_defenses, rule_text, with_values
from .runinfo import attach_baseline, attach_direction, complete_summary, load_manifest, measures_link, \
    provenance_text
from .sections import INTERVALS, verdict
from .summaries import cell_summaries
from .tables import csv_text, markdown_text, restore_formulas
from .verdicts import run_statistics

log = logging.getLogger(__name__)

GROUP = ["dataset", "metric", "defense"]
COLUMNS = ["rank", "rank_low", "rank_high", "dataset", "metric", "budget_label", "defense", "baseline", "worst_gain",
           "worst_gain_lo", "worst_gain_hi", "worst_attack", "reference_gain", "removed", "removed_lo", "removed_hi",
           "quality", "quality_lo", "quality_hi", "fidelity", "fidelity_lo", "fidelity_hi", "bias", "bias_lo",
           "bias_hi", "separable", "notes", "worst_robust_gain", "abs_gain", "both_defended_gain", "attacked_quality",
           "purified_quality", "purified_quality_aligned", "srocc_clean", "srocc_def_clean", "plcc_def_clean",
           "cert_width", "abstain_rate", "seconds_def_adv", "n_attacks", "adaptive", "eot_samples", "n_images",
           "distance", "runs"]
NEEDED = {"dataset", "metric", "attack", "defense", "robust_abs_gain", "n_images"}
SHOWN = ["worst_gain", "removed", "quality", "fidelity", "fidelity_m", "bias", "worst_robust_gain", "cert_width",
         "seconds_def_adv", "n_attacks"]


@dataclass
class Run:
    path: Path
    manifest: dict
    cells: pd.DataFrame
    reason: str = ""                      # why it contributes no row
    provenance: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)   # cell index in the run -> verdict statistics (bootstrap replicates)

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


def run_summary(run_dir: Path, records: pd.DataFrame) -> pd.DataFrame:
    """The run's per-cell summary: its stored summary.csv when that is newer than every stored stage, else
    computed from its ``records``, reading the cells' stored summaries (nothing is written into the run)."""
    stored = run_dir / "summary.csv"
    if stored.is_file() and stored.stat().st_mtime >= _newest_stage(run_dir):
        try:
            summary = pd.read_csv(stored)
            if NEEDED <= set(summary) or summary.empty:
                return restore_formulas(summary)  # summary.csv prefixes formula-like text with '
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            pass
    # as write_tables does (aligned means, baseline); the run's stored cell summaries are read, never written
    return complete_summary(cell_summaries(records, run_dir, store=False), records, run_dir)


def load_run(run_dir: Path) -> Run:
    run_dir = Path(run_dir)
    if not (run_dir / "cells.json").is_file():
        raise BenchmarkError(f"{run_dir} is not a run directory (no cells.json)")
    manifest = load_manifest(run_dir)
    load_plugin_files(manifest)
    # read once: for the summary (when summary.csv is not current) and for the verdict statistics
    records = attach_direction(load_records(run_dir), run_dir)
    cells = run_summary(run_dir, records)
    info = provenance_text(manifest)
    prov = {"run": run_dir.name, "path": run_dir, "cells": len(cells), "git_commit": info["git_commit"],
            "device": " · ".join(str(v) for v in (info["device"] or (manifest.get("run") or {}).get("device"),
                                                  info["device_name"]) if v),
            "versions": ", ".join(f"{k} {v}" for k, v in (("torch", info["torch"]), ("CUDA", info["cuda"])) if v),
            "written": info["written"], "report": None}
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
    by_cell = run_statistics(run_dir, records, cells)   # the leaderboard never writes into a run
    stats = {i: by_cell[(r.dataset, r.metric, r.attack, r.defense)] for i, r in zip(cells.index, cells.itertuples())
             if (r.dataset, r.metric, r.attack, r.defense) in by_cell}
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
    return Run(run_dir, manifest, cells.assign(run=run_dir.name), "", prov, stats)


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


def cell_statistics(cells: pd.DataFrame, runs: list[Run]) -> dict:
    """The merged cells' verdict statistics by their index in ``cells`` (from each run's ``stats``)."""
    by_run = {r.name: r.stats for r in runs}
    out = {}
    for i, run, k in zip(cells.index, cells["run"], cells["cell_in_run"]):
        s = by_run.get(run, {}).get(int(k))
        if s is not None:
            out[i] = s
    return out


def leaderboard_table(cells: pd.DataFrame, stats: dict | None = None) -> pd.DataFrame:
    """One row per (dataset, metric, budget, defense), its worst attack's numbers, ranked within (dataset, metric,
    budget), with bootstrap intervals where ``stats`` (cell index -> verdict statistics) has replicates."""
    rows = defense_rows(cells, GROUP, stats)
    rows["runs"] = [", ".join(sorted(set(cells.loc[idx, "run"]))) for idx in rows["cell_index"]]
    table = rank_defenses(rows)
    return table


def _relative(path: Path, start: Path) -> str:
    """A link from a page in ``start`` to ``path`` (relative, so the site and the runs can move together)."""
    return Path(os.path.relpath(Path(path).resolve(), Path(start).resolve())).as_posix()


def _detail(cells: pd.DataFrame, idx: list[int], out_dir: Path, runs: dict[str, Run], stats: dict) -> list[dict]:
    out = []
    for k, i in enumerate(idx):
        c = cells.loc[i]
        run = runs[c["run"]]
        href = None
        if run.provenance.get("report"):
            page = cell_page(run.path, c["dataset_label_in_run"], c["metric_label_in_run"])  # report.html or its page
            href = f"{_relative(run.path / page, out_dir)}#cell-{int(c['cell_in_run'])}"
        g_d = float(stats[i]["gain"]) if i in stats and "gain" in stats[i] else c.get("defended_gain")
        out.append({"worst": k == 0, "run": c["run"], "attack": c["attack"], "href": href,
                    "vals": [fmt(g_d)] + [fmt(c.get(n)) for n in ("robust_abs_gain", "both_defended_abs_gain",
                                                                 "abs_gain", "purified_quality_aligned",
                                                                 "psnr_attack")],
                    "notes": "; ".join((["worst case"] if k == 0 else [])
                                       + (["adaptive"] if c.get("adaptive_attack") else []))})
    return out


def _short_time(v) -> str:
    """An ISO time stamp as ``2026-12-02 06:10 UTC`` (the date and time, not wrapped mid-date by the page)."""
    text = str(v or "–")
    if len(text) >= 16 and text[10] == "T":
        return f"{text[:10]} {text[11:16]}" + (" UTC" if text.endswith(("+00:00", "Z")) else "")
    return text


def markdown_table(csv: pd.DataFrame) -> str:
    """leaderboard.md: the ranked columns a reader needs, missing values as "–" (never ``<NA>``)."""
    cols = ["rank", "rank_low", "rank_high", "dataset", "metric", "budget_label", "defense", "worst_gain", "worst_attack",
            "removed", "quality", "fidelity", "bias", "separable", "notes", "worst_robust_gain", "runs"]
    shown = csv[[c for c in cols if c in csv]].copy()
    shown["baseline"] = csv["baseline"].astype(bool) if "baseline" in csv else False
    for c in ("rank", "rank_low", "rank_high"):
        if c in shown:
            shown[c] = [("reference" if b and c == "rank" else "") if v is pd.NA or pd.isna(v) else str(int(v))
                        for v, b in zip(shown[c], shown["baseline"])]
    shown = shown.drop(columns="baseline")
    shown = shown.astype(object).where(shown.notna(), "–")
    return markdown_text(shown, floatfmt=".4g")


def build_leaderboard(run_dirs: list[Path], out_dir: Path, *, allow_mixed: bool = False, progress: bool = True) -> Path:
    cells, runs, diffs = merge_runs(run_dirs, allow_mixed=allow_mixed, progress=progress)
    stats = cell_statistics(cells, runs)
    table = leaderboard_table(cells, stats)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = table.reindex(columns=COLUMNS)
    atomic_write_text(out_dir / "leaderboard.csv", csv_text(csv))    # labels written inert (tables.py)
    atomic_write_text(out_dir / "leaderboard.md", markdown_table(csv))
    by_name = {r.name: r for r in runs}
    baselines = set(table.loc[table["baseline"].astype(bool), "defense"])
    colours = plots.colour_map(list(table["defense"]), baselines)
    qcol = "quality"
    shown = with_values(table, SHOWN)
    sections = []
    for (ds, metric, budget), g in table.groupby(["dataset", "metric", "budget_label"], sort=False):
        rows = []
        for i, r in g.iterrows():
            rank, interval_text = rank_text(r["rank"], r["rank_low"], r["rank_high"], r["baseline"])
            vals = []
            for c in shown:
                if r["baseline"] and c in ("removed", "bias", "fidelity"):   # 0, 0, 1 by definition: left blank
                    vals.append({"text": "", "ci": "", "sort": "nan"})
                else:
                    vals.append(value_cell(r[c], r.get(f"{c}_lo"), r.get(f"{c}_hi")) if c in INTERVALS
                                else value_cell(r[c]))
            rows.append({"id": f"d-{i}", "rank": rank, "interval": interval_text, "defense": r["defense"],
                         "colour": colours[r["defense"]], "worst_attack": r["worst_attack"],
                         "baseline": bool(r["baseline"]), "runs": r["runs"], "vals": vals,
                         "separable": r.get("separable", ""), "flags": defense_flags(r.get("notes")),
                         "cells": _detail(cells, r["cell_index"], out_dir, by_name, stats)})
        pts = [{"gain": float(r["worst_gain"]), "quality": float(r["quality"]), "defense": r["defense"],
                "attack": "worst attack", "href": f"#d-{i}",
                "gain_ci": (float(r["worst_gain_lo"]), float(r["worst_gain_hi"])),
                "quality_ci": (float(r["quality_lo"]), float(r["quality_hi"])),
                "title": f"{r['defense']}: worst g_D {fmt(r['worst_gain'])} ({r['worst_attack']}), "
                         f"quality {fmt(r['quality'])}"} for i, r in g.iterrows()]
        plot = plots.tradeoff(pts, {d: colours[d] for d in g["defense"]}, {"worst attack": "circle"},
                              xlabel="worst g_D, gain through the defense (lower is better)",
                              ylabel=f"{column(qcol).title} (higher is better)")
        n = int(pd.to_numeric(g["n_images"], errors="coerce").min())
        sections.append({"dataset": ds, "metric": metric, "budget": budget, "id": f"s-{len(sections)}", "rows": rows,
                         "plot": plot, "verdict": verdict(g), "indicative": indicative(n), "n_images": n})
    html = template_env().get_template("leaderboard.html.j2").render(
        title="Leaderboard", sections=sections, rule=rule_text(cells), measures=measures_link(),
        leaderboard_doc=measures_link("docs/leaderboard.md"),
        header=[header(c) for c in shown],
        detail_header=["g_D", "robust gain", "both-defended gain", "attack alone", "purified quality (aligned)",
                       "PSNR(x, x')"],
        empty_runs=[{"run": r.name, "path": _relative(r.path, out_dir), "reason": r.reason} for r in runs if r.reason],
        mixed=diffs, provenance=[{**r.provenance, "path": _relative(r.path, out_dir),
                                  "commit_short": (r.provenance.get("git_commit") or "–")[:12],
                                  "written_short": _short_time(r.provenance.get("written")),
                                  "report_href": _relative(r.path / "report.html", out_dir)
                                  if r.provenance.get("report") else None} for r in runs],
        non_adaptive=[f"{r.defense} on {r.metric}" for r in table.itertuples() if not r.adaptive and not r.baseline])
    out = out_dir / "index.html"
    atomic_write_text(out, html)
    return out
