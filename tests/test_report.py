"""The run report: ranking rule, column schema, plots, image strips and a rendered page."""
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

from benchmark.reports.ranking import defense_rows, rank_defenses
from benchmark.schema import column


def _rows(**defenses) -> pd.DataFrame:
    """Defense rows of one (dataset, metric, budget) from ``name=(worst g_D, quality, fidelity)``."""
    return pd.DataFrame([{"dataset": "d", "metric": "m", "budget_label": "4/255 L∞", "defense": k, "worst_gain": g,
                          "quality": q, "fidelity_m": f, "fidelity_s": f, "bias": 0.0, "adaptive": True,
                          "baseline": k == "identity"} for k, (g, q, f) in defenses.items()])


def test_a_defense_that_removes_no_gain_cannot_win_on_image_quality():
    # flip against an adaptive attack: the same gain as without defense, the best quality; jpeg removes 60 %
    t = rank_defenses(_rows(identity=(0.15, 0.74, 0.94), flip=(0.155, 0.74, 0.83), jpeg=(0.06, 0.60, 0.54)))
    assert list(t["defense"]) == ["identity", "jpeg", "flip"]
    removed = dict(zip(t["defense"], t["removed"]))
    assert removed["jpeg"] == pytest.approx(1 - 0.06 / 0.15) and removed["flip"] == pytest.approx(1 - 0.155 / 0.15)
    assert "makes the metric easier to attack" in t.loc[t["defense"] == "flip", "notes"].item()


def test_wrecking_the_image_cannot_win_on_gain():
    # a grey square removes all gain, at quality ~0.06 and no ranking of images left (fidelity NaN counts 0)
    t = rank_defenses(_rows(identity=(0.15, 0.74, 0.94), grey=(0.0, 0.06, math.nan), jpeg=(0.05, 0.60, 0.7)))
    assert t.loc[t["defense"] == "jpeg", "rank"].item() == 1 and t.loc[t["defense"] == "grey", "rank"].item() == 2


def test_baselines_are_the_reference_row_and_never_ranked():
    t = rank_defenses(_rows(jpeg=(0.05, 0.6, 0.7), identity=(0.1, 1.0, 1.0)))
    ident = t[t["defense"] == "identity"].iloc[0]
    assert t.iloc[0]["defense"] == "identity" and pd.isna(ident["rank"]) and ident["reference_gain"] == 0.1
    assert t.loc[t["defense"] == "jpeg", "rank"].item() == 1


def test_no_defense_is_ranked_above_one_that_dominates_it():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(2, 9))
        vals = rng.integers(0, 4, size=(n, 3)).astype(float) / 4   # ties on purpose
        t = rank_defenses(_rows(identity=(1.0, 1.0, 1.0), **{f"d{i}": tuple(v) for i, v in enumerate(vals)}))
        t = t[~t["baseline"]]
        crit = np.column_stack([-t["worst_gain"], t["quality"], t["fidelity"]]).astype(float)
        rank = t["rank"].to_numpy(float)
        for a in range(n):
            for b in range(n):
                if np.all(crit[b] >= crit[a]) and np.any(crit[b] > crit[a]):
                    assert rank[b] < rank[a]


def test_fidelity_ranked_is_srocc_with_the_undefended_scores_and_needs_no_mos():
    rows = _rows(identity=(0.1, 1.0, 1.0), a=(0.05, 0.5, 0.9), b=(0.05, 0.5, 0.9))
    rows.loc[rows["defense"] == "a", "fidelity_m"] = 0.1   # MOS agreement, noisy on few images: shown, not ranked
    rows["fidelity_s"] = [1.0, 0.9, 0.4]
    t = rank_defenses(rows).set_index("defense")
    assert t.loc["a", "fidelity"] == 0.9 and t.loc["b", "fidelity"] == 0.4 and t.loc["a", "rank"] == 1


def test_defense_rows_take_the_worst_attack_by_gain_through_the_defense_per_budget():
    cells = pd.DataFrame({"dataset": "d", "metric": "m", "defense": ["f", "f", "j", "f"], "attack": ["a", "b", "a", "c"],
                          "budget": [4 / 255] * 3 + [8 / 255], "threat_model": "linf",
                          "defended_gain": [0.02, 0.05, 0.03, 0.2], "robust_abs_gain": [0.09, 0.05, 0.03, 0.2],
                          "purified_quality": [0.2, 0.21, 0.6, 0.1], "purified_quality_aligned": [0.9, 0.8, math.nan, 0.7],
                          "n_images": 4, "adaptive_attack": [False, True, False, True]})
    rows = defense_rows(cells, ["dataset", "metric", "defense"]).set_index(["budget_label", "defense"])
    f4 = rows.loc[("4/255 L∞", "f")]
    # the worst case is b (largest g_D), not a (largest robust gain, which adds the defense's own shift)
    assert f4["worst_attack"] == "b" and f4["quality"] == 0.8 and f4["cell_index"] == [1, 0]
    assert f4["worst_robust_gain"] == 0.09                 # the published measure, kept under its name
    assert rows.loc[("4/255 L∞", "j"), "quality"] == 0.6   # no aligned value: the unaligned one
    assert rows.loc[("8/255 L∞", "f"), "worst_attack"] == "c"   # another budget: another row
    assert f4["adaptive"] and not rows.loc[("4/255 L∞", "j"), "adaptive"]


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
adaptive = false
[[attacks]]
name = "pgd"
eps = "4/255"
steps = 2
adaptive = false
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
    assert head == "data:image/png;base64"
    with Image.open(io.BytesIO(base64.b64decode(data))) as im:
        im.load()
        return im.size


def test_report_page_sections_plots_and_strips(report_run):
    html = (report_run / "report.html").read_text()
    # one section, a ranking per budget with the identity as reference, intervals, the rule and the document
    assert html.count("<section") == 1 and "Which defense holds against an attacker who knows it" in html
    assert ">reference<" in html and html.count('-rank') >= 3 and "rank interval" in html
    assert "Indicative ranking: 4 images" in html and "docs/measures.md" in html
    # no link leaves the page: in-page anchors only, each naming an element of the page
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs and all(h.startswith("#") for h in hrefs)
    ids = set(re.findall(r'id="([^"]+)"', html))
    assert all(h[1:] in ids for h in hrefs)
    # grouped compact table with hover formulas, best and worst marks, the raw table behind a toggle
    assert 'class="grp"' in html and "mean d · sign · (s&#39;_D − s_D) / r" in html
    assert 'class="best' in html and 'class="worst' in html and "<details><summary>Every column" in html
    # heatmap, trade-off plot with ticks and a legend, budget curves (fgsm has two budgets)
    assert 'class="heat"' in html and "attack alone" in html
    assert html.count('text-anchor="middle">0.') >= 2 and "(colour)" in html
    assert "2/255" in html and "6/255" in html and "Gain against budget" in html
    # strips of the first budget: one clean image, then per defense x', D(x'), |x' − x|, |D(x') − x| and the zoom
    # (identity: x', |x' − x|, zoom), all lossless PNG at native size (96 px; the zoom 4 × 32 px per image)
    srcs = re.findall(r'<img src="(data:[^"]+)"', html)
    assert len(srcs) == 1 + 3 + 3 * 5
    sizes = [_decodes(s) for s in srcs]
    assert sizes[0] == (96, 96) and (4 * 32 * 3 + 2 * 2, 4 * 32) in sizes and (4 * 32 * 2 + 2, 4 * 32) in sizes
    assert "src=\"http" not in html and "<script src" not in html
    assert "torch " in html and "CUDA " in html


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


def test_strips_recompute_the_purified_image_deterministic_and_stochastic(report_run):
    html = (report_run / "report.html").read_text()
    # jpeg (deterministic) and random_noise (stochastic, batch of 3 with the stage's seed) reproduce the
    # stored PSNR(x, D(x')): every defense's strip shows D(x')
    assert html.count('alt="purified difference ') == 3 and html.count('alt="purified ') == 6
    assert "not the stored" not in html
    # the difference panels state their amplification, the zoom its region
    assert re.search(r"\|x&#39; − x\| ×\d+", html) and "the largest perturbation" in html
    # the clean images are cached for the next rendering
    assert len(list((report_run / "cache" / "clean").glob("*.png"))) >= 1


def test_strip_says_why_when_the_defense_is_not_reproducible(report_run, monkeypatch):
    import json

    from benchmark.records import load_records
    from benchmark.reports import strips
    from benchmark.reports.runinfo import load_manifest

    records = load_records(report_run)
    cell = {"index": 0, "dataset": records["dataset"].iloc[0], "metric": "default",
            "attack": "pgd(eps=4/255,steps=2)", "defense": "jpeg(quality=40)", "anchor": "s", "baseline": False}
    planned = json.loads((report_run / "cells.json").read_text())
    cell["keys"] = next(c["keys"] for c in planned if c["attack"] == cell["attack"] and c["defense"] == cell["defense"])
    image = str(records["image_id"].iloc[0])
    # a defense whose output here differs from the stored run (e.g. changed code): its image is refused
    monkeypatch.setattr(strips._Sources, "purified", lambda self, cell, i, order, adv: (adv.get(i) * 0.5, ""))
    out = strips.section_strips(report_run, load_manifest(report_run), records, [cell], image)
    strip = out["strips"][0]
    assert "not the stored" in strip["why"] and out["clean"] is not None
    assert [p["alt"].split()[0] for p in strip["panels"]] == ["attacked", "difference", "zoom"]


def test_largest_region_finds_the_perturbation_and_difference_is_amplified():
    import torch

    from benchmark.reports.strips import amplification, difference, largest_region, zoomed

    d = torch.zeros(3, 64, 80)
    d[:, 40:50, 10:20] = 4 / 255
    top, left, side = largest_region(d, 16)
    assert side == 16 and 34 <= top <= 40 and 4 <= left <= 10
    assert amplification(d) == round(0.5 / (4 / 255)) and difference(d, torch.zeros_like(d), 32).shape == (1, 64, 80)
    assert zoomed(torch.rand(3, 64, 80), (0, 0, 16)).shape == (3, 64, 64)


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
adaptive = false
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
