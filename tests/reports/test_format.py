"""Shared text of the pages: column titles, formulas and directions from the schema, cell text (numbers,
intervals, ranks, flags) and plot ticks and budget labels."""
from __future__ import annotations

import math

import pandas as pd

from benchmark.schema import column


def test_schema_titles_formulas_and_directions():
    assert column("robust_abs_gain").better == "lower" and "s'_D" in column("robust_abs_gain").formula
    assert column("srocc_def_clean").title == "SROCC(m, s_D)" and column("srocc_def_clean").better == "higher"
    aligned = column("purified_quality_aligned")
    assert aligned.better == "higher" and "A(x)" in aligned.formula and "aligned" in aligned.title
    assert column("psnr_def_adv_aligned").title == "PSNR(A(x), D(x'))"
    assert column("msu_abs_gain_lo").better is None and column("no_such_column").title == "no_such_column"


def test_nice_ticks_and_budget_labels():
    from benchmark.reports.plots import fmt_budget, nice_ticks

    assert nice_ticks(0, 0.177) == [0.0, 0.05, 0.1, 0.15, 0.2]
    assert nice_ticks(0.21, 0.79)[0] <= 0.21 and nice_ticks(0.21, 0.79)[-1] >= 0.79
    assert fmt_budget(4 / 255) == "4/255" and fmt_budget(0.3) == "0.3"


def test_shared_cell_text_of_report_and_leaderboard():
    from benchmark.reports.format import as_float, defense_flags, fmt, header, rank_text, value_cell

    assert header("robust_abs_gain")["title"].endswith(" ↓") and "s'_D" in header("robust_abs_gain")["hover"]
    assert header("no_such_column") == {"title": "no_such_column", "hover": "no_such_column"}
    assert header("quality", "q")["hover"] == "q"
    assert rank_text(pd.NA, pd.NA, pd.NA, True) == ("reference", "") and rank_text(2, 1, 3, False) == ("2", "1–3")
    assert rank_text(2, 2, 2, False) == ("2", "2") and rank_text(2, pd.NA, pd.NA, False) == ("2", "")
    assert defense_flags("a; b") == ["a", "b"] and defense_flags("") == [] and defense_flags(math.nan) == []
    assert value_cell(0.12345, 0.1, 0.2) == {"text": "0.123", "ci": "[0.1, 0.2]", "sort": 0.12345}
    assert fmt(0.123456) == "0.1235" and fmt(math.nan) == "–" and fmt(True) == "yes" and fmt(None) == "–"
    assert as_float("x") != as_float("x") and as_float("2.5") == 2.5 and math.isnan(as_float(None))
