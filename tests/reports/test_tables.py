"""The run's tables (benchmark/reports/tables.py): a later ``report`` of an unchanged run computes no cell summary
and leaves every table file as it was; a table file changed or removed by hand is written again."""
from __future__ import annotations

import pytest
from conftest import folder_config, write_image_folder

MATRIX = """
[[metrics]]
name = "default"
[[attacks]]
name = "fgsm"
eps = "4/255"
adaptive = false
[[defenses]]
name = "identity"
[[defenses]]
name = "jpeg"
quality = 40
"""
TABLES = ("records.csv", "summary.csv", "summary.md", "records.parquet", "summary.parquet")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from benchmark.cli import main

    tmp = tmp_path_factory.mktemp("tables")
    root = write_image_folder(tmp / "images", 4)
    cfg = folder_config(tmp, "tab", root, MATRIX, mos=True, run_extra="batch_size = 4")
    assert main(["run", str(cfg), "--no-progress"]) == 0
    return tmp / "runs" / "tab"


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
