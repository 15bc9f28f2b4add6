"""Verdicts on synthetic records (docs/measures.md, "Verdicts"): gain removed against the baseline's strongest attack
at the same budget, the vectorised bootstrap against a plain loop, rank intervals and separability."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmark.reports.ranking import defense_rows, not_separable_groups, rank_defenses
from benchmark.reports.verdicts import cell_statistics, interval, resample_index


def _cells(**gains) -> pd.DataFrame:
    """Summary-like cells ``defense=[(attack, budget, g_D), ...]`` on one (dataset, metric)."""
    rows = []
    for d, items in gains.items():
        for a, b, g in items:
            rows.append({"dataset": "ds", "metric": "m", "attack": a, "defense": d, "budget": b, "threat_model": "linf",
                         "defended_gain": g, "robust_abs_gain": g, "purified_quality": 0.6, "srocc_s_sdef": 0.9,
                         "n_images": 40, "adaptive_attack": a.endswith("+adaptive"),
                         "defense_baseline": d == "identity"})
    return pd.DataFrame(rows)


def test_gain_removed_is_against_the_baseline_s_strongest_attack_at_the_same_budget():
    cells = _cells(identity=[("fgsm", 4 / 255, 0.10), ("pgd", 4 / 255, 0.30), ("pgd8", 8 / 255, 0.50)],
                   jpeg=[("fgsm", 4 / 255, 0.02), ("pgd", 4 / 255, 0.05), ("pgd+adaptive", 4 / 255, 0.15),
                         ("pgd8", 8 / 255, 0.40)])
    t = rank_defenses(defense_rows(cells)).set_index(["budget_label", "defense"])
    four = t.loc[("4/255 L∞", "jpeg")]
    # the worst case is the adaptive attack; the reference is pgd on identity (0.30), not the adaptive attack's own
    # gain on the bare metric nor fgsm
    assert four["worst_attack"] == "pgd+adaptive" and four["reference_gain"] == pytest.approx(0.30)
    assert four["removed"] == pytest.approx(1 - 0.15 / 0.30)
    assert t.loc[("8/255 L∞", "jpeg"), "removed"] == pytest.approx(1 - 0.40 / 0.50)   # its own budget's reference
    worse = _cells(identity=[("pgd", 4 / 255, 0.2)], shaky=[("pgd+adaptive", 4 / 255, 0.3)])
    row = rank_defenses(defense_rows(worse)).set_index("defense").loc["shaky"]
    assert row["removed"] == pytest.approx(-0.5) and "makes the metric easier to attack" in row["notes"]


def _records(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """Per-image records of identity, two identical defenses (a, b) and a strong one (c) under one attack."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(20, 80, n)
    mos = s + rng.normal(0, 5, n)
    rows = []
    shift = rng.normal(8, 3, n)
    for d, sd, sad in (("identity", s, s + shift),
                       ("a", s - 2, s - 2 + 0.5 * shift + rng.normal(0, 2, n)),
                       ("c", s - 1, s - 1 + 0.05 * shift)):
        for i in range(n):
            rows.append({"dataset": "ds", "metric": "m", "attack": "pgd", "defense": d, "image_id": f"img{i:03d}",
                         "score": s[i], "score_adv": s[i] + shift[i], "score_def": sd[i], "score_adv_def": sad[i],
                         "mos": mos[i], "range_lo": 0.0, "range_hi": 100.0, "lower_better": False,
                         "psnr_def_adv": 30 + (d == "c") * 2.0, "ssim_def_adv": 0.9})
    r = pd.DataFrame(rows)
    return pd.concat([r, r[r["defense"] == "a"].assign(defense="b")], ignore_index=True)


def _ranked(records: pd.DataFrame) -> pd.DataFrame:
    cells = records.groupby(["dataset", "metric", "attack", "defense"], sort=False).size().reset_index()[
        ["dataset", "metric", "attack", "defense"]]
    cells = cells.assign(n_images=40, budget=4 / 255, threat_model="linf", adaptive_attack=True,
                         defense_baseline=cells["defense"] == "identity", robust_abs_gain=0.0)
    stats_ = {i: cell_statistics(records[(records["defense"] == r.defense)]) for i, r in zip(cells.index,
                                                                                            cells.itertuples())}
    return rank_defenses(defense_rows(cells, stats=stats_))


def test_the_vectorised_bootstrap_is_the_plain_loop():
    rec = _records()
    g = rec[rec["defense"] == "a"].sort_values("image_id")
    st = cell_statistics(g, n_boot=50)
    idx = resample_index(list(g["image_id"]), 50)
    gain = ((g["score_adv_def"] - g["score_def"]) / 100).to_numpy()
    for b in (0, 17, 49):
        assert st["gain_reps"][b] == pytest.approx(gain[idx[b]].mean())
        rho = stats.spearmanr(g["score"].to_numpy()[idx[b]], g["score_def"].to_numpy()[idx[b]]).statistic
        assert st["fidelity_s_reps"][b] == pytest.approx(rho)
        rho_m = stats.spearmanr(g["mos"].to_numpy()[idx[b]], g["score_def"].to_numpy()[idx[b]]).statistic
        assert st["fidelity_m_reps"][b] == pytest.approx(rho_m)
    assert float(st["gain"]) == pytest.approx(gain.mean())
    assert float(st["bias"]) == pytest.approx(0.02)
    # the resamples depend on the image ids only: another cell on the same images draws the same ones
    assert (resample_index(list(g["image_id"])[::-1], 50) == idx).all()


def test_rank_intervals_contain_the_rank_and_identical_defenses_are_not_separable():
    t = _ranked(_records()).set_index("defense")
    ranked = t[t["rank"].notna()]
    assert ((ranked["rank_low"] <= ranked["rank"]) & (ranked["rank"] <= ranked["rank_high"])).all()
    # a and b are the same defense: their intervals overlap, and each names the other
    assert ranked.loc["a", "rank_low"] <= ranked.loc["b", "rank_high"]
    assert ranked.loc["b", "rank_low"] <= ranked.loc["a", "rank_high"]
    assert "b" in ranked.loc["a", "separable"] and "a" in ranked.loc["b", "separable"]
    assert [sorted(g) for g in not_separable_groups(t.reset_index())] == [["a", "b"]]
    # c removes nearly all the gain: first in every resample, separable from both
    assert ranked.loc["c", "rank"] == 1 and ranked.loc["c", "rank_high"] == 1 and ranked.loc["c", "separable"] == ""
    lo, hi = ranked.loc["c", "removed_lo"], ranked.loc["c", "removed_hi"]
    assert 0.85 < lo <= ranked.loc["c", "removed"] <= hi <= 1.0


def test_interval_needs_finite_replicates():
    assert all(math.isnan(v) for v in interval(np.array([math.nan] * 10)))
    assert all(math.isnan(v) for v in interval(np.array([1.0, 2.0] + [math.nan] * 8)))  # most resamples undefined
    lo, hi = interval(np.arange(1001, dtype=float))
    assert lo == pytest.approx(25.0) and hi == pytest.approx(975.0)


def test_cells_resampled_together_are_bit_for_bit_the_cell_alone(monkeypatch):
    from benchmark.reports import verdicts

    rec = _records()
    together = verdicts.frame_statistics(rec, n_boot=50)
    monkeypatch.setattr(verdicts, "GATHER", 1)   # one cell per chunk
    chunked = verdicts.frame_statistics(rec, n_boot=50)
    assert list(together) == [("ds", "m", "pgd", d) for d in ("identity", "a", "c", "b")]
    for cell, st in together.items():
        alone = cell_statistics(rec[rec["defense"] == cell[3]], n_boot=50)
        for k in st:
            assert np.array_equal(st[k], alone[k], equal_nan=True) and np.array_equal(st[k], chunked[cell][k],
                                                                                    equal_nan=True), (cell, k)
    # a and b are the same defense on the same images: one fidelity, shared
    assert together[("ds", "m", "pgd", "a")]["fidelity_s_reps"] is together[("ds", "m", "pgd", "b")]["fidelity_s_reps"]
