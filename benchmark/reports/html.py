"""A self-contained HTML page per run (no CDN, no network; opens from ``file://``), rendered by jinja2 from the
stored records: one section per (dataset, metric) with the defense ranking, the grouped cell table, the
heatmap, budget curves, the trade-off plot and image strips; then the certified intervals, failures, skipped
items and provenance. Headers and hover texts come from :mod:`benchmark.schema`."""
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
from .runinfo import attach_baseline, doc_href, load_manifest, measures_link
from .strips import cell_strips


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


def section_context(cells: pd.DataFrame, records: pd.DataFrame | None, manifest: dict, colours, markers,
                    anchors: dict[int, str], strips: dict[int, dict]) -> dict:
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
    strip_groups: dict[str, list[dict]] = {}
    for i, r in zip(cells.index, cells.itertuples()):
        if i in strips:
            strip_groups.setdefault(r.attack, []).append({"anchor": anchors[i], "attack": r.attack,
                                                          "defense": r.defense, **strips[i]})
    budget, budget_note = sections.budget_panels(cells, rec, manifest, colours)
    return {"dataset": ds, "metric": metric, "id": f"sec-{cells.index[0]}", "info": info,
            "ranking": sections.ranking(cells, anchors), "table": sections.compact_table(cells, anchors),
            "raw": sections.raw_table(cells), "heatmap": sections.heatmap(cells, anchors),
            "budget": budget, "budget_note": budget_note,
            "tradeoff": sections.tradeoff_plot(cells, anchors, colours, markers),
            "strips": [{"attack": a, "cells": c} for a, c in strip_groups.items()]}


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
    strips = cell_strips(run_dir, manifest, records, _cells_with_keys(run_dir, summary), progress=progress) \
        if records is not None and len(records) and len(summary) else {}
    panels = certificate_panels(records)
    groups = list(summary.groupby(["dataset", "metric"], sort=False)) if len(summary) else []
    secs = [section_context(g, records, manifest, colours, markers, anchors, strips)
            for _, g in tqdm(groups, desc="report: sections", disable=not progress or len(groups) < 2, leave=False)]
    html = template_env().get_template("report.html.j2").render(
        title=manifest.get("name", run_dir.name), sections=secs, cert_panels=panels,
        non_adaptive=non_adaptive_defenses(summary),
        rule=rule_text(summary) if len(summary) else "", measures=measures_link(),
        leaderboard_doc={"text": "docs/leaderboard.md", "href": doc_href("docs/leaderboard.md")},
        errors=[{k: e.get(k) for k in ("stage", "dataset", "metric", "attack", "defense", "error")}
                for e in store.errors()],
        skipped=json.loads(skipped_path.read_text()) if skipped_path.is_file() else [],
        manifest_json=json.dumps({k: manifest.get(k) for k in ("name", "run", "plugins", "versions", "git_commit",
                                                               "device", "device_name", "platform", "written")},
                                 indent=1, default=str),
        provenance={k: manifest.get(k) for k in ("git_commit", "device", "device_name", "written")},
    )
    out = run_dir / "report.html"
    atomic_write_text(out, html)
    return out
