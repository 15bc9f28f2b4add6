"""No work twice: when a defense leaves the attacked image as it is (identity, smoothing defenses that score
through the metric), the full-reference quality of (x, D(x')) is the attack stage's (x, x'), reused, not
recomputed, and the records are the same as computing it."""
from __future__ import annotations

import pandas as pd

import benchmark.runner as runner_mod
from benchmark.config import load_config
from benchmark.records import load_records
from benchmark.runner import Runner

from conftest import fgsm_pgd_tables, folder_config

MATRIX = fgsm_pgd_tables(defenses=("identity", "jpeg")) + '\n[[defenses]]\nname = "median_smoothing"\nn = 10\n'


def _run(tmp_path, image_folder, name, monkeypatch, reuse: bool):
    calls: list[str] = []
    real = runner_mod.pair_quality

    def counting(dist, ref, **kw):
        calls.append("call")
        return real(dist, ref, **kw)

    monkeypatch.setattr(runner_mod, "pair_quality", counting)
    if not reuse:  # the reference: every pair computed
        monkeypatch.setattr(runner_mod.torch, "equal", lambda a, b: False)
    cfg = load_config(folder_config(tmp_path, name, image_folder, MATRIX, limit=4, run_extra="batch_size = 4"))
    run_dir = cfg.run.output_dir / cfg.run.name
    run_dir.mkdir(parents=True)
    assert Runner(cfg, run_dir, progress=False).run() == 0
    monkeypatch.undo()
    return load_records(run_dir), len(calls)


def test_unchanged_attacked_images_reuse_the_attack_stage_quality(tmp_path, image_folder, monkeypatch):
    reused, n_reused = _run(tmp_path, image_folder, "reuse", monkeypatch, reuse=True)
    full, n_full = _run(tmp_path, image_folder, "full", monkeypatch, reuse=False)
    # 2 attacks × (identity, median_smoothing): four def_adv stages of one batch each skip their computation
    assert n_full - n_reused == 4
    timing = [c for c in full.columns if c.startswith("seconds") or c == "stage_seconds"]
    pd.testing.assert_frame_equal(reused.drop(columns=timing), full.drop(columns=timing), check_exact=True)
    ident = reused[reused["defense"] == "identity"]
    assert (ident["psnr_def_adv"] == ident["psnr_attack"]).all()
    assert (ident["psnr_def_adv"] > 0).all()
