"""Model-pass accounting: each stage's forward/backward passes of the metric next to the minimum (passes.json)."""
from __future__ import annotations

import json

from benchmark.config import load_config
from benchmark.runner import Runner

from conftest import fgsm_pgd_tables, folder_config

MATRIX = fgsm_pgd_tables()


def test_passes_per_stage_against_the_minimum(tmp_path, image_folder):
    cfg = load_config(folder_config(tmp_path, "passes", image_folder, MATRIX, limit=4, run_extra="batch_size = 4"))
    run_dir = cfg.run.output_dir / cfg.run.name
    run_dir.mkdir(parents=True)
    assert Runner(cfg, run_dir, progress=False).run() == 0
    out = json.loads((run_dir / "passes.json").read_text())
    by = {}
    for r in out["stages"]:
        what = {"clean": "", "attack": r["attack"], "def_clean": r["defense"], "def_adv": f"{r['attack']} {r['defense']}"}
        assert r["forward"] - r["repeat"] >= r["min_forward"] and r["min_backward"] == r["backward"]
        # (needed forward passes, backward passes, minimum forward passes)
        by[(r["stage"], what[r["stage"]])] = (r["forward"] - r["repeat"], r["backward"], r["min_forward"])
    n, fgsm, pgd = 4, "fgsm(eps=4/255)", "pgd(eps=4/255,steps=3)"
    jpeg = next(r["defense"] for r in out["stages"] if r["defense"].startswith("jpeg"))
    assert len(by) == 1 + 2 + 2 + 4
    assert by[("clean", "")] == (n, 0, n)
    # FGSM: one gradient pass at x, and the score of x' (a new image)
    assert by[("attack", fgsm)] == (2 * n, n, 2 * n)
    # PGD, 3 steps: 3 gradient passes and one score of x_3 (the attack's final objective); a re-score of x_3
    # by the runner, if any, is counted as a repeat
    pgd_row = next(r for r in out["stages"] if r["stage"] == "attack" and r["attack"] == pgd)
    assert by[("attack", pgd)] == (4 * n, 3 * n, 4 * n) and pgd_row["forward"] in (4 * n, 5 * n)
    # identity's purified images are the clean and attacked images already scored: minimum 0
    assert by[("def_clean", "identity")][2] == 0 and by[("def_clean", jpeg)] == (n, 0, n)
    for a in (fgsm, pgd):
        assert by[("def_adv", f"{a} identity")][2] == 0 and by[("def_adv", f"{a} {jpeg}")] == (n, 0, n)
    t = out["totals"]["all"]
    assert (t["min_forward"], t["backward"]) == (n * (1 + 2 + 4 + 1 + 2), 4 * n)
    assert t["forward"] == sum(r["forward"] for r in out["stages"]) >= t["min_forward"]
    assert t["forward_ratio"] == t["forward"] / t["min_forward"] and t["backward_ratio"] == 1.0
