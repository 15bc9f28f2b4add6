"""`python -m benchmark leaderboard`: two runs merged, each defense's worst attack across both, ranks, flags."""
from __future__ import annotations

import pandas as pd
import pytest

from benchmark.cli import main

from conftest import folder_config

RUN_A = """
[[metrics]]
name = "default"
[[attacks]]
name = "pgd"
eps = "4/255"
steps = 3
[[attacks]]
name = "pgd"
eps = "4/255"
steps = 3
adaptive = true
[[defenses]]
name = "identity"
[[defenses]]
name = "jpeg"
quality = 50
"""

RUN_B = """
[[metrics]]
name = "default"
[[attacks]]
name = "fgsm"
eps = "4/255"
[[defenses]]
name = "jpeg"
quality = 50
[[defenses]]
name = "median"
"""


def test_leaderboard_merges_runs_and_takes_each_defense_s_worst_attack(tmp_path, image_folder, capsys):
    for name, tables in (("a", RUN_A), ("b", RUN_B)):
        assert main(["run", str(folder_config(tmp_path, name, image_folder, tables, mos=True)), "--no-progress"]) == 0
    runs = tmp_path / "runs"
    site = tmp_path / "site"
    assert main(["leaderboard", str(runs / "a"), str(runs / "b"), "-o", str(site)]) == 0
    board = pd.read_csv(site / "leaderboard.csv").set_index("defense")
    assert sorted(board.index) == ["identity", "jpeg(quality=50)", "median"]
    cells = pd.concat([pd.read_csv(runs / r / "summary.csv") for r in ("a", "b")])
    jpeg = cells[cells["defense"] == "jpeg(quality=50)"]
    assert len(jpeg) == 3 and board.loc["jpeg(quality=50)", "n_attacks"] == 3
    worst = jpeg.loc[jpeg["robust_abs_gain"].idxmax()]
    assert board.loc["jpeg(quality=50)", "worst_robust_gain"] == pytest.approx(worst["robust_abs_gain"])
    assert board.loc["jpeg(quality=50)", "worst_attack"] == worst["attack"]
    assert board.loc["jpeg(quality=50)", "purified_quality"] == pytest.approx(worst["purified_quality"])
    assert board.loc["jpeg(quality=50)", "runs"] == "a, b"
    # ranked by worst robust gain, lowest first; the undefended model is beaten by JPEG
    assert list(board.sort_values("rank")["worst_robust_gain"]) == sorted(board["worst_robust_gain"])
    assert board.loc["jpeg(quality=50)", "rank"] < board.loc["identity", "rank"]
    assert bool(board.loc["jpeg(quality=50)", "adaptive"]) and not bool(board.loc["median", "adaptive"])
    html = (site / "index.html").read_text()
    assert "Met by no adaptive attack" in html and "median on default" in html.split("Met by no adaptive attack")[1][:200]
    assert html.count("<tr>") >= 3 + 2 and "<svg" in html and "src=\"http" not in html
    assert (site / "leaderboard.md").read_text().startswith("|")


def test_leaderboard_names_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["leaderboard", str(tmp_path), "-o", str(tmp_path / "site")]) == 2
    assert f"{tmp_path} is not a run directory" in capsys.readouterr().err
