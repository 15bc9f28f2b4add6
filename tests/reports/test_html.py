"""The run report (benchmark/reports/html.py): one page per small run with every section, plots and the image
strips the run stored; nothing is rebuilt or recomputed to render it; labels and image ids are escaped."""
from __future__ import annotations

import base64
import io
import re
from unittest import mock

import pytest
from conftest import folder_config, write_image_folder

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
    # (identity: x', |x' − x|, zoom), all lossless PNG at native size (96 px); the zoom's crops are 32 px at native
    # resolution (1 px between), drawn 4× larger
    imgs = re.findall(r'<img src="(data:[^"]+)" alt="([^"]+)" width="(\d+)" height="(\d+)"', html)
    assert len(imgs) == 1 + 3 + 3 * 5
    sizes = [_decodes(src) for src, *_ in imgs]
    assert sizes[0] == (96, 96) and (3 * 32 + 2, 32) in sizes and (2 * 32 + 1, 32) in sizes
    for (src, alt, w, h), size in zip(imgs, sizes):
        assert (int(w), int(h)) == ((4 * size[0], 4 * size[1]) if alt.startswith("zoom") else size)
    assert "src=\"http" not in html and "<script src" not in html
    assert "torch " in html and "CUDA " in html
    # every stored D(x') reproduced the stored PSNR(x, D(x')) (jpeg, stochastic random_noise, flip): shown
    assert html.count('alt="purified difference ') == 3 and html.count('alt="purified ') == 6
    assert re.search(r"\|x&#39; − x\| ×\d+", html) and "the largest perturbation" in html
    assert "The image is the one whose clean score is the median" in html


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


def test_report_reads_stored_strips_and_builds_no_plugin_and_no_dataset(report_run, monkeypatch):
    from benchmark.config import PluginSpec
    from benchmark.reports import build_report
    from benchmark.source import ImageSource

    before = (report_run / "report.html").read_text()

    def refuse(*args, **kwargs):
        raise AssertionError("report built a plugin or read a dataset")

    monkeypatch.setattr(PluginSpec, "build", refuse)
    monkeypatch.setattr(ImageSource, "scan", refuse)
    build_report(report_run)
    after = (report_run / "report.html").read_text()
    drop = re.compile(r"\d{4}-\d\d-\d\d[T ][\d:.+]*")
    assert drop.sub("", after) == drop.sub("", before) and not (report_run / "cache" / "clean").exists()


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
