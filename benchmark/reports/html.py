"""The run's HTML report (no CDN, no network; opens from ``file://``), rendered by jinja2 from the stored records:
one section per (dataset, metric) with the defense ranking per budget (bootstrap intervals,
:mod:`benchmark.reports.ranking`), the grouped cell table, the heatmap, budget curves, the trade-off plot and the
image strips the run stored (:mod:`benchmark.reports.strips`); then the certified intervals, failures, skipped
items and provenance. Headers and hover texts come from :mod:`benchmark.schema`.

Bounded at study size: a run of at most ``SINGLE_PAGE_CELLS`` cells is one page, ``report.html``; a larger one is
an index, ``report.html`` (every section's ranking and verdict, certified intervals, failures, provenance), and one
page per section in the folder ``report/`` beside it (``report/<metric>-on-<dataset>-<hash>.html``: the section in
full). Each page embeds its own images (within the strips' budget) and links only inside itself, to the index or
to its sibling pages by relative paths, so ``report.html`` and ``report/`` can be copied or shared together. The
table of every column is shown for sections of at most ``RAW_TABLE_CELLS`` cells (summary.csv has it for all)."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import jinja2
import markupsafe
import pandas as pd
from tqdm.auto import tqdm

from ..store import RunStore, atomic_write_text
from . import plots, sections
from .certificates import certificate_panels
from .format import fmt
from .ranking import row_tuples, rule_text
from .runinfo import attach_baseline, load_manifest, measures_link, provenance_text
from .strips import StoredStrips, section_strips
from .verdicts import run_statistics

SINGLE_PAGE_CELLS = 200   # a run of more cells gets one page per (dataset, metric) in report/
RAW_TABLE_CELLS = 200     # the table of every column is left out of larger sections (summary.csv has it)
MAX_ERRORS = 200          # failures listed on the page (errors/ holds every one)
PAGES = "report"          # the folder of the section pages, beside report.html
PAGE_NAME = re.compile(r"^[A-Za-z0-9-]+-[0-9a-f]{8}\.html$")


def page_name(dataset: str, metric: str) -> str:
    """The file name of a section's page: readable, and unique by a hash of (dataset, metric)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{metric}-on-{dataset}").strip("-")[:48].strip("-") or "section"
    return f"{slug}-{hashlib.sha256(json.dumps([dataset, metric]).encode()).hexdigest()[:8]}.html"


def cell_page(run_dir: Path, dataset: str, metric: str) -> str:
    """Where a cell's row is, relative to the run directory: its section's page when the report was split,
    else ``report.html``."""
    page = f"{PAGES}/{page_name(dataset, metric)}"
    return page if (Path(run_dir) / page).is_file() else "report.html"


def template_env() -> jinja2.Environment:
    """The report templates shipped in the package (run report and leaderboard share base and macros)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("benchmark.reports", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["wbr"] = wbr
    env.filters["table_rows"] = table_rows
    return env


def wbr(text) -> markupsafe.Markup:
    """Escaped ``text`` with line-break opportunities after commas and opening brackets, so that long plugin
    labels (``pgd(eps=4/255,steps=10)``) wrap at their parameters in narrow table cells."""
    return markupsafe.Markup(str(markupsafe.escape(text)).replace(",", ",<wbr>").replace("(", "(<wbr>"))


MARKED_CLASSES = ("best", "worst")   # a cell of one of these classes says so in its hover text
SPECIAL = re.compile("[&<>'\"]")      # the characters markupsafe.escape replaces


def _escaped(v) -> str:
    """``str(markupsafe.escape(v))``, without building a Markup for the plain strings and numbers of a table."""
    kind = type(v)
    if kind is float or kind is int or (kind is str and not SPECIAL.search(v)):
        return str(v)
    return str(markupsafe.escape(v))


class _RowWriter:
    """Writes the ``<td>`` cells of :func:`table_rows`, as the templates would write them (``{{ c.key }}`` escaped,
    "" for a key the cell lacks; the text through :func:`wbr`), remembering the text of repeated values."""

    def __init__(self):
        self.texts: dict = {}

    def text(self, v) -> str:
        """``str(wbr(v))``, once per distinct string."""
        if type(v) is not str:
            return str(wbr(v))
        out = self.texts.get(v)
        if out is None:
            out = self.texts[v] = _escaped(v).replace(",", ",<wbr>").replace("(", "(<wbr>")
        return out

    def cell(self, c: dict, left: bool) -> str:
        """One ``<td>``: class, sort key, hover text (with the best/worst mark), the text (linked when it has one)."""
        cls = c.get("cls")
        marked = cls in MARKED_CLASSES
        title = c.get("title")
        hover = ""
        if title or marked:
            hover = (f' title="{_escaped(title or "")}{" — " if title and marked else ""}'
                     f'{_escaped(cls + " cell in this column") if marked else ""}"')
        text = self.text(c["text"])
        href = c.get("href")
        body = f'<a href="{_escaped(href)}">{text}</a>' if href else text
        return (f'<td class="{_escaped(cls) if "cls" in c else ""}{" l" if left else ""}" '
                f'data-v="{_escaped(c["sort"]) if "sort" in c else ""}"{hover}>{body}</td>')


def table_rows(t: dict, left: int = 2) -> markupsafe.Markup:
    """The ``<tr>`` lines of a sortable table ``{rows: [[{text, sort, cls, title, href}]], ids}`` (macros.html.j2's
    ``table``; the first ``left`` columns left-aligned): written here rather than by a template loop, as a
    study-sized section's table of cells has some ten thousand cells; every string is escaped."""
    ids = t.get("ids") or []
    writer = _RowWriter()
    out = []
    for k, r in enumerate(t["rows"]):
        rid = ids[k] if k < len(ids) else None
        cells = "".join([writer.cell(c, j < left) for j, c in enumerate(r)])
        out.append(f'<tr id="{_escaped(rid)}">{cells}</tr>\n' if rid else f"<tr>{cells}</tr>\n")
    return markupsafe.Markup("".join(out))


def _cells_with_keys(run_dir: Path, summary: pd.DataFrame) -> list[dict]:
    cells_file = Path(run_dir) / "cells.json"
    planned = json.loads(cells_file.read_text()) if cells_file.is_file() else []
    keys = {(c["dataset"], c["metric"], c["attack"], c["defense"]): c.get("keys") for c in planned}
    return [{"index": i, "dataset": r.dataset, "metric": r.metric, "attack": r.attack, "defense": r.defense,
             "keys": keys.get((r.dataset, r.metric, r.attack, r.defense))}
            for i, r in zip(summary.index, row_tuples(summary, ["dataset", "metric", "attack", "defense"]))]


def non_adaptive_defenses(summary: pd.DataFrame) -> list[str]:
    """Defenses (baselines excepted) that met no adaptive attack anywhere in the run."""
    if summary.empty:
        return []
    met = set(summary.loc[summary["adaptive_attack"].astype(bool), "defense"])
    base = set(summary.loc[summary["defense_baseline"].astype(bool), "defense"]) \
        if "defense_baseline" in summary else set()
    return [d for d in dict.fromkeys(summary["defense"]) if d not in met and d not in base]


def strip_plan(ranking: dict, keys: list[dict], anchors: dict[int, str]) -> list[dict]:
    """The cells whose strips a section shows: the baseline and each defense under its worst-case attack, in the
    order of the first budget's ranking (the run's strip stages stored their images)."""
    rows = ranking["rows"]
    if rows.empty:
        return []
    chosen = rows[rows["budget_label"] == rows["budget_label"].iloc[0]]
    by_index = {k["index"]: k for k in keys}
    out = []
    for r in row_tuples(chosen, ["cell_index", "baseline"]):
        i = r.cell_index[0] if r.cell_index else None
        if i in by_index:
            out.append({**by_index[i], "anchor": f"strip-{i}", "cell_anchor": anchors.get(i), "baseline": r.baseline})
    return out


def section_context(cells: pd.DataFrame, rec: pd.DataFrame | None, manifest: dict, colours, markers,
                    anchors: dict[int, str], stats: dict, keys: list[dict], ranked: pd.DataFrame | None = None) -> dict:
    """What the templates show of one (dataset, metric): ``cells`` its rows of the summary, ``rec`` its records;
    ``ranked`` its defense ranking when the caller has it (:func:`sections.ranking` computes it otherwise)."""
    ds, metric = cells["dataset"].iloc[0], cells["metric"].iloc[0]
    info = {"n_images": int(pd.to_numeric(cells["n_images"], errors="coerce").max())}
    if rec is not None and len(rec):
        info.update(lower_better=bool(rec["lower_better"].iloc[0]), lo=float(rec["range_lo"].iloc[0]),
                    hi=float(rec["range_hi"].iloc[0]), has_mos=bool(rec["mos"].notna().sum() >= 3))
    for c in ("srocc_clean", "srocc_clean_lo", "srocc_clean_hi", "plcc_clean"):
        info[c] = fmt(float(cells[c].iloc[0])) if c in cells else "–"
    ranking = sections.ranking(cells, anchors, stats, colours, rows=ranked)
    budget, budget_note = sections.budget_panels(cells, rec, manifest, colours)
    return {"dataset": ds, "metric": metric, "id": f"sec-{cells.index[0]}", "info": info,
            "ranking": ranking, "table": sections.compact_table(cells, anchors),
            "raw": sections.raw_table(cells) if len(cells) <= RAW_TABLE_CELLS else None, "n_cells": len(cells),
            "heatmap": sections.heatmap(cells, anchors),
            "budget": budget, "budget_note": budget_note,
            "tradeoff": sections.tradeoff_plot(ranking, anchors, colours),
            "strip_plan": strip_plan(ranking, keys, anchors), "page": None}


def section_records(records: pd.DataFrame | None) -> dict[tuple, pd.DataFrame]:
    """The records of each (dataset, metric), split once (a section with none gets an empty frame)."""
    if records is None or not len(records):
        return {}
    return dict(iter(records.groupby(["dataset", "metric"], sort=False)))


def _records_of(by_section: dict, records: pd.DataFrame | None, key: tuple) -> pd.DataFrame | None:
    """A section's records from :func:`section_records` (None without records, as before: no score range)."""
    if records is None or not len(records):
        return None
    return by_section[key] if key in by_section else records.iloc[:0]


def section_rankings(ranked: pd.DataFrame | None, summary: pd.DataFrame) -> dict[tuple, pd.DataFrame]:
    """The whole run's defense ranking split by (dataset, metric), each slice as :func:`sections.ranking` would
    compute it for the section alone (ranks are per (dataset, metric, budget), so a slice is that computation).
    Its ``cell_index`` must refer to ``summary``'s index: checked, as a wrong index would link rows to other cells."""
    if ranked is None or not len(ranked):
        return {}
    first = [c[0] if len(c) else None for c in ranked["cell_index"]]
    known = [i in summary.index for i in first]
    cells = summary.reindex([i for i, k in zip(first, known) if k])
    sel = ranked[known]
    if not all(known) or any((cells[c].to_numpy(object) != sel[c].to_numpy(object)).any()
                             for c in ("dataset", "metric", "defense")):
        raise ValueError("ranked: its cell_index does not refer to the summary's rows (rank the summary with the "
                         "index render_html gives it: summary.reset_index(drop=True))")
    return {k: g.reset_index(drop=True) for k, g in ranked.groupby(["dataset", "metric"], sort=False)}


def render_html(run_dir: Path, summary: pd.DataFrame, records: pd.DataFrame | None = None, *,
                progress: bool = False, by_cell: dict | None = None, ranked: pd.DataFrame | None = None) -> Path:
    """Write report.html (and, past ``SINGLE_PAGE_CELLS`` cells, the section pages in report/); ``by_cell``: the
    cells' bootstrap statistics when the caller has them (:func:`~benchmark.reports.verdicts.run_statistics`);
    ``ranked``: the whole run's ``rank_defenses(defense_rows(summary, ["dataset", "metric", "defense"], stats))``
    when the caller has it, computed on ``summary.reset_index(drop=True)`` (its ``cell_index`` refers to that
    index), so that no section ranks its defenses again."""
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
    if not by_cell:
        by_cell = run_statistics(run_dir, records, summary) if len(summary) else {}
    stats = {i: by_cell.get((r.dataset, r.metric, r.attack, r.defense))
             for i, r in zip(summary.index, row_tuples(summary, ["dataset", "metric", "attack", "defense"]))}
    stats = {i: s for i, s in stats.items() if s is not None}
    panels = certificate_panels(records)
    groups = list(summary.groupby(["dataset", "metric"], sort=False)) if len(summary) else []
    recs, rankings = section_records(records), section_rankings(ranked, summary)
    secs = [section_context(g, _records_of(recs, records, k), manifest, colours, markers, anchors, stats, keys,
                            rankings.get(k))
            for k, g in tqdm(groups, desc="report: sections", disable=not progress or len(groups) < 2, leave=False)]
    errors = store.errors()
    strips = StoredStrips(run_dir, errors)
    for s in tqdm(secs, desc="report: image strips", disable=not progress or len(secs) < 2, leave=False):
        s["strips"] = section_strips(strips, s.pop("strip_plan"))
        shown = {c["defense"]: c["anchor"] for c in s["strips"]["strips"] if c.get("panels")}
        for row in s["ranking"]["tables"][0]["rows"] if s["ranking"]["tables"] else []:
            if row["defense"] in shown:   # the worst attack links to its images
                row["href"] = f"#{shown[row['defense']]}"
    split = len(summary) > SINGLE_PAGE_CELLS
    common = dict(
        title=manifest.get("name", run_dir.name), colours=colours, measures=measures_link(),
        rule=rule_text(summary) if len(summary) else "", leaderboard_doc=measures_link("docs/leaderboard.md"),
        raw_limit=RAW_TABLE_CELLS)
    env = template_env()
    written = set()
    if split:
        for s in secs:
            name = page_name(s["dataset"], s["metric"])
            s["page"] = f"{PAGES}/{name}"
            written.add(name)
        for i, s in enumerate(secs):
            html = env.get_template("section.html.j2").render(
                **common, s=s, index="../report.html", prev=secs[i - 1] if i else None,
                next=secs[i + 1] if i + 1 < len(secs) else None)
            atomic_write_text(run_dir / s["page"], html)
    _remove_stale_pages(run_dir, written)
    html = env.get_template("report.html.j2").render(
        **common, sections=secs, split=split, n_cells=len(summary), cert_panels=panels, max_errors=MAX_ERRORS,
        non_adaptive=non_adaptive_defenses(summary),
        errors=[{k: e.get(k) for k in ("stage", "dataset", "metric", "attack", "defense", "error")} for e in errors],
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


def _remove_stale_pages(run_dir: Path, keep: set[str]) -> None:
    """Delete section pages an earlier rendering wrote that this one did not (and the folder, once empty); nothing
    else in ``report/`` is touched."""
    folder = run_dir / PAGES
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        if PAGE_NAME.match(p.name) and p.name not in keep and p.is_file():
            p.unlink()
    if not any(folder.iterdir()):
        folder.rmdir()
