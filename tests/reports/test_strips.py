"""The report's image strips and pages at study size, on synthetic run directories (records and stored strips, no
model: benchmarks/report_timing.py makes them): the strips' budget per section, why a strip is missing, and a
large run split into an index and one page per (dataset, metric) that still open from another folder."""
from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path


from benchmark.reports import build_report, html, strips

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from report_timing import synthetic_run  # noqa: E402


def _run(path: Path, **shape) -> Path:
    shape = {"datasets": 1, "metrics": 1, "families": 1, "budgets": 1, "adaptive_families": 0, "defenses": 8,
             "images": 6, "side": 48, **shape}
    synthetic_run(path, **shape)
    return path


class _Sized:
    """A stand-in for StoredStrips in which every strip has the same size."""

    def __init__(self, nbytes: int):
        self.n = nbytes

    def nbytes(self, key):
        return self.n


def test_the_budget_keeps_the_baselines_then_the_best_and_worst_ranked(monkeypatch):
    cells = [{"defense": "identity", "baseline": True, "keys": {"strip": "k0"}}] + \
        [{"defense": f"d{i}", "baseline": False, "keys": {"strip": f"k{i}"}} for i in range(1, 8)]
    monkeypatch.setattr(strips, "STRIPS_PER_SECTION", 4)
    shown, left = strips.choose(cells, _Sized(100))
    assert [c["defense"] for c in shown] == ["identity", "d1", "d2", "d7"]       # ranking order kept
    assert [c["defense"] for c in left] == ["d3", "d4", "d5", "d6"]
    monkeypatch.setattr(strips, "SECTION_IMAGE_BYTES", 250)
    shown, _ = strips.choose(cells, _Sized(100))
    assert [c["defense"] for c in shown] == ["identity", "d1"]
    shown, _ = strips.choose(cells, _Sized(10_000))      # one strip larger than the budget is still shown
    assert [c["defense"] for c in shown] == ["identity"]


def test_a_section_over_budget_lists_the_strips_it_leaves_out(tmp_path, monkeypatch):
    run = _run(tmp_path / "run")
    monkeypatch.setattr(strips, "STRIPS_PER_SECTION", 3)
    page = build_report(run).read_text()
    assert page.count('<div class="strip" id=') == 3 and "5 more strip(s) stored but not shown here" in page
    folders = re.findall(r'<span class="mono">(stages/strip/[0-9a-f]+/)</span>', page)
    assert len(folders) == 5 and all((run / f).is_dir() for f in folders)


def test_a_missing_strip_says_why(tmp_path):
    run = _run(tmp_path / "run", defenses=5)
    cells = json.loads((run / "cells.json").read_text())
    keys = [c["keys"]["strip"] for c in cells]
    (run / "stages" / "strip" / f"{keys[1]}.json").unlink()                             # not made yet
    (run / "errors").mkdir()
    (run / "errors" / f"{keys[2]}.json").write_text(json.dumps({"key": keys[2], "stage": "strip",
                                                                 "error": "DataError: image gone"}))
    (run / "stages" / "strip" / f"{keys[2]}.json").unlink()                             # failed
    rec = json.loads((run / "stages" / "strip" / f"{keys[3]}.json").read_text())
    (run / "stages" / "strip" / keys[3] / rec["files"]["purified"]["file"]).unlink()   # a file deleted
    del cells[4]["keys"]["strip"]                                                       # an older run
    plan = [{**c, "anchor": f"strip-{i}", "baseline": i == 0} for i, c in enumerate(cells)]
    out = strips.section_strips(strips.StoredStrips(run), plan)
    why = {s["defense"]: s["why"] for s in out["strips"]}
    assert out["clean"] is not None and out["image_id"] == rec["image_id"]
    assert "the run stopped before this cell's strip was made" in why[cells[1]["defense"]]
    assert why[cells[2]["defense"]] == "the strip stage failed: DataError: image gone"
    assert "run it again with --resume" in why[cells[4]["defense"]]
    panels = {s["defense"]: [p["alt"].split()[0] for p in s["panels"]] for s in out["strips"]}
    assert panels[cells[0]["defense"]] == ["attacked", "difference", "zoom"]
    assert panels[cells[3]["defense"]] == ["attacked", "difference", "purified", "zoom"]   # D(x') itself gone
    assert panels[cells[1]["defense"]] == [] and panels[cells[4]["defense"]] == []


def _links(page: Path) -> list[str]:
    return re.findall(r'href="([^"]*)"', page.read_text())


def _resolves(page: Path, href: str) -> bool:
    """A relative link of ``page``: its file exists and, with a fragment, holds that id."""
    path, _, frag = href.partition("#")
    target = (page.parent / path).resolve() if path else page
    return target.is_file() and (not frag or f'id="{frag}"' in target.read_text())


def test_a_large_run_is_an_index_and_one_page_per_section_that_move_together(tmp_path, monkeypatch):
    run = _run(tmp_path / "run", datasets=2, metrics=2, families=2, defenses=4)
    monkeypatch.setattr(html, "SINGLE_PAGE_CELLS", 10)
    monkeypatch.setattr(html, "RAW_TABLE_CELLS", 5)
    index = build_report(run)
    pages = sorted((run / "report").glob("*.html"))
    assert len(pages) == 4 and index.stat().st_size < 1_000_000
    text = index.read_text()
    # the index: every section's ranking and verdict, a link to its page, no image
    assert text.count("<section") == 4 and text.count("Which defense holds") == 4 and "<img" not in text
    assert "report/" in text and all(f"report/{p.name}" in text for p in pages)
    for page in pages:
        body = page.read_text()
        assert body.count("<section") == 1 and 'class="heat"' in body and "<img src=\"data:image/png" in body
        assert "cells is in summary.csv" in body and "<summary>Every column" not in body   # 8 cells > 5
    # copied elsewhere together (report.html and report/): every link still resolves, none leaves the copy
    copy = tmp_path / "elsewhere"
    copy.mkdir()
    shutil.copy(index, copy / "report.html")
    shutil.copytree(run / "report", copy / "report")
    shutil.rmtree(run)
    for page in [copy / "report.html"] + sorted((copy / "report").glob("*.html")):
        hrefs = _links(page)
        assert hrefs and all(not h.startswith(("/", "http", "file:")) for h in hrefs)
        assert all(_resolves(page, h) for h in hrefs), [h for h in hrefs if not _resolves(page, h)][:5]


def test_cell_page_points_into_the_section_page_and_a_small_rerender_removes_the_pages(tmp_path, monkeypatch):
    run = _run(tmp_path / "run", metrics=2, defenses=3)
    monkeypatch.setattr(html, "SINGLE_PAGE_CELLS", 2)
    build_report(run)
    (run / "report" / "notes.txt").write_text("mine")            # not a page: left alone
    summary = __import__("pandas").read_csv(run / "summary.csv")
    for i, r in zip(summary.index, summary.itertuples()):
        page = html.cell_page(run, r.dataset, r.metric)
        assert page.startswith("report/") and f'id="cell-{i}"' in (run / page).read_text()
    monkeypatch.setattr(html, "SINGLE_PAGE_CELLS", 200)
    build_report(run)
    assert [p.name for p in (run / "report").iterdir()] == ["notes.txt"]
    assert html.cell_page(run, summary["dataset"][0], summary["metric"][0]) == "report.html"

