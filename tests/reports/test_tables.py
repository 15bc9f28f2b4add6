"""The run's tables (benchmark/reports/tables.py): a later ``report`` of an unchanged run computes no cell summary
and leaves every table file as it was; a table file changed or removed by hand is written again."""
from __future__ import annotations

import pytest

TABLES = ("records.csv", "summary.csv", "summary.md", "records.parquet", "summary.parquet")


@pytest.fixture
def run(small_matrix):
    from benchmark.cli import main

    assert main(["run", str(small_matrix), "--no-progress"]) == 0
    return small_matrix.parent / "runs" / "small"


def test_report_of_an_unchanged_run_computes_no_summary_and_rewrites_no_table(run, monkeypatch):
    pytest.importorskip("pyarrow")
    from benchmark.cli import main
    from benchmark.reports import summaries

    before = {n: ((run / n).read_bytes(), (run / n).stat().st_mtime_ns) for n in TABLES}
    computed = []
    monkeypatch.setattr(summaries, "summary_rows", lambda records: computed.append(1) or iter(()))
    assert main(["-q", "report", str(run)]) == 0
    assert computed == []
    assert {n: ((run / n).read_bytes(), (run / n).stat().st_mtime_ns) for n in TABLES} == before


def test_a_table_changed_or_removed_by_hand_is_written_again(run):
    from benchmark.cli import main

    csv = (run / "records.csv").read_bytes()
    md = (run / "summary.md").read_text()
    (run / "records.csv").write_bytes(csv + b"an edit\n")
    (run / "summary.md").unlink()
    assert main(["-q", "report", str(run)]) == 0
    assert (run / "records.csv").read_bytes() == csv and (run / "summary.md").read_text() == md
