"""The column schema (benchmark/schema.py), the columns a real run produces and the measures document
(docs/measures.md) cannot drift apart.

A small real run (five tiny images with MOS, the shipped default metric, FGSM; identity, flip, median and
Cohen smoothing: so MOS correlations, bootstrap intervals, certificates with and without radius and the
geometry-aligned columns all appear) gives the records and the summary; every column of either must be
described by the schema, every schema column must be produced by the run, and the document must name every
summary column with the schema's formula and direction.
"""
from __future__ import annotations

import re

import pandas as pd
import pytest
from conftest import DEFAULT_FGSM_IDENTITY, ROOT

from benchmark.schema import CELL, COLUMNS, CORRELATION_TAGS, HEADLINE, MEASURES_DOC, RECORD_LEAD, column, names

MATRIX = DEFAULT_FGSM_IDENTITY + """
[[defenses]]
name = "flip"
[[defenses]]
name = "median_smoothing"
n = 20
[[defenses]]
name = "cohen_smoothing"
n0 = 4
n = 16
"""

# Written by pair_quality only with ``lpips = true`` / ``dists = true`` and their weights, which tests lack.
WEIGHTED = ("lpips_", "dists_")


def weighted(name: str) -> bool:
    return name.startswith(WEIGHTED)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from conftest import folder_config, write_image_folder

    from benchmark.cli import main

    tmp = tmp_path_factory.mktemp("schema")
    cfg = folder_config(tmp, "sch", write_image_folder(tmp / "images", 5), MATRIX, mos=True)
    assert main(["run", str(cfg), "--no-progress"]) == 0
    return tmp / "runs" / "sch"


@pytest.fixture(scope="module")
def tables(run):
    from benchmark.measures import summarize
    from benchmark.records import load_records

    records = load_records(run)
    return records, summarize(records), pd.read_csv(run / "summary.csv")


def test_every_record_column_is_in_the_schema_and_every_schema_record_column_is_written(run, tables):
    records = tables[0]
    assert records["defense"].nunique() == 4 and records["cert_radius_clean"].notna().any()
    assert records["defense_changes_geometry"].any() and records["mos"].notna().all()
    unknown = [c for c in records.columns if c not in COLUMNS or not COLUMNS[c].in_records]
    assert unknown == []
    missing = [n for n in names(in_records=True) if n not in records and not weighted(n)]
    assert missing == []
    # records.csv leads with the schema's cell and image columns, in that order
    written = pd.read_csv(run / "records.csv", nrows=0).columns.tolist()
    assert written[: len(RECORD_LEAD)] == RECORD_LEAD and set(written) == set(records.columns)


def test_every_summary_column_is_in_the_schema_and_every_schema_summary_column_is_computed(tables):
    from benchmark.reports.runinfo import ALIGNED_MEANS

    _, summary, written = tables
    assert [c for c in summary.columns if column(c).kind != "summary" or c not in COLUMNS] == []
    from benchmark.reports.tables import RANK_SUMMARY

    # summary.csv adds what the pages need: the baseline flag, cell means of aligned record columns, and the rank of
    # the cell's defense with its bootstrap interval (docs/measures.md, "Verdicts")
    extra = [c for c in written.columns if c not in summary]
    assert set(extra) == {"defense_baseline", *ALIGNED_MEANS, *RANK_SUMMARY}
    assert all(COLUMNS[c].kind == "record" and c.endswith("_aligned") for c in ALIGNED_MEANS)
    missing = [n for n in names("summary") if n not in written and not weighted(n)]
    assert missing == []
    assert written.columns.tolist()[: len(HEADLINE)] == HEADLINE and list(CELL) == HEADLINE[:4]


def test_the_per_image_means_of_a_cell_are_the_schema_columns_it_marks(tables):
    records, summary, _ = tables
    means = [c.name for c in COLUMNS.values() if c.per_image and c.group in ("attack", "quality", "cost")]
    assert set(means) <= set(summary.columns) | {n for n in means if weighted(n)}
    row = summary[summary["defense"].str.startswith("flip")].iloc[0]
    # that cell's images (the flip meets the transfer attack and its adaptive twin: two cells)
    flip = records["defense"].str.startswith("flip") & (records["attack"] == row["attack"])
    assert row["psnr_def_adv"] == pytest.approx(records.loc[flip, "psnr_def_adv"].mean())
    assert row["seconds_def_clean"] == pytest.approx(records.loc[flip, "seconds_def_clean"].mean())


def test_pages_and_leaderboard_name_only_schema_columns():
    from benchmark.reports import leaderboard, ranking, sections

    shown = set(leaderboard.COLUMNS) | set(sections.RANK_COLUMNS) | set(ranking.CRITERIA)
    shown |= set(ranking.QUALITY_COLUMNS) | set(ranking.PSNR_COLUMNS)
    for _, cols in sections.COMPACT:
        shown |= {c for col in cols for c in ((col,) if isinstance(col, str) else col)}
    assert sorted(shown - set(COLUMNS)) == []
    # a leaderboard column's direction is the one the ranking uses
    assert {c: COLUMNS[c].better for c in ranking.CRITERIA} == ranking.CRITERIA


# -- docs/measures.md -------------------------------------------------------------------------------------

def doc_rows() -> list[tuple[list[str], str, str]]:
    """``(column names, formula cell, direction cell)`` of every table row of the measures document that
    names columns: ``<tag>`` expanded to the correlation tags, ``_lo``/``_hi`` to the row's first column."""
    out = []
    for line in (ROOT / MEASURES_DOC).read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\| ((?:`[\w<>]+`(?:, )?)+(?: \(`[\w…]+`.*?\))?) \| (.*) \| ([^|]*) \|$", line)
        if not m:
            continue
        tokens = re.findall(r"`([\w<>]+)`", m.group(1))
        cols: list[str] = []
        for tok in tokens:
            if tok in ("_lo", "_hi"):
                cols.append(tokens[0] + tok)
            elif "<tag>" in tok:
                cols += [tok.replace("<tag>", tag) for tag in CORRELATION_TAGS]
            else:
                cols.append(tok)
        cells = m.group(2).split(" | ")
        out.append((cols, cells[0], m.group(3).strip()))
    return out


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_the_document_names_every_summary_column_and_only_schema_columns():
    rows = doc_rows()
    listed = {c for cols, _, _ in rows for c in cols}
    assert len(rows) > 40
    assert sorted(listed - set(COLUMNS)) == []                      # the document describes no unknown column
    assert sorted(set(names("summary")) - listed) == []             # and every summary column


def test_schema_formulas_and_directions_are_the_documents():
    arrows = {"↓": "lower", "↑": "higher", "—": None}
    checked = 0
    for cols, formula, direction in doc_rows():
        doc_formula = re.findall(r"`([^`]+)`", formula)
        for c in cols if doc_formula else []:  # the row's first formula is in the hover text, spacing aside
            if not c.endswith(("_lo", "_hi")):
                assert squeeze(doc_formula[0]) in squeeze(COLUMNS[c].formula), c
                checked += 1
        if direction[:1] in arrows:            # interval ends (_lo, _hi) are never marked best or worst
            for c in cols:
                want = None if c.endswith(("_lo", "_hi")) else arrows[direction[:1]]
                assert COLUMNS[c].better == want, c
    assert checked >= 45


def test_a_few_formulas_in_full():
    assert column("robustness_R").better == "higher" and "max(1 − ŝ, ŝ − 0)" in column("robustness_R").formula
    assert "hi − s, s − lo" in column("robustness_R_range").formula
    assert column("wasserstein_score").formula.startswith("sign · sgn(mean ŝ' − mean ŝ)")
    assert column("srocc_def_adv").title == "SROCC(m, s'_D)" and column("rmse_clean").better == "lower"
    assert column("cert_radius_clean").kind == "record" and column("cert_radius").kind == "summary"
    assert column("psnr_attack").per_image and column("psnr_attack").better is None
    assert column("lpips_def_adv").better == "lower" and column("psnr_def_clean_aligned").title == "PSNR(A(x), D(x))"
    assert column("robustness_R_hi").formula.startswith("upper end of the 95 % Student-t interval of robustness_R")
