"""The defense ranking (benchmark/reports/ranking.py): worst case by the gain through the defense, the ranking
rule against wrecking the image or removing no gain, baselines as reference rows, Pareto dominance."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchmark.reports.ranking import defense_rows, rank_defenses


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
