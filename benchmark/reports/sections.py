"""The content of one report section, i.e. one (dataset, metric): the defense ranking, the compact grouped
cell table (best and worst marked), the raw table, the attack × defense heatmap of robust gain, gain-vs-budget
curves and the trade-off plot. Everything is plain data for the templates, which escape every string."""
from __future__ import annotations

import math

import pandas as pd

from ..schema import GROUPS, column
from . import plots
from .format import as_float, defense_flags, fmt, header, rank_text
from .ranking import PSNR_COLUMNS, QUALITY_COLUMNS, coalesce, damages, defense_rows, first_present, rank_defenses, \
    with_values

# Columns of the compact table by group; the first present of a tuple is shown (aligned before unaligned).
COMPACT = [
    ("attack", ["abs_gain", "psnr_attack"]),
    ("defense", ["robust_abs_gain", "both_defended_abs_gain"]),
    ("quality", [PSNR_COLUMNS, QUALITY_COLUMNS, "purified_quality"]),
    ("correlation", ["srocc_clean", "srocc_def_clean", "plcc_clean", "plcc_def_clean"]),
    ("certificate", ["cert_width", "abstain_rate"]),
    ("cost", ["seconds_def_adv"]),
]
MARKED = {"defense", "quality", "correlation", "certificate", "cost"}  # groups whose best/worst are marked


def _sort_key(v):
    """A cell's ``data-v``: its number, "" for text (sorted as text), "nan" for a missing number (sorted last)."""
    num = as_float(v)
    return num if math.isfinite(num) else ("" if isinstance(v, str) else "nan")


def compact_columns(cells: pd.DataFrame) -> list[tuple[str, list[str]]]:
    """(group, columns) of the compact table for these cells: absent and all-NaN columns left out."""
    out = []
    for group, cols in COMPACT:
        names = []
        for c in cols:
            name = first_present(cells, c if isinstance(c, tuple) else (c,))
            # the unaligned purified quality beside the aligned one, for comparison with published tables
            if name and name not in names and not (c == "purified_quality" and "purified_quality_aligned" not in names):
                names.append(name)
        if names:
            out.append((group, names))
    return out


def _marks(cells: pd.DataFrame, col: str, ranked: pd.Series) -> dict[int, str]:
    """``best``/``worst`` for the rows holding the extreme values of ``col`` among ``ranked`` rows."""
    better = column(col).better
    v = pd.to_numeric(cells.loc[ranked[ranked].index, col], errors="coerce").dropna()
    if better is None or v.nunique() < 2:
        return {}
    best, worst = (v.min(), v.max()) if better == "lower" else (v.max(), v.min())
    return {**{i: "worst" for i in v.index[v == worst]}, **{i: "best" for i in v.index[v == best]}}


def compact_table(cells: pd.DataFrame, anchors: dict[int, str]) -> dict:
    """Grouped header rows and body rows (text, sort key, mark, link) of the compact table."""
    groups = [("cell", ["attack", "defense", "flags"])] + compact_columns(cells)
    ranked = ~cells["defense_baseline"].astype(bool) if "defense_baseline" in cells else pd.Series(True, cells.index)
    marks = {c: _marks(cells, c, ranked) for g, cols in groups if g in MARKED for c in cols}
    harm = damages(cells)
    flags_header = {"title": "flags", "hover": "adaptive: the attack saw the defense; "
                    "damages: PSNR(x, D(x')) < PSNR(x, x'); reference: a baseline, not ranked"}
    heads = [{"name": c, **(header(c) if c != "flags" else flags_header)} for _, cols in groups for c in cols]
    rows = []
    for i, r in cells.iterrows():
        row = []
        for g, cols in groups:
            for c in cols:
                if c == "flags":
                    flags = (["reference"] if not ranked[i] else []) \
                        + (["adaptive"] if r.get("adaptive_attack") else []) + (["damages"] if harm[i] else [])
                    row.append({"text": ", ".join(flags), "sort": ", ".join(flags), "cls": "flags"})
                    continue
                v = r.get(c)
                num = as_float(v)
                text = f"{num:.3g}" if math.isfinite(num) and not isinstance(v, bool) else fmt(v)
                hover = None
                if f"{c}_lo" in cells and math.isfinite(num):
                    hover = f"95 % interval [{fmt(as_float(r[f'{c}_lo']))}, {fmt(as_float(r[f'{c}_hi']))}]"
                row.append({"text": text, "sort": _sort_key(v),
                            "cls": marks.get(c, {}).get(i, ""), "title": hover,
                            "href": f"#{anchors[i]}" if c == "defense" and i in anchors else None})
        rows.append(row)
    return {"groups": [{"label": GROUPS[g], "span": len(cols)} for g, cols in groups], "header": heads,
            "rows": rows}


def raw_table(cells: pd.DataFrame) -> dict:
    cols = list(cells.columns)
    return {"header": [{"name": c, "title": c, "hover": column(c).hover} for c in cols],
            "rows": [[{"text": fmt(v), "sort": _sort_key(v)} for v in r] for r in cells.itertuples(index=False)]}


def heatmap(cells: pd.DataFrame, anchors: dict[int, str]) -> dict:
    """Attack rows × defense columns of robust gain, with the attack's undefended gain as first column."""
    attacks = list(dict.fromkeys(cells["attack"]))
    defenses = list(dict.fromkeys(cells["defense"]))
    vals = pd.to_numeric(cells["robust_abs_gain"], errors="coerce")
    vmax = max([v for v in list(vals) + list(pd.to_numeric(cells["abs_gain"], errors="coerce")) if math.isfinite(v)],
               default=1.0)
    harm = damages(cells)
    rows = []
    for a in attacks:
        sub = cells[cells["attack"] == a]
        alone = as_float(sub["abs_gain"].iloc[0]) if sub["adaptive_attack"].astype(bool).sum() == 0 else math.nan
        bg, fg = plots.heat_colour(alone, vmax)
        row = {"attack": a, "cells": [{"text": fmt(alone), "bg": bg, "fg": fg, "href": None,
                                       "title": f"{a} without defense: mean |s − s'|/r = {fmt(alone)}"}]}
        for d in defenses:
            hit = sub[sub["defense"] == d]
            if hit.empty:
                row["cells"].append({"text": "", "bg": "#f7f7f7", "fg": "#999", "href": None, "title": "not run"})
                continue
            i = hit.index[0]
            v = as_float(hit["robust_abs_gain"].iloc[0])
            bg, fg = plots.heat_colour(v, vmax)
            mark = " †" if harm[i] else ""
            row["cells"].append({"text": fmt(v) + mark, "bg": bg, "fg": fg, "href": f"#{anchors.get(i, '')}",
                                 "title": f"{a} → {d}: robust gain {fmt(v)} "
                                          f"(attack alone {fmt(as_float(hit['abs_gain'].iloc[0]))})"
                                          + ("; the purified image is further from x than x' is" if mark else "")})
        rows.append(row)
    return {"defenses": defenses, "rows": rows, "vmax": vmax, "legend": [
        {"text": fmt(vmax * t), "bg": plots.heat_colour(vmax * t, vmax)[0], "fg": plots.heat_colour(vmax * t, vmax)[1]}
        for t in (0, 0.25, 0.5, 0.75, 1.0)]}


def attack_families(cells: pd.DataFrame, records: pd.DataFrame | None, manifest: dict
                    ) -> dict[str, list[tuple[str, float]]]:
    """Attacks that differ only in their budget: family title -> [(attack label, budget)]."""
    specs = {e["label"]: e for e in (manifest.get("plugins") or {}).get("attacks", [])}
    budget = {}
    if records is not None and "budget" in records:
        budget = {a: as_float(b) for a, b in records.groupby("attack", sort=False)["budget"].first().items()}
    fams: dict[str, list[tuple[str, float]]] = {}
    for a in dict.fromkeys(cells["attack"]):
        b = budget.get(a, math.nan)
        e = specs.get(a)
        if e is None or not math.isfinite(b):
            continue
        rest = {k: v for k, v in (e.get("params") or {}).items()
                if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isclose(float(v), b))}
        adaptive = bool(cells.loc[cells["attack"] == a, "adaptive_attack"].astype(bool).any())
        title = e["name"] + (f"({','.join(f'{k}={v}' for k, v in sorted(rest.items()))})" if rest else "") \
            + (" adaptive" if adaptive else "")
        fams.setdefault(title, []).append((a, b))
    return fams


def budget_panels(cells: pd.DataFrame, records: pd.DataFrame | None, manifest: dict, colours: dict[str, str]
                  ) -> tuple[list[dict], str]:
    """Gain-vs-budget panels, one per attack family; none (and a note saying so) when every family was run
    at a single budget."""
    panels = []
    families = attack_families(cells, records, manifest)
    if families and all(len({b for _, b in m}) == 1 for m in families.values()):
        return [], ("Each attack was run at one budget (" + ", ".join(
            f"{t} {plots.fmt_budget(m[0][1])}" for t, m in families.items()) + "): give a list, e.g. "
            "eps = [\"2/255\", \"4/255\", \"8/255\"], for curves of gain against budget.")
    for title, members in families.items():
        series = [{"label": "no defense (attack alone)", "colour": "#000000", "dashed": True,
                   "points": [(b, as_float(cells.loc[cells["attack"] == a, "abs_gain"].iloc[0])) for a, b in members]}]
        for d in dict.fromkeys(cells["defense"]):
            pts = []
            for a, b in members:
                hit = cells[(cells["attack"] == a) & (cells["defense"] == d)]
                if len(hit):
                    pts.append((b, as_float(hit["robust_abs_gain"].iloc[0])))
            series.append({"label": d, "colour": colours.get(d), "points": pts})
        p = plots.budget_curves(series, colours, title=title)
        if p:
            panels.append(p)
    return panels, ""


def tradeoff_plot(cells: pd.DataFrame, anchors: dict[int, str], colours: dict[str, str], markers: dict[str, str]
                  ) -> dict | None:
    q = first_present(cells, QUALITY_COLUMNS)
    if q is None:
        return None
    quality = coalesce(cells, QUALITY_COLUMNS)
    pts = [{"gain": as_float(r["robust_abs_gain"]), "quality": float(quality[i]), "defense": r["defense"],
            "attack": r["attack"], "href": f"#{anchors.get(i, '')}",
            "title": f"{r['defense']} vs {r['attack']}: robust gain {fmt(as_float(r['robust_abs_gain']))}, "
                     f"{column(q).title} {fmt(float(quality[i]))}"} for i, r in cells.iterrows()]
    return plots.tradeoff(pts, {d: c for d, c in colours.items() if d in set(cells["defense"])},
                          {a: m for a, m in markers.items() if a in set(cells["attack"])},
                          xlabel="robust gain mean |s − s'_D|/r (lower is better)",
                          ylabel=f"{column(q).title} (higher is better)")


def _g(v) -> str:
    return f"{v:.3g}" if isinstance(v, (int, float)) and math.isfinite(v) else "–"


def verdict(rows: pd.DataFrame, top: int = 3) -> list[str]:
    """Plain sentences for the first ``top`` ranked defenses (and the baseline): what each takes back of its
    strongest attack, and at what cost in image quality and agreement with MOS."""
    out = []
    mos = "srocc_def_clean" in rows and rows["srocc_def_clean"].notna().any()
    for r in rows[rows["baseline"].astype(bool)].itertuples():
        out.append(f"Without defense ({r.defense}) the strongest attack, {r.worst_attack}, moves the score by "
                   f"{_g(r.worst_robust_gain)} of the score range; the attacked image itself scores "
                   f"{_g(r.attacked_quality)} on the purified-quality scale.")
    for r in rows[~rows["baseline"].astype(bool)].head(top).itertuples():
        s = (f"#{r.rank} {r.defense} takes back {_g(100 * r.removed) if math.isfinite(r.removed) else '–'} % of the "
             f"score shift of its strongest attack ({r.worst_attack}: {_g(r.worst_robust_gain)} left of "
             f"{_g(r.abs_gain)}), at purified quality {_g(r.quality)} (attacked image: {_g(r.attacked_quality)})")
        if mos:
            s += f", SROCC(m, s_D) {_g(r.srocc_def_clean)} (undefended {_g(r.srocc_clean)})"
        if r.damages:
            s += "; its output is further from the clean image than the attacked image is"
        if not r.adaptive:
            s += "; no adaptive attack tried it"
        out.append(s + ".")
    return out


RANK_COLUMNS = ["worst_robust_gain", "removed", "quality", "srocc_def_clean", "plcc_def_clean", "distance",
                "seconds_def_adv"]


def ranking(cells: pd.DataFrame, anchors: dict[int, str]) -> dict:
    rows = rank_defenses(defense_rows(cells, ["dataset", "metric", "defense"]))
    heads = with_values(rows, RANK_COLUMNS)
    out = []
    for r in rows.itertuples():
        worst = r.cell_index[0] if r.cell_index else None
        rank, front = rank_text(r.rank, r.front, r.baseline)
        out.append({"rank": rank, "front": front, "defense": r.defense, "worst_attack": r.worst_attack,
                    "href": f"#{anchors[worst]}" if worst in anchors else None,
                    "vals": [fmt(getattr(r, h)) for h in heads],
                    "flags": defense_flags(r.damages, r.adaptive, r.baseline), "baseline": r.baseline})
    return {"header": [header(h) for h in heads], "rows": out, "verdict": verdict(rows)}
