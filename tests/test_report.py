"""The run report: ranking rule, damage flag, column schema, plots, image strips and a rendered page."""
from __future__ import annotations

import base64
import io
import math
import re
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from conftest import folder_config, write_image_folder

from benchmark.reports.ranking import damages, defense_rows, pareto_fronts, rank_defenses
from benchmark.schema import column


def _rows(**defenses) -> pd.DataFrame:
    """Defense rows of one (dataset, metric) from ``name=(worst robust gain, quality, srocc)``."""
    return pd.DataFrame([{"dataset": "d", "metric": "m", "defense": k, "worst_robust_gain": g, "quality": q,
                          "srocc_def_clean": s, "baseline": k == "identity"} for k, (g, q, s) in defenses.items()])


def test_worst_quality_cannot_rank_first_when_another_is_as_good_everywhere():
    # "wreck" has the lowest quality; "jpeg" is at least as good on every criterion (equal gain and SROCC)
    t = rank_defenses(_rows(wreck=(0.01, 0.20, 0.80), jpeg=(0.01, 0.70, 0.80), blur=(0.05, 0.75, 0.90)))
    ranks = dict(zip(t["defense"], t["rank"]))
    assert ranks["wreck"] != 1 and ranks["jpeg"] < ranks["wreck"]
    assert dict(zip(t["defense"], t["front"])) == {"wreck": 2, "jpeg": 1, "blur": 1}


def test_lowest_gain_at_a_large_quality_cost_does_not_win_its_front():
    # flip-like: best gain by a hair, at a third of the quality; both are on the first front, and the
    # distance to the ideal puts the balanced defense first (issue #12: flip ranked first on gain alone)
    t = rank_defenses(_rows(identity=(0.18, 0.80, 0.70), flip=(0.010, 0.23, 0.80), jpeg=(0.012, 0.70, 0.85)))
    assert list(t["defense"]) == ["identity", "jpeg", "flip"]
    assert t["front"].isna().iloc[0] and list(t["front"].iloc[1:]) == [1, 1]
    assert t.loc[t["defense"] == "jpeg", "distance"].item() < t.loc[t["defense"] == "flip", "distance"].item()


def test_baselines_are_the_reference_row_and_never_ranked():
    t = rank_defenses(_rows(identity=(0.0, 1.0, 1.0), jpeg=(0.05, 0.6, 0.7)))
    ident = t[t["defense"] == "identity"].iloc[0]
    assert t.iloc[0]["defense"] == "identity" and pd.isna(ident["rank"]) and pd.isna(ident["front"])
    assert t.loc[t["defense"] == "jpeg", "rank"].item() == 1


def test_no_defense_is_ranked_above_one_that_dominates_it():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(2, 9))
        vals = rng.integers(0, 4, size=(n, 3)).astype(float) / 4   # ties on purpose
        t = rank_defenses(_rows(**{f"d{i}": tuple(v) for i, v in enumerate(vals)}))
        crit = np.column_stack([-t["worst_robust_gain"], t["quality"], t["srocc_def_clean"]]).astype(float)
        rank = t["rank"].to_numpy(float)
        for a in range(n):
            for b in range(n):
                if np.all(crit[b] >= crit[a]) and np.any(crit[b] > crit[a]):
                    assert rank[b] < rank[a]


def test_pareto_fronts_treat_missing_values_as_worst():
    v = np.array([[1.0, np.nan], [0.5, 0.5], [0.2, 0.1]])
    assert list(pareto_fronts(v)) == [1, 1, 2]


def test_srocc_criterion_is_dropped_without_mos():
    t = rank_defenses(_rows(a=(0.01, 0.5, math.nan), b=(0.02, 0.6, math.nan)))
    assert set(t["front"]) == {1}          # without SROCC neither dominates the other


def test_damage_flag_compares_purified_and_attacked_psnr():
    cells = pd.DataFrame({"psnr_attack": [40.0, 40.0, 30.0], "psnr_def_adv": [35.0, 45.0, 12.0],
                          "psnr_def_adv_aligned": [35.0, 45.0, 60.0]})
    # the third (a mirror image) is far from x but close to the mirrored x: the aligned PSNR decides
    assert list(damages(cells)) == [True, False, False]
    assert list(damages(cells.drop(columns="psnr_def_adv_aligned"))) == [True, False, True]


def test_defense_rows_take_the_worst_attack_and_aligned_quality_where_present():
    cells = pd.DataFrame({"dataset": "d", "metric": "m", "defense": ["f", "f", "j"], "attack": ["a", "b", "a"],
                          "robust_abs_gain": [0.02, 0.05, 0.03], "both_defended_abs_gain": [0.0, 0.01, 0.02],
                          "purified_quality": [0.2, 0.21, 0.6], "purified_quality_aligned": [0.9, 0.8, math.nan],
                          "n_images": 4, "adaptive_attack": [False, True, False]})
    rows = defense_rows(cells, ["dataset", "metric", "defense"]).set_index("defense")
    assert rows.loc["f", "worst_attack"] == "b" and rows.loc["f", "quality"] == 0.8
    assert rows.loc["j", "quality"] == 0.6              # no aligned value: the unaligned one
    assert rows.loc["f", "adaptive"] and not rows.loc["j", "adaptive"] and rows.loc["f", "cell_index"] == [1, 0]


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


MATRIX = """
[[metrics]]
name = "default"
[[attacks]]
name = "fgsm"
eps = ["2/255", "6/255"]
[[attacks]]
name = "pgd"
eps = "4/255"
steps = 2
[[defenses]]
name = "identity"
[[defenses]]
name = "jpeg"
quality = 40
[[defenses]]
name = "random_noise"
[[defenses]]
name = "flip"
"""


@pytest.fixture(scope="module")
def report_run(tmp_path_factory):
    from benchmark.cli import main

    tmp = tmp_path_factory.mktemp("report")
    root = write_image_folder(tmp / "images", 4)
    cfg = folder_config(tmp, "rep", root, MATRIX, mos=True, run_extra="batch_size = 3")
    assert main(["run", str(cfg), "--no-progress"]) == 0
    return tmp / "runs" / "rep"


def _decodes(uri: str) -> tuple[int, int]:
    from PIL import Image

    head, data = uri.split(",", 1)
    assert head == "data:image/jpeg;base64"
    with Image.open(io.BytesIO(base64.b64decode(data))) as im:
        im.load()
        return im.size


def test_report_page_sections_plots_and_strips(report_run):
    html = (report_run / "report.html").read_text()
    # one section, a ranking with the identity as reference, the rule and the measures document
    assert html.count("<section") == 1 and "Which defense, at what cost" in html and ">reference<" in html
    assert "Pareto front" in html and "docs/measures.md" in html
    # grouped compact table with hover formulas, best and worst marks, the raw table behind a toggle
    assert 'class="grp"' in html and "mean |s − s&#39;_D| / r" in html
    assert 'class="best' in html and 'class="worst' in html and "<details><summary>Every column" in html
    # heatmap, trade-off plot with ticks and a legend, budget curves (fgsm has two budgets)
    assert 'class="heat"' in html and "attack alone" in html
    assert html.count('text-anchor="middle">0.') >= 2 and "(colour)" in html and "(marker)" in html
    assert "2/255" in html and "6/255" in html and "Gain against budget" in html
    # every cell has a strip of three images per pick, all decodable JPEG thumbnails ≤ 256 px
    srcs = re.findall(r'<img src="(data:[^"]+)"', html)
    assert len(srcs) == 4 * 3 * 3 * 3
    assert all(max(_decodes(s)) <= 256 for s in srcs)
    assert "src=\"http" not in html and "<script src" not in html


def test_report_attaches_the_baseline_flag_once_and_renders_the_same_page(report_run, monkeypatch):
    from benchmark.reports import build_report, runinfo
    from benchmark.reports import html as html_mod

    spy = mock.Mock(wraps=runinfo.attach_baseline)
    monkeypatch.setattr(runinfo, "attach_baseline", spy)       # complete_summary (write_tables)
    monkeypatch.setattr(html_mod, "attach_baseline", spy)      # render_html
    before = (report_run / "report.html").read_text()
    build_report(report_run)
    assert spy.call_count == 1 and len(spy.call_args.args[0]) > 0
    after = (report_run / "report.html").read_text()
    drop = re.compile(r"\d{4}-\d\d-\d\d[T ][\d:.+]*")     # the manifest's time stamps
    assert drop.sub("", after) == drop.sub("", before) and ">reference<" in after


def test_shared_cell_text_of_report_and_leaderboard():
    from benchmark.reports.format import as_float, defense_flags, fmt, header, rank_text

    assert header("robust_abs_gain")["title"].endswith(" ↓") and "s'_D" in header("robust_abs_gain")["hover"]
    assert header("no_such_column") == {"title": "no_such_column", "hover": "no_such_column"}
    assert header("quality", "q")["hover"] == "q"
    assert rank_text(pd.NA, pd.NA, True) == ("reference", "") and rank_text(2, 1, False) == ("2", "1")
    assert defense_flags(True, False, False) == ["damages more than the attack", "met no adaptive attack"]
    assert defense_flags(False, False, True) == [] and defense_flags(False, True, False) == []
    assert fmt(0.123456) == "0.1235" and fmt(math.nan) == "–" and fmt(True) == "yes" and fmt(None) == "–"
    assert as_float("x") != as_float("x") and as_float("2.5") == 2.5 and math.isnan(as_float(None))


def test_strips_recompute_the_purified_image_deterministic_and_stochastic(report_run):
    html = (report_run / "report.html").read_text()
    # jpeg (deterministic) and random_noise (stochastic, batch of 3 with the stage's seed) reproduce the
    # stored PSNR(x, D(x')): no cell falls back to the difference image
    assert html.count('alt="purified ') == 4 * 3 * 3 and "|x&#39; − x| ×" not in html
    # the clean images are cached for the next rendering
    assert len(list((report_run / "cache" / "clean").glob("*.png"))) >= 3


def test_strip_falls_back_to_the_difference_when_the_defense_is_not_reproducible(report_run, monkeypatch):
    from benchmark.records import load_records
    from benchmark.reports import strips
    from benchmark.reports.runinfo import load_manifest

    records = load_records(report_run)
    cells = [{"index": 0, "dataset": records["dataset"].iloc[0], "metric": "default",
              "attack": "pgd(eps=4/255,steps=2)", "defense": "jpeg(quality=40)"}]
    import json

    planned = json.loads((report_run / "cells.json").read_text())
    cells[0]["keys"] = next(c["keys"] for c in planned if c["attack"] == cells[0]["attack"]
                            and c["defense"] == cells[0]["defense"])
    # a defense whose output here differs from the stored run (e.g. changed code): its images are refused
    monkeypatch.setattr(strips._Sources, "purified", lambda self, cell, i, order, adv: (adv.get(i) * 0.5, ""))
    out = strips.cell_strips(report_run, load_manifest(report_run), records, cells)[0]
    assert any("not the stored" in n for n in out["notes"])
    assert all(p["thumbs"][2]["alt"].startswith("difference") for p in out["picks"])


def test_report_escapes_labels_and_file_names(tmp_path):
    from conftest import tiny_images
    from PIL import Image

    from benchmark.cli import main

    root = tmp_path / "images"
    root.mkdir()
    evil = '"><img src=x onerror=alert(1)>'
    names = []
    for k, (_, arr, mos) in enumerate(tiny_images(3)):
        names.append(f"{evil}{k}.png")
        Image.fromarray(arr).save(root / names[-1])
    cfg = folder_config(tmp_path, "esc", root, """
[[metrics]]
name = "default"
label = "<script>alert('metric')</script>"
[[attacks]]
name = "fgsm"
eps = "2/255"
[[defenses]]
name = "identity"
[[defenses]]
name = "jpeg"
label = "<b onmouseover=alert(2)>jpeg</b>"
""")
    assert main(["run", str(cfg), "--no-progress"]) == 0
    run = tmp_path / "runs" / "esc"
    assert main(["leaderboard", str(run), "-o", str(tmp_path / "site")]) == 0
    for page in (run / "report.html", tmp_path / "site" / "index.html"):
        html = page.read_text()
        assert "<script>alert" not in html and "<b onmouseover" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(&#39;metric&#39;)&lt;/script&gt;" in html
        assert "&lt;b onmouseover=alert(2)&gt;jpeg&lt;/b&gt;" in html
    report = (run / "report.html").read_text()
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in report    # the image ids in the strips
