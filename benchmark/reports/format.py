"""Cell, header and flag text shared by the run report and the leaderboard, so that both pages write a
number, a column header, a defense's rank and its flags the same way. Titles, arrows and hover texts come
from :mod:`benchmark.schema`."""
from __future__ import annotations

import math

import pandas as pd

from ..schema import column

NOT_ADAPTIVE = "met no adaptive attack"


def fmt(v) -> str:
    """A value as table text: 4 significant digits for a float, "–" for a missing one, yes/no for a bool."""
    if v is None or v is pd.NA:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def as_float(v) -> float:
    """``v`` as a float; NaN for anything that is not a number (None, NA, text)."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def header(name: str, hover: str | None = None) -> dict:
    """A column header ``{title, hover}``: the schema's title with its ↑/↓, and its formula (or ``hover``)."""
    col = column(name)
    return {"title": col.title + (f" {col.arrow}" if col.arrow else ""), "hover": col.hover if hover is None else hover}


def rank_text(rank, low, high, baseline: bool) -> tuple[str, str]:
    """The rank and rank-interval cells of a defense row ("reference" and nothing for a baseline): ``2`` and
    ``1–3`` (the 95 % bootstrap interval; just the rank when the ranking has no interval)."""
    if baseline:
        return "reference", ""
    if low is None or low is pd.NA or high is None or high is pd.NA:
        return fmt(rank), ""
    return fmt(rank), (f"{int(low)}–{int(high)}" if int(low) != int(high) else f"{int(low)}")


def with_interval(v, lo, hi) -> str:
    """``0.031 [0.02, 0.045]``: a value with its 95 % interval (the value alone when there is none)."""
    text = fmt(as_float(v))
    lo, hi = as_float(lo), as_float(hi)
    return text if not (math.isfinite(lo) and math.isfinite(hi)) else f"{text} [{lo:.3g}, {hi:.3g}]"


def value_cell(v, lo=None, hi=None) -> dict:
    """A table cell of a ranked criterion: ``{text, ci, sort}`` with 3 significant digits and its 95 % interval
    (``ci`` empty when there is none), shown on two lines by the pages."""
    num, lo, hi = as_float(v), as_float(lo), as_float(hi)
    text = f"{num:.3g}" if math.isfinite(num) else "–"
    ci = f"[{lo:.3g}, {hi:.3g}]" if math.isfinite(lo) and math.isfinite(hi) else ""
    return {"text": text, "ci": ci, "sort": num if math.isfinite(num) else "nan"}


def defense_flags(notes) -> list[str]:
    """The flags of a defense row: what is unusual for it in its section (ranking.rank_defenses' ``notes``)."""
    return [n for n in str(notes).split("; ") if n] if isinstance(notes, str) else []
