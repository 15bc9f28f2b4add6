"""`python -m benchmark leaderboard`: runs merged by plugin identity, each defense's worst attack (by the gain
through the defense), the ranking rule with bootstrap rank intervals, protocol checks, runs that contribute nothing,
detail anchors, the runs table and the reuse of stored summaries."""
from __future__ import annotations

import json
import os
import shutil
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from conftest import folder_config, write_config, write_image_folder

from benchmark.cli import main

RUN_A = """
[[metrics]]
name = "default"
[[attacks]]
name = "pgd"
eps = "4/255"
steps = 3
adaptive = false
[[attacks]]
name = "pgd"
eps = "4/255"
steps = 3
adaptive = true
eot_samples = 4
[[defenses]]
name = "identity"
[[defenses]]
name = "jpeg"
quality = 50
[[defenses]]
name = "median"
kernel = 3
"""

RUN_B = """
[[metrics]]
name = "default"
[[attacks]]
name = "fgsm"
eps = "4/255"
adaptive = false
[[defenses]]
name = "jpeg"
quality = 50
[[defenses]]
name = "median"
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Runs a and b (same protocol), c (another image size) and `empty` (planned, nothing stored)."""
    tmp = tmp_path_factory.mktemp("lb")
    root = write_image_folder(tmp / "images", 5)
    for name, tables in (("a", RUN_A), ("b", RUN_B)):
        assert main(["run", str(folder_config(tmp, name, root, tables, mos=True)), "--no-progress"]) == 0
    cfg = write_config(tmp, f"""
[run]
name = "c"
output_dir = "{tmp / 'runs'}"
image_size = 64
[[datasets]]
name = "folder"
root = "{root}"
mos_csv = "{root / 'mos.csv'}"
{RUN_B}""", name="c.toml")
    assert main(["run", str(cfg), "--no-progress"]) == 0
    runs = tmp / "runs"
    (runs / "empty").mkdir()
    for f in ("manifest.json", "cells.json"):  # an interrupted run: planned, no stage stored
        shutil.copy(runs / "b" / f, runs / "empty" / f)
    return runs


def test_leaderboard_merges_runs_and_takes_each_defense_s_worst_attack(runs, tmp_path):
    site = tmp_path / "site"
    assert main(["leaderboard", str(runs / "a"), str(runs / "b"), "-o", str(site)]) == 0
    board = pd.read_csv(site / "leaderboard.csv").set_index("defense")
    # `median` (run b) and `median(kernel=3)` (run a; 3 is the default) are one row, as are the two JPEGs
    assert len(board) == 3 and sum(d.startswith("median") for d in board.index) == 1
    jpeg_label = next(d for d in board.index if d.startswith("jpeg"))
    median_label = next(d for d in board.index if d.startswith("median"))
    assert board.loc[median_label, "runs"] == "a, b" and board.loc[median_label, "n_attacks"] == 3
    cells = pd.concat([pd.read_csv(runs / r / "summary.csv") for r in ("a", "b")])
    jpeg = cells[cells["defense"].str.startswith("jpeg")]
    assert len(jpeg) == 3 and board.loc[jpeg_label, "n_attacks"] == 3
    # the worst case is the largest gain through the defense g_D; the published robust gain is kept beside it
    worst = jpeg.loc[jpeg["defended_gain"].idxmax()]
    assert board.loc[jpeg_label, "worst_gain"] == pytest.approx(worst["defended_gain"])
    assert board.loc[jpeg_label, "worst_attack"] == worst["attack"] == "pgd(eps=4/255,steps=3)+adaptive(EOT4)"
    assert board.loc[jpeg_label, "worst_robust_gain"] == pytest.approx(jpeg["robust_abs_gain"].max())
    assert board.loc[jpeg_label, "purified_quality"] == pytest.approx(worst["purified_quality"])
    assert board.loc[jpeg_label, "runs"] == "a, b"
    # gain removed against identity's strongest attack at the same budget (run a's pgd), with intervals
    ident = cells[cells["defense"] == "identity"]["defended_gain"].max()
    assert board.loc[jpeg_label, "removed"] == pytest.approx(1 - worst["defended_gain"] / ident)
    assert board.loc[jpeg_label, "removed_lo"] <= board.loc[jpeg_label, "removed"] <= board.loc[jpeg_label, "removed_hi"]
    ranked = board.dropna(subset=["rank"])
    assert ((ranked["rank_low"] <= ranked["rank"]) & (ranked["rank"] <= ranked["rank_high"])).all()
    # the identity declares itself the baseline: the reference row, not ranked; the others ranked 1..2
    assert bool(board.loc["identity", "baseline"]) and pd.isna(board.loc["identity", "rank"])
    assert sorted(board["rank"].dropna().astype(int)) == [1, 2]
    assert bool(board.loc[jpeg_label, "adaptive"]) and bool(board.loc[median_label, "adaptive"])
    html = (site / "index.html").read_text()
    assert "Indicative ranking: 5 images" in html and "<svg" in html and "src=\"http" not in html
    md = (site / "leaderboard.md").read_text()
    assert md.startswith("|") and "<NA>" not in md and "nan" not in md and "| reference |" in md
    # the runs table: a short commit (the full one on hover), the date and time, the device and versions, the
    # run's folder relative to the page
    runs_table = html.split('id="runs"')[1]
    assert "torch " in runs_table and "UTC" in runs_table and str(runs) not in runs_table
    assert "../" in runs_table


def test_ranked_rows_respect_pareto_dominance(runs, tmp_path):
    site = tmp_path / "site"
    assert main(["leaderboard", str(runs / "a"), str(runs / "b"), "-o", str(site)]) == 0
    t = pd.read_csv(site / "leaderboard.csv").dropna(subset=["rank"])
    crit = np.column_stack([-t["worst_gain"], t["quality"], t["fidelity"]])
    rank = t["rank"].to_numpy()
    for a in range(len(t)):
        for b in range(len(t)):
            if np.all(crit[b] >= crit[a]) and np.any(crit[b] > crit[a]):
                assert rank[b] < rank[a]
    assert t.sort_values("rank")["distance"].is_monotonic_increasing


def test_each_row_links_to_the_cells_behind_it(runs, tmp_path):
    site = tmp_path / "site"
    assert main(["leaderboard", str(runs / "a"), str(runs / "b"), "-o", str(site)]) == 0
    html = (site / "index.html").read_text()
    ids = set(pd.Series(html.split('<details id="')[1:]).str.split('"').str[0])
    assert len(ids) == 3 and all(f'href="#{i}"' in html for i in ids)
    # the detail rows link into the runs' own reports, at the cell's anchor
    assert "../" in html and "report.html#cell-" in html and "worst case" in html


def test_runs_with_different_protocols_are_refused_unless_allowed(runs, tmp_path, capsys):
    site = tmp_path / "site"
    assert main(["leaderboard", str(runs / "a"), str(runs / "c"), "-o", str(site)]) == 2
    err = capsys.readouterr().err
    assert "image size" in err and "a: [96, 96]" in err and "c: [64, 64]" in err and "--allow-mixed" in err
    assert not (site / "index.html").exists()
    assert main(["leaderboard", str(runs / "a"), str(runs / "c"), "-o", str(site), "--allow-mixed"]) == 0
    html = (site / "index.html").read_text()
    assert "--allow-mixed" in html and "image size" in html


def test_a_run_that_contributes_no_row_is_named(runs, tmp_path, caplog):
    site = tmp_path / "site"
    assert main(["leaderboard", str(runs / "a"), str(runs / "empty"), "-o", str(site)]) == 0
    assert any("empty" in r.getMessage() and "contributes no row" in r.getMessage() for r in caplog.records)
    html = (site / "index.html").read_text()
    assert "Contributed no row" in html and "<b>empty</b>" in html and "no finished cell" in html
    assert "merged from 1 of\n2 run(s)" in html or "merged from 1 of 2 run(s)" in html.replace("\n", " ")


def test_stored_summary_is_reused_only_while_newer_than_the_stages(runs, tmp_path):
    run = tmp_path / "b"
    shutil.copytree(runs / "b", run)
    summary = pd.read_csv(run / "summary.csv")
    summary.loc[0, "robust_abs_gain"] = 0.987654     # a marker only the stored file has
    summary.to_csv(run / "summary.csv", index=False)
    stage = next((run / "stages" / "def_adv").glob("*.json"))
    os.utime(stage, (1_000_000_000, 1_000_000_000))
    site = tmp_path / "site"
    assert main(["leaderboard", str(run), "-o", str(site)]) == 0
    assert 0.987654 in set(pd.read_csv(site / "leaderboard.csv")["worst_robust_gain"].round(6))
    os.utime(stage)                                  # a stage stored after the summary: recomputed
    assert main(["leaderboard", str(run), "-o", str(site)]) == 0
    assert 0.987654 not in set(pd.read_csv(site / "leaderboard.csv")["worst_robust_gain"].round(6))


def test_baseline_flag_attached_once_and_for_a_summary_written_without_it(runs, tmp_path, monkeypatch):
    from benchmark.reports import leaderboard, runinfo

    spy = mock.Mock(wraps=runinfo.attach_baseline)
    monkeypatch.setattr(runinfo, "attach_baseline", spy)       # complete_summary
    monkeypatch.setattr(leaderboard, "attach_baseline", spy)   # load_run
    run = tmp_path / "a"
    shutil.copytree(runs / "a", run)
    stored = pd.read_csv(run / "summary.csv")
    reference = leaderboard.load_run(run).cells.set_index(["attack", "defense"])["defense_baseline"]
    assert spy.call_count == 0 and reference.xs("identity", level="defense").all() and reference.sum() == 2
    (run / "summary.csv").unlink()                                 # computed from the records
    assert leaderboard.load_run(run).cells.set_index(["attack", "defense"])["defense_baseline"].equals(reference)
    assert spy.call_count == 1 and len(spy.call_args.args[0]) == len(stored)
    stored.drop(columns="defense_baseline").to_csv(run / "summary.csv", index=False)   # an older summary.csv
    spy.reset_mock()
    assert leaderboard.load_run(run).cells.set_index(["attack", "defense"])["defense_baseline"].equals(reference)
    assert spy.call_count == 1 and len(spy.call_args.args[0]) == len(stored)


def test_canonical_labels_fill_in_defaults():
    from benchmark.reports.protocol import canonical_label, plugin_keys

    assert canonical_label("defenses", {"name": "median", "params": {"kernel": 3}}) == "median"
    assert canonical_label("defenses", {"name": "median", "params": {"kernel": 5}}) == "median(kernel=5)"
    keys = plugin_keys({"plugins": {"defenses": [{"name": "median", "label": "median", "params": {}},
                                                 {"name": "median", "label": "m3", "params": {"kernel": 3}}]}})
    assert keys["defenses"]["median"][0] == keys["defenses"]["m3"][0]


def test_protocol_differences_name_what_differs():
    from benchmark.reports.protocol import differences

    base = {"image size": [256, 256], "size policy": "resize", "datasets": {"koniq10k": {"split": "test"}},
            "metrics": {"CNNIQA": {"weights": "CNNIQA-LIVE"}}, "budgets": [("linf", 4 / 255)]}
    other = json.loads(json.dumps(base))
    other["datasets"]["koniq10k"]["split"] = "all"
    other["metrics"]["CNNIQA"]["weights"] = "CNNIQA-KonIQ"
    other["budgets"] = [["linf", 8 / 255]]
    d = differences({"a": base, "b": json.loads(json.dumps(base)), "c": other})
    assert any(x.startswith("dataset koniq10k parameters (split)") and "c: split=all" in x for x in d)
    assert any(x.startswith("metric CNNIQA parameters (weights)") for x in d)
    assert any(x.startswith("attack budgets") and "8/255" in x for x in d)
    assert differences({"a": base, "b": json.loads(json.dumps(base))}) == []


def test_leaderboard_names_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["leaderboard", str(tmp_path), "-o", str(tmp_path / "site")]) == 2
    assert f"{tmp_path} is not a run directory" in capsys.readouterr().err


def test_stages_left_under_older_keys_do_not_change_the_protocol(runs, tmp_path):
    """A run resumed after a STAGE_VERSION change keeps its old stage files; only the planned ones count."""
    from benchmark.reports.protocol import protocol

    run = tmp_path / "a"
    shutil.copytree(runs / "a", run)
    manifest = json.loads((run / "manifest.json").read_text())
    before = protocol(run, manifest)["budgets"]
    old = next((run / "stages" / "attack").glob("*.json"))
    rec = json.loads(old.read_text())
    rec["attack_meta"]["budget"] = 0.5
    (old.parent / "0123456789abcdef0123.json").write_text(json.dumps({**rec, "key": "0123456789abcdef0123"}))
    assert protocol(run, manifest)["budgets"] == before and ("linf", 0.5) not in before
    site = tmp_path / "site"
    assert main(["leaderboard", str(runs / "b"), str(run), "-o", str(site)]) == 0


def test_detail_rows_link_into_the_section_page_of_a_split_report(tmp_path, monkeypatch):
    """A run large enough for one page per (dataset, metric): each cell's link goes to its section's page."""
    import re
    import sys
    from pathlib import Path

    from benchmark.reports import build_report, html

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from report_timing import synthetic_run

    run = tmp_path / "study"
    synthetic_run(run, datasets=1, metrics=2, families=1, budgets=1, adaptive_families=0, defenses=3, images=6,
                  side=48)
    monkeypatch.setattr(html, "SINGLE_PAGE_CELLS", 2)
    build_report(run)
    assert main(["leaderboard", str(run), "-o", str(tmp_path / "site")]) == 0
    links = set(re.findall(r'href="(\.\./study/report/[^"#]+)#(cell-\d+)"', (tmp_path / "site" / "index.html").read_text()))
    assert len({page for page, _ in links}) == 2 and len(links) == 6
    for page, cell in links:
        assert f'id="{cell}"' in (tmp_path / "site" / page).read_text()
