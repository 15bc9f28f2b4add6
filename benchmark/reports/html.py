"""A self-contained HTML page per run (no CDN, no network; opens from ``file://``), rendered by jinja2 from the
stored records: one section per (dataset, metric) with the defense ranking per budget (bootstrap intervals,
:mod:`benchmark.reports.ranking`), the grouped cell table, the heatmap, budget curves, the trade-off plot and
image strips; then the certified intervals, failures, skipped items and provenance. Headers and hover texts come
from :mod:`benchmark.schema`. Every link is inside the page (or to another run's report, relative to it): the
page can be copied or shared on its own."""
from __future__ import annotations

import json
from pathlib import Path

import jinja2
import markupsafe
import pandas as pd
from tqdm.auto import tqdm

from ..store import RunStore, atomic_write_text
from . import plots, sections
from .certificates import certificate_panels
from .format import fmt
from .ranking import rule_text
from .runinfo import attach_baseline, load_manifest, measures_link, provenance_text
from .strips import pick_image, report_strips
from .verdicts import run_statistics


def template_env() -> jinja2.Environment:
    """The report templates shipped in the package (run report and leaderboard share base and macros)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("benchmark.reports", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["wbr"] = wbr
    return env


def wbr(text) -> markupsafe.Markup:
    """Escaped ``text`` with line-break opportunities after commas and opening brackets, so that long plugin
    labels (``pgd(eps=4/255,steps=10)``) wrap at their parameters in narrow table cells."""
    return markupsafe.Markup(str(markupsafe.escape(text)).replace(",", ",<wbr>").replace("(", "(<wbr>"))


def _cells_with_keys(run_dir: Path, summary: pd.DataFrame) -> list[dict]:
    cells_file = Path(run_dir) / "cells.json"
    planned = json.loads(cells_file.read_text()) if cells_file.is_file() else []
    keys = {(c["dataset"], c["metric"], c["attack"], c["defense"]): c.get("keys") for c in planned}
    return [{"index": i, "dataset": r.dataset, "metric": r.metric, "attack": r.attack, "defense": r.defense,
             "keys": keys.get((r.dataset, r.metric, r.attack, r.defense))}
            for i, r in zip(summary.index, summary.itertuples())]


def non_adaptive_defenses(summary: pd.DataFrame) -> list[str]:
    """Defenses (baselines excepted) that met no adaptive attack anywhere in the run."""
    if summary.empty:
        return []
    met = set(summary.loc[summary["adaptive_attack"].astype(bool), "defense"])
    base = set(summary.loc[summary["defense_baseline"].astype(bool), "defense"]) \
        if "defense_baseline" in summary else set()
    return [d for d in dict.fromkeys(summary["defense"]) if d not in met and d not in base]


def strip_plan(cells: pd.DataFrame, records: pd.DataFrame | None, ranking: dict, keys: list[dict],
               anchors: dict[int, str]) -> dict:
    """Which cells a section shows images of (the baseline and each defense under its worst-case attack, in the
    order of the first budget's ranking) and on which image (the one the strongest attack on the baseline moves
    most)."""
    rows = ranking["rows"]
    if records is None or rows.empty:
        return {"cells": [], "image_id": None}
    budget = rows["budget_label"].iloc[0]
    chosen = rows[rows["budget_label"] == budget]
    by_index = {k["index"]: k for k in keys}
    out = []
    for r in chosen.itertuples():
        i = r.cell_index[0] if r.cell_index else None
        if i in by_index:
            out.append({**by_index[i], "anchor": f"strip-{i}", "cell_anchor": anchors.get(i), "baseline": r.baseline})
    first = out[0] if out else None
    image = None
    if first is not None:
        rec = records[(records["dataset"] == first["dataset"]) & (records["metric"] == first["metric"])
                      & (records["attack"] == first["attack"]) & (records["defense"] == first["defense"])]
        image = pick_image(rec)
    return {"cells": out, "image_id": image}


def section_context(cells: pd.DataFrame, records: pd.DataFrame | None, manifest: dict, colours, markers,
                    anchors: dict[int, str], stats: dict, keys: list[dict]) -> dict:
    ds, metric = cells["dataset"].iloc[0], cells["metric"].iloc[0]
    rec = None
    if records is not None and len(records):
        rec = records[(records["dataset"] == ds) & (records["metric"] == metric)]
    info = {"n_images": int(pd.to_numeric(cells["n_images"], errors="coerce").max())}
    if rec is not None and len(rec):
        info.update(lower_better=bool(rec["lower_better"].iloc[0]), lo=float(rec["range_lo"].iloc[0]),
                    hi=float(rec["range_hi"].iloc[0]), has_mos=bool(rec["mos"].notna().sum() >= 3))
    for c in ("srocc_clean", "srocc_clean_lo", "srocc_clean_hi", "plcc_clean"):
        info[c] = fmt(float(cells[c].iloc[0])) if c in cells else "–"
    ranking = sections.ranking(cells, anchors, stats, colours)
    budget, budget_note = sections.budget_panels(cells, rec, manifest, colours)
    return {"dataset": ds, "metric": metric, "id": f"sec-{cells.index[0]}", "info": info,
            "ranking": ranking, "table": sections.compact_table(cells, anchors),
            "raw": sections.raw_table(cells), "heatmap": sections.heatmap(cells, anchors),
            "budget": budget, "budget_note": budget_note,
            "tradeoff": sections.tradeoff_plot(ranking, anchors, colours),
            "strip_plan": strip_plan(cells, rec, ranking, keys, anchors)}


def render_html(run_dir: Path, summary: pd.DataFrame, records: pd.DataFrame | None = None, *,
                progress: bool = False) -> Path:
    run_dir = Path(run_dir)
    manifest = load_manifest(run_dir)
    summary = summary.reset_index(drop=True)
    if "defense_baseline" not in summary:  # write_tables' summary has it already (build_report)
        summary = attach_baseline(summary, records, run_dir, manifest)
    store = RunStore(run_dir)
    skipped_path = run_dir / "skipped.json"
    baselines = set(summary.loc[summary["defense_baseline"], "defense"]) if len(summary) else set()
    colours = plots.colour_map(list(summary["defense"]) if len(summary) else [], baselines)
    markers = plots.marker_map(list(summary["attack"]) if len(summary) else [])
    anchors = {i: f"cell-{i}" for i in summary.index}
    keys = _cells_with_keys(run_dir, summary)
    by_cell = run_statistics(run_dir, records, summary) if len(summary) else {}
    stats = {i: by_cell.get((r.dataset, r.metric, r.attack, r.defense)) for i, r in zip(summary.index,
                                                                                      summary.itertuples())}
    stats = {i: s for i, s in stats.items() if s is not None}
    panels = certificate_panels(records)
    groups = list(summary.groupby(["dataset", "metric"], sort=False)) if len(summary) else []
    secs = [section_context(g, records, manifest, colours, markers, anchors, stats, keys)
            for _, g in tqdm(groups, desc="report: sections", disable=not progress or len(groups) < 2, leave=False)]
    if records is not None and len(records):
        for s, strip in zip(secs, report_strips(run_dir, manifest, records, [s["strip_plan"] for s in secs],
                                                progress=progress)):
            s["strips"] = strip
            shown = {c["defense"]: c["anchor"] for c in (strip or {}).get("strips", []) if c.get("panels")}
            for row in s["ranking"]["tables"][0]["rows"] if s["ranking"]["tables"] else []:
                if row["defense"] in shown:   # the worst attack links to its images
                    row["href"] = f"#{shown[row['defense']]}"
    html = template_env().get_template("report.html.j2").render(
        title=manifest.get("name", run_dir.name), sections=secs, cert_panels=panels, colours=colours,
        non_adaptive=non_adaptive_defenses(summary),
        rule=rule_text(summary) if len(summary) else "", measures=measures_link(),
        leaderboard_doc=measures_link("docs/leaderboard.md"),
        errors=[{k: e.get(k) for k in ("stage", "dataset", "metric", "attack", "defense", "error")}
                for e in store.errors()],
        skipped=json.loads(skipped_path.read_text()) if skipped_path.is_file() else [],
        manifest_json=json.dumps({k: manifest.get(k) for k in ("name", "run", "plugins", "versions", "git_commit",
                                                               "device", "device_name", "cpu", "torch", "cuda_version",
                                                               "platform", "written")},
                                 indent=1, default=str),
        provenance=provenance_text(manifest),
    )
    out = run_dir / "report.html"
    atomic_write_text(out, html)
    return out
