"""Cell, header and flag text shared by the run report and the leaderboard, so that both pages write a
number, a column header, a defense's rank and its flags the same way. Titles, arrows and hover texts come
from :mod:`benchmark.schema`."""
from __future__ import annotations

import math

import pandas as pd

from ..schema import column

DAMAGES = "damages more than the attack"   # PSNR(x, D(x')) < PSNR(x, x') (ranking.damages)
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


def rank_text(rank, front, baseline: bool) -> tuple[str, str]:
    """The rank and Pareto-front cells of a defense row: "reference" and nothing for a baseline."""
    return ("reference", "") if baseline else (fmt(rank), fmt(front))


def defense_flags(damages: bool, adaptive: bool, baseline: bool) -> list[str]:
    """The flags of a defense row: it damages the image more than the attack does; no adaptive attack
    tried it (said of ranked defenses only)."""
    return ([DAMAGES] if damages else []) + ([] if adaptive or baseline else [NOT_ADAPTIVE])
