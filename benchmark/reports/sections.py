"""The content of one report section, i.e. one (dataset, metric): the defense ranking per budget (with bootstrap
intervals), the compact grouped cell table (best and worst marked), the raw table, the attack × defense heatmap of
the gain through the defense g_D, gain-vs-budget curves and the trade-off plot. Everything is plain data for the
templates, which escape every string."""
from __future__ import annotations

import math

import pandas as pd

from ..schema import GROUPS, column
from . import plots
from .format import as_float, defense_flags, fmt, header, rank_text, value_cell, with_interval
from .ranking import EASIER, PSNR_COLUMNS, QUALITY_COLUMNS, defense_rows, first_present, indicative, \
    not_separable_groups, rank_defenses, row_tuples, with_values

# Columns of the compact table by group; the first present of a tuple is shown (aligned before unaligned).
COMPACT = [
    ("attack", ["abs_gain", "psnr_attack"]),
    ("defense", ["defended_gain", "robust_abs_gain", "both_defended_abs_gain"]),
    ("quality", ["defense_bias", PSNR_COLUMNS, QUALITY_COLUMNS, "purified_quality"]),
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
    v = pd.to_numeric(cells[col].loc[ranked[ranked].index], errors="coerce").dropna()
    if better is None or v.nunique() < 2:
        return {}
    best, worst = (v.min(), v.max()) if better == "lower" else (v.max(), v.min())
    return {**{i: "worst" for i in v.index[v == worst]}, **{i: "best" for i in v.index[v == best]}}


def _flag_cells(cells: pd.DataFrame, ranked: list[bool]) -> list[dict]:
    """The ``flags`` column of the compact table: a baseline is the reference; an adaptive attack says so."""
    eots = cells["eot_samples"].tolist() if "eot_samples" in cells else [None] * len(cells)
    adaptive = cells["adaptive_attack"].tolist() if "adaptive_attack" in cells else [None] * len(cells)
    out = []
    for is_ranked, e, a in zip(ranked, eots, adaptive):
        eot = int(as_float(e)) if math.isfinite(as_float(e)) else 0
        flags = (["reference"] if not is_ranked else []) + ([f"adaptive (EOT {eot})" if eot > 1 else "adaptive"]
                                                            if a else [])
        out.append({"text": ", ".join(flags), "sort": ", ".join(flags), "cls": "flags"})
    return out


def _value_cells(cells: pd.DataFrame, c: str, marks: dict[int, str], anchors: dict[int, str]) -> list[dict]:
    """A value column of the compact table: 3 significant digits, the 95 % interval as hover text where the
    summary has one, best/worst marks, and the defense linked to the cell's row."""
    interval = f"{c}_lo" in cells
    lo, hi = (cells[f"{c}_lo"].tolist(), cells[f"{c}_hi"].tolist()) if interval else ((), ())
    out = []
    for k, (i, v) in enumerate(zip(cells.index, cells[c].tolist())):
        num = as_float(v)
        text = f"{num:.3g}" if math.isfinite(num) and not isinstance(v, bool) else fmt(v)
        hover = None
        if interval and math.isfinite(num):
            hover = f"95 % interval [{fmt(as_float(lo[k]))}, {fmt(as_float(hi[k]))}]"
        out.append({"text": text, "sort": _sort_key(v), "cls": marks.get(i, ""), "title": hover,
                    "href": f"#{anchors[i]}" if c == "defense" and i in anchors else None})
    return out


def compact_table(cells: pd.DataFrame, anchors: dict[int, str]) -> dict:
    """Grouped header rows and body rows (text, sort key, mark, link) of the compact table (built column by
    column: a study-sized section has some ten thousand cells)."""
    groups = [("cell", ["attack", "defense", "flags"])] + compact_columns(cells)
    ranked = ~cells["defense_baseline"].astype(bool) if "defense_baseline" in cells else pd.Series(True, cells.index)
    marks = {c: _marks(cells, c, ranked) for g, cols in groups if g in MARKED for c in cols}
    flags_header = {"title": "flags", "hover": "adaptive: the attack saw the defense (EOT/BPDA through metric ∘ "
                    "defense); reference: a baseline, not ranked"}
    heads = [{"name": c, **(header(c) if c != "flags" else flags_header)} for _, cols in groups for c in cols]
    columns = [_flag_cells(cells, ranked.tolist()) if c == "flags" else _value_cells(cells, c, marks.get(c, {}), anchors)
               for _, cols in groups for c in cols]
    rows = [list(r) for r in zip(*columns)] if len(cells) else []
    return {"groups": [{"label": GROUPS[g], "span": len(cols)} for g, cols in groups], "header": heads,
            "rows": rows, "ids": [anchors.get(i) for i in cells.index]}


def raw_table(cells: pd.DataFrame) -> dict:
    cols = list(cells.columns)
    return {"header": [{"name": c, "title": c, "hover": column(c).hover} for c in cols],
            "rows": [[{"text": fmt(v), "sort": _sort_key(v)} for v in r] for r in cells.itertuples(index=False)]}


def _base_attack(label: str) -> str:
    """The transfer attack an adaptive twin was made from (``pgd(eps=4/255)+adaptive`` -> ``pgd(eps=4/255)``)."""
    return str(label).split("+adaptive")[0]


def heatmap(cells: pd.DataFrame, anchors: dict[int, str]) -> dict:
    """Attack rows × defense columns of the gain through the defense g_D, with the attack's gain on the undefended
    metric (the baseline's cell of the same, or of the transfer, attack) as first column."""
    attacks = list(dict.fromkeys(cells["attack"]))
    defenses = list(dict.fromkeys(cells["defense"]))
    vals = pd.to_numeric(cells["defended_gain"], errors="coerce")
    vmax = max([v for v in vals if math.isfinite(v)], default=1.0) or 1.0
    base = cells["defense_baseline"].astype(bool) if "defense_baseline" in cells else pd.Series(False, cells.index)
    alone_by_attack = {a: as_float(v) for a, v in zip(cells.loc[base, "attack"], cells.loc[base, "defended_gain"])}
    base_defenses = set(cells.loc[base, "defense"])
    nan = pd.Series(math.nan, cells.index)
    by_pair = {}   # (attack, defense) -> the first cell's index, g_D, robust gain and bias (one pass, not a filter each)
    for i, a, d, g, rg, bias in zip(cells.index, cells["attack"], cells["defense"], cells["defended_gain"],
                                    cells.get("robust_abs_gain", nan), cells.get("defense_bias", nan)):
        by_pair.setdefault((a, d), (i, as_float(g), as_float(rg), as_float(bias)))
    rows = []
    for a in attacks:
        alone = alone_by_attack.get(a, alone_by_attack.get(_base_attack(a), math.nan))
        bg, fg = plots.heat_colour(alone, vmax)
        row = {"attack": a, "cells": [{"text": fmt(alone), "bg": bg, "fg": fg, "href": None,
                                       "title": f"{_base_attack(a)} without defense: g = {fmt(alone)}"}]}
        for d in defenses:
            hit = by_pair.get((a, d))
            if hit is None:
                same = "+adaptive" in a and d in base_defenses
                row["cells"].append({"text": "= transfer" if same else "", "bg": "#f7f7f7", "fg": "#999",
                                     "href": None, "title": "through the baseline the adaptive attack is the "
                                     "transfer attack (run once)" if same else "not run"})
                continue
            i, v, rg, bias = hit
            bg, fg = plots.heat_colour(v, vmax)
            row["cells"].append({"text": fmt(v), "bg": bg, "fg": fg, "href": f"#{anchors.get(i, '')}",
                                 "title": f"{a} → {d}: g_D {fmt(v)} (without defense {fmt(alone)}); robust gain "
                                          f"|s − s'_D|/r {fmt(rg)}, bias {fmt(bias)}"})
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
    adaptive_of: dict = {}   # attack -> whether any of its cells was adaptive
    for a, flag in zip(cells["attack"], cells["adaptive_attack"].astype(bool)):
        adaptive_of[a] = adaptive_of.get(a, False) or bool(flag)
    for a in dict.fromkeys(cells["attack"]):
        b = budget.get(a, math.nan)
        e = specs.get(a)
        if e is None or not math.isfinite(b):
            continue
        rest = {k: v for k, v in (e.get("params") or {}).items()
                if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isclose(float(v), b))}
        adaptive = adaptive_of[a]
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
    base = cells["defense_baseline"].astype(bool) if "defense_baseline" in cells else pd.Series(False, cells.index)
    gain = {}   # (attack, defense) -> g_D of the first such cell; and the baseline's g per attack
    for a, d, g in zip(cells["attack"], cells["defense"], cells["defended_gain"]):
        gain.setdefault((a, d), as_float(g))
    alone_gain = {}   # attack -> (position, g) of its first baseline cell
    for k, (a, g) in enumerate(zip(cells.loc[base, "attack"], cells.loc[base, "defended_gain"])):
        alone_gain.setdefault(a, (k, as_float(g)))
    for title, members in families.items():
        alone = []
        for a, b in members:
            # the first baseline cell (in cell order) of the attack or of the transfer attack it was made from
            hit = sorted(alone_gain[x] for x in {a, _base_attack(a)} if x in alone_gain)
            if hit:
                alone.append((b, hit[0][1]))
        series = [{"label": "no defense (attack alone)", "colour": "#000000", "dashed": True, "points": alone}]
        for d in dict.fromkeys(cells.loc[~base, "defense"]):
            pts = [(b, gain[(a, d)]) for a, b in members if (a, d) in gain]
            series.append({"label": d, "colour": colours.get(d), "points": pts})
        p = plots.budget_curves(series, colours, title=title)
        if p:
            panels.append(p)
    return panels, ""


def tradeoff_plot(ranking: dict, anchors: dict[int, str], colours: dict[str, str]) -> dict | None:
    """One point per defense at its worst case (the first budget's ranking): g_D against the purified quality,
    with their 95 % bootstrap intervals as whiskers; the marker says whether the worst attack was adaptive."""
    rows = ranking["rows"]
    if rows.empty:
        return None
    rows = rows[rows["budget_label"] == rows["budget_label"].iloc[0]]
    pts = []
    for r in row_tuples(rows, ["worst_attack", "cell_index", "worst_gain", "quality", "defense", "worst_gain_lo",
                               "worst_gain_hi", "quality_lo", "quality_hi"]):
        kind = "adaptive attack" if "+adaptive" in str(r.worst_attack) else "transfer attack"
        worst = r.cell_index[0] if r.cell_index else None
        pts.append({"gain": as_float(r.worst_gain), "quality": as_float(r.quality), "defense": r.defense,
                    "attack": kind, "href": f"#{anchors.get(worst, '')}",
                    "gain_ci": (as_float(r.worst_gain_lo), as_float(r.worst_gain_hi)),
                    "quality_ci": (as_float(r.quality_lo), as_float(r.quality_hi)),
                    "title": f"{r.defense}: worst g_D {fmt(as_float(r.worst_gain))} ({r.worst_attack}), purified "
                             f"quality {fmt(as_float(r.quality))}"})
    return plots.tradeoff(pts, {d: c for d, c in colours.items() if d in set(rows["defense"])},
                          {"transfer attack": "circle", "adaptive attack": "square"},
                          xlabel="worst g_D = mean d·sign·(s'_D − s_D)/r, gain through the defense (lower is better)",
                          ylabel="purified quality (higher is better)")


def _g(v) -> str:
    return f"{v:.3g}" if isinstance(v, (int, float)) and math.isfinite(v) else "–"


def _pct(v) -> str:
    return f"{100 * v:.0f} %" if isinstance(v, (int, float)) and math.isfinite(v) else "–"


VERDICT_COLUMNS = ["defense", "worst_attack", "worst_gain", "worst_gain_lo", "worst_gain_hi", "removed", "removed_lo",
                   "removed_hi", "rank", "bias", "fidelity", "quality", "attacked_quality", "notes"]


def verdict(rows: pd.DataFrame, top: int = 3) -> list[str]:
    """Plain sentences per budget: the attack's gain without defense, then for the first ``top`` ranked
    defenses what an attacker who knows them keeps, with intervals, costs and what is unusual."""
    out = []
    for _, g in rows.groupby("budget_label", sort=False) if "budget_label" in rows else [("", rows)]:
        at = f" at {g['budget_label'].iloc[0]}" if "budget_label" in g and g["budget_label"].iloc[0] != "–" else ""
        for r in row_tuples(g[g["baseline"].astype(bool)], VERDICT_COLUMNS):
            out.append(f"Without defense ({r.defense}) the strongest attack{at}, {r.worst_attack}, moves the score by "
                       f"{with_interval(r.worst_gain, r.worst_gain_lo, r.worst_gain_hi)} of the score range in its "
                       "direction.")
        for r in row_tuples(g[~g["baseline"].astype(bool)].head(top), VERDICT_COLUMNS):
            removed, hi = as_float(r.removed), as_float(r.removed_hi)
            if math.isfinite(removed) and removed < 0 and (hi < 0 or not math.isfinite(hi)):
                what = f"makes the metric easier to attack: {_g(-100 * removed)} % more gain than without defense"
            elif math.isfinite(removed) and removed < 0:
                what = f"takes back none of the strongest attack's gain ({_pct(removed)})"
            else:
                what = f"takes back {_pct(removed)} of the strongest attack's gain"
            s = (f"#{r.rank} {r.defense} {what} (interval {_pct(as_float(r.removed_lo))} to "
                 f"{_pct(as_float(r.removed_hi))}); an attacker who knows it ({r.worst_attack}) keeps g_D = "
                 f"{_g(r.worst_gain)}. Costs: score shift on clean images {_g(r.bias)}, fidelity {_g(r.fidelity)}, "
                 f"purified quality {_g(r.quality)} (attacked image: {_g(r.attacked_quality)})")
            notes = [n for n in defense_flags(r.notes) if n != EASIER]
            if notes:
                s += "; " + "; ".join(notes)
            out.append(s + ".")
        groups = not_separable_groups(g)
        if groups:
            out.append("Not separable (their 95 % rank intervals overlap): "
                       + "; ".join(", ".join(x) for x in groups) + ".")
    return out


# the reference gain (the same on every row of a budget) is said in the first verdict sentence, not a column
RANK_COLUMNS = ["worst_gain", "removed", "quality", "fidelity", "fidelity_m", "bias", "worst_robust_gain",
                "seconds_def_adv"]
INTERVALS = {"worst_gain", "removed", "quality", "fidelity", "bias"}


def ranking(cells: pd.DataFrame, anchors: dict[int, str], stats: dict | None = None,
            colours: dict[str, str] | None = None, rows: pd.DataFrame | None = None) -> dict:
    """The ranking tables of a section (one per budget), their verdict sentences and the indicative note; ``rows``:
    the section's ``rank_defenses(defense_rows(cells, ["dataset", "metric", "defense"], stats))`` when the caller
    has it (its slice of the whole run's ranking is the same table), computed here otherwise."""
    if rows is None:
        rows = rank_defenses(defense_rows(cells, ["dataset", "metric", "defense"], stats))
    heads = with_values(rows, RANK_COLUMNS)
    tables = []
    shown = ["cell_index", "rank", "rank_low", "rank_high", "baseline", "defense", "worst_attack", "separable", "notes",
             *heads, *(f"{h}_{end}" for h in heads if h in INTERVALS for end in ("lo", "hi"))]
    for budget, g in rows.groupby("budget_label", sort=False):
        out = []
        for r in row_tuples(g, shown):
            worst = r.cell_index[0] if r.cell_index else None
            rank, interval_text = rank_text(r.rank, r.rank_low, r.rank_high, r.baseline)
            vals = []
            for h in heads:
                v = getattr(r, h)
                if r.baseline and h in ("removed", "bias", "fidelity"):   # 0, 0, 1 by definition: left blank
                    vals.append({"text": "", "ci": "", "sort": "nan"})
                elif h in INTERVALS:
                    vals.append(value_cell(v, getattr(r, f"{h}_lo", math.nan), getattr(r, f"{h}_hi", math.nan)))
                else:
                    vals.append(value_cell(v))
            out.append({"rank": rank, "interval": interval_text, "defense": r.defense, "worst_attack": r.worst_attack,
                        "colour": (colours or {}).get(r.defense, plots.BASELINE_COLOUR),
                        "href": f"#{anchors[worst]}" if worst in anchors else None, "vals": vals,
                        "separable": r.separable, "flags": defense_flags(r.notes), "baseline": r.baseline})
        tables.append({"budget": budget, "rows": out})
    n = int(pd.to_numeric(cells["n_images"], errors="coerce").min()) if "n_images" in cells else 0
    return {"header": [header(h) for h in heads], "tables": tables, "verdict": verdict(rows),
            "indicative": indicative(n), "n_images": n, "rows": rows}
