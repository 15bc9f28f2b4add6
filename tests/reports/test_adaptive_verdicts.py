"""Verdicts on real runs of the shipped default model: adaptive attacks by default break the flip, a blur's score
shift is bias and not gain, and a defense keeps its colour from a report to a two-run leaderboard."""
from __future__ import annotations

import re

import pandas as pd
import pytest
from conftest import folder_config, write_image_folder

from benchmark.cli import main
from benchmark.reports.plots import BASELINE_COLOUR, label_colour

MAIN = """
[[metrics]]
name = "default"
[[attacks]]
name = "pgd"
eps = "4/255"
steps = 5
[[defenses]]
name = "identity"
[[defenses]]
name = "flip"
[[defenses]]
name = "jpeg"
[[defenses]]
name = "gaussian_blur"
sigma = 2.0
"""

OTHER = """
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
"""
PGD, ADA = "pgd(eps=4/255,steps=5)", "pgd(eps=4/255,steps=5)+adaptive"
BLUR = "gaussian_blur(sigma=2)"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verdicts")
    root = write_image_folder(tmp / "images", 6)
    for name, tables in (("main", MAIN), ("other", OTHER)):
        assert main(["run", str(folder_config(tmp, name, root, tables, mos=True)), "--no-progress"]) == 0
    site = tmp / "site"
    assert main(["leaderboard", str(tmp / "runs" / "main"), str(tmp / "runs" / "other"), "-o", str(site)]) == 0
    return tmp / "runs" / "main", site


def test_adaptive_by_default_and_the_flip_is_broken_outright(runs):
    run, site = runs
    s = pd.read_csv(run / "summary.csv").set_index(["attack", "defense"])
    # every non-baseline defense met the transfer and the adaptive attack; identity only the transfer one
    assert {a for a, d in s.index if d == "identity"} == {PGD}
    assert all((a, d) in s.index for a in (PGD, ADA) for d in ("flip", "jpeg", BLUR))
    assert bool(s.loc[(ADA, "flip"), "adaptive_attack"]) and s.loc[(ADA, "flip"), "eot_samples"] == 1
    g_id = s.loc[(PGD, "identity"), "defended_gain"]
    assert g_id > 0.05
    # the flip is differentiable: an attack through it keeps (almost) all of identity's gain
    assert s.loc[(ADA, "flip"), "defended_gain"] >= 0.9 * g_id
    assert s.loc[(PGD, "flip"), "defended_gain"] < 0.5 * g_id     # while the transfer attack looked defeated
    # ... so the flip is not ranked first, in the run's summary nor in the leaderboard
    assert s.loc[(ADA, "flip"), "rank"] != 1 and s.loc[(ADA, "flip"), "rank_high"] >= s.loc[(ADA, "flip"), "rank"]
    board = pd.read_csv(site / "leaderboard.csv").set_index("defense")
    assert board.loc["flip", "rank"] != 1 and board.loc["flip", "worst_attack"] == ADA
    assert board.loc["flip", "removed"] <= 0.1


def test_a_blur_s_score_shift_is_bias_not_gain(runs):
    run, _ = runs
    s = pd.read_csv(run / "summary.csv").set_index(["attack", "defense"])
    g_id = s.loc[(PGD, "identity"), "defended_gain"]
    blur = s.loc[(PGD, BLUR)]
    # the transfer perturbation does not survive the blur: the attacked and clean images score alike through it
    assert abs(blur["defended_gain"]) < 0.2 * g_id
    # the blur moves every clean score by itself: that is its bias, which the published robust gain counts as gain
    assert blur["defense_bias"] > 3 * abs(blur["defended_gain"])
    assert blur["robust_abs_gain"] > 3 * abs(blur["defended_gain"])
    assert blur["robust_abs_gain"] == pytest.approx(blur["defense_bias"], abs=0.5 * blur["defense_bias"])


def _chips(html: str) -> dict[str, str]:
    return {d: c for c, d in re.findall(r'class="chip" style="background:(#[0-9A-Fa-f]{6})" data-defense="([^"]+)"',
                                        html)}


def test_a_defense_has_the_same_colour_in_a_report_and_a_two_run_leaderboard(runs):
    run, site = runs
    report, board = _chips((run / "report.html").read_text()), _chips((site / "index.html").read_text())
    for d in ("jpeg", "flip", BLUR):
        assert report[d] == board[d] == label_colour(d)
    assert report["identity"] == board["identity"] == BASELINE_COLOUR
    # from the label alone: the same whatever else the page shows, and not the baseline's grey
    assert label_colour("jpeg") == label_colour("jpeg") and BASELINE_COLOUR not in {report["jpeg"], report["flip"]}
