"""No work twice: when a defense leaves the attacked image as it is (identity, smoothing defenses that score
through the metric), the full-reference quality of (x, D(x')) is the attack stage's (x, x'), reused, and
that of (x, D(x)) = (x, x) is known in closed form; identity's images are not scored again; the quality of
(x, D(x)), which no metric changes, is measured once for all metrics. The records are the same as computing
everything."""
from __future__ import annotations

import json

import pandas as pd

import torch

from benchmark.config import load_config
from benchmark.records import load_records
from benchmark.runner import Runner

from conftest import cnniqa_weights, fgsm_pgd_tables, folder_config  # noqa: F401 (fixture)

MATRIX = fgsm_pgd_tables(defenses=("identity", "jpeg")) + '\n[[defenses]]\nname = "median_smoothing"\nn = 10\n'


def _run(tmp_path, image_folder, name, monkeypatch, reuse: bool, matrix: str = MATRIX):
    from benchmark.stages import attack, defend, purify

    calls: list[str] = []
    real = attack.pair_quality

    def counting(dist, ref, **kw):
        calls.append("call")
        return real(dist, ref, **kw)

    for stage_module in (attack, defend, purify):   # the stage functions that measure pairs
        monkeypatch.setattr(stage_module, "pair_quality", counting)
    if not reuse:  # the reference: no image is known to be unchanged, every pair computed
        monkeypatch.setattr(torch, "equal", lambda a, b: False)
    cfg = load_config(folder_config(tmp_path, name, image_folder, matrix, limit=4, run_extra="batch_size = 4"))
    run_dir = cfg.run.output_dir / cfg.run.name
    run_dir.mkdir(parents=True)
    assert Runner(cfg, run_dir, progress=False).run() == 0
    monkeypatch.undo()
    return load_records(run_dir), len(calls), run_dir


def test_unchanged_attacked_images_reuse_the_attack_stage_quality(tmp_path, image_folder, monkeypatch):
    reused, n_reused, run_dir = _run(tmp_path, image_folder, "reuse", monkeypatch, reuse=True)
    full, n_full, _ = _run(tmp_path, image_folder, "full", monkeypatch, reuse=False)
    # 2 attacks × (identity, median_smoothing): four def_adv stages of one batch each reuse the attack
    # stage's quality, and identity's def_quality uses the closed form (median_smoothing's def_clean does in
    # both runs: a defense that scores through the metric returns no image, by contract)
    assert n_full - n_reused == 4 + 1
    timing = [c for c in full.columns if c.startswith("seconds") or c == "stage_seconds"]
    pd.testing.assert_frame_equal(reused.drop(columns=timing), full.drop(columns=timing), check_exact=True)
    ident = reused[reused["defense"] == "identity"]
    assert (ident["psnr_def_adv"] == ident["psnr_attack"]).all()
    assert (ident["psnr_def_adv"] > 0).all() and (ident["psnr_def_clean"] == 80.0).all()
    assert (ident["score_def"] == ident["score"]).all() and (ident["score_adv_def"] == ident["score_adv"]).all()
    # identity's images were scored already: its stages run no forward pass
    cells = json.loads((run_dir / "cells.json").read_text())
    for c in (c for c in cells if c["defense"] == "identity"):
        for kind in ("def_clean", "def_adv"):
            rec = json.loads((run_dir / "stages" / kind / f"{c['keys'][kind]}.json").read_text())
            assert rec["model_passes"]["forward"] == 0, (kind, rec["model_passes"])


def test_defended_clean_quality_is_measured_once_for_all_metrics(tmp_path, image_folder, monkeypatch, cnniqa_weights):
    matrix = MATRIX.replace('[[metrics]]\nname = "default"\n',
                            f'[[metrics]]\nname = "default"\n[[metrics]]\nname = "cnniqa"\nweights = "{cnniqa_weights}"\n')
    assert matrix.count("[[metrics]]") == 2
    shared, n_shared, run_dir = _run(tmp_path, image_folder, "shared", monkeypatch, reuse=True, matrix=matrix)
    full, n_full, _ = _run(tmp_path, image_folder, "every", monkeypatch, reuse=False, matrix=matrix)
    # per metric: 2 attacks + 2 jpeg def_adv; jpeg's (x, D(x)) once for both metrics (its def_quality stage)
    assert n_shared == 2 * (2 + 2) + 1
    timing = [c for c in full.columns if c.startswith("seconds") or c == "stage_seconds"]
    pd.testing.assert_frame_equal(shared.drop(columns=timing), full.drop(columns=timing), check_exact=True)
    # one per metric-independent defense (identity, jpeg); median_smoothing scores through the metric: none
    assert len(list((run_dir / "stages" / "def_quality").glob("*.json"))) == 2
    jpeg = shared[shared["defense"].str.startswith("jpeg")]
    assert jpeg["metric"].nunique() == 2 and len(jpeg) == 2 * 2 * 4 and (jpeg["psnr_def_clean"] < 80).all()
