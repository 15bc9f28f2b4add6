"""Adaptive and universal attacks inside the matrix: per-defense attack stages, EOT recorded, UAP artifact."""
from __future__ import annotations

import json
import logging

import pandas as pd
import pytest
import torch

from benchmark.attacks import uap as uap_mod
from benchmark.cli import main
from benchmark.metrics.default_model import DefaultModel

from conftest import folder_config


def test_adaptive_and_universal_attacks_in_a_run(tmp_path, image_folder):
    cfg = folder_config(tmp_path, "adaptive", image_folder, """
[[metrics]]
name = "default"
[[attacks]]
name = "pgd"
eps = "4/255"
steps = 5
adaptive = false
[[attacks]]
name = "pgd"
eps = "4/255"
steps = 5
adaptive = true
eot_samples = 4
[[attacks]]
name = "uap"
eps = "8/255"
amplitude = [0.5, 1.0]
size = 64
epochs = 1
batch_size = 16
[[defenses]]
name = "identity"
[[defenses]]
name = "random_crop"
scale = 0.8
[[defenses]]
name = "jpeg"
""", limit=4)

    assert main(["run", str(cfg), "--no-progress"]) == 0
    run = tmp_path / "runs" / "adaptive"
    cells = json.loads((run / "cells.json").read_text())
    adaptive_keys = {c["keys"]["attack"] for c in cells if "adaptive" in c["attack"]}
    plain_keys = {c["keys"]["attack"] for c in cells if c["attack"] == "pgd(eps=4/255,steps=5)"}
    assert len(adaptive_keys) == 3 and len(plain_keys) == 1   # per defense vs shared by all defenses
    s = pd.read_csv(run / "summary.csv").set_index(["attack", "defense"])
    ad, pl = "pgd(eps=4/255,steps=5)+adaptive(EOT4)", "pgd(eps=4/255,steps=5)"
    assert s.loc[(ad, "random_crop(scale=0.8)"), "eot_samples"] == 4   # stochastic: K draws per gradient
    assert s.loc[(ad, "jpeg"), "eot_samples"] == 1                      # deterministic: one draw, recorded
    # a fitted attack (UAP) is fitted on the bare metric: no adaptive twin was planned for it
    assert not any("uap" in a and "adaptive" in a for a, _ in s.index)
    assert bool(s.loc[(ad, "jpeg"), "adaptive_attack"]) and not bool(s.loc[(pl, "jpeg"), "adaptive_attack"])
    # BPDA through JPEG gets more through the defense than the non-adaptive attack
    assert s.loc[(ad, "jpeg"), "robust_signed_gain"] > s.loc[(pl, "jpeg"), "robust_signed_gain"]
    # one UAP training serves both amplitudes, stored with provenance
    arts = sorted((run / "artifacts").glob("uap-*.pt"))
    assert len(arts) == 1
    prov = json.loads(arts[0].with_suffix(".json").read_text())
    assert prov["metric"] == "default" and prov["n_train"] == 190
    uap = s.xs("identity", level="defense")
    assert uap.filter(like="uap(eps=8/255,amplitude=1,", axis=0)["linf_attack"].iloc[0] <= 8 / 255 + 1e-6
    assert uap.filter(like="uap(eps=8/255,amplitude=0.5,", axis=0)["linf_attack"].iloc[0] <= 4 / 255 + 1e-6
    # the report no longer flags defenses that met an adaptive attack
    html = (run / "report.html").read_text()
    assert "Evaluated only against non-adaptive attacks" not in html


def test_uap_training_resumes_from_its_checkpoint(tmp_path, monkeypatch, caplog):
    model = DefaultModel().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    art = tmp_path / "uap.pt"
    calls = {"n": 0}
    original = uap_mod.save_checkpoint

    def interrupt_second_save(path, obj):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        original(path, obj)

    monkeypatch.setattr(uap_mod, "save_checkpoint", interrupt_second_save)
    attack = uap_mod.UAP(size=64, epochs=2, batch_size=32)
    with pytest.raises(KeyboardInterrupt):
        attack.fit(model, generator=torch.Generator().manual_seed(0), artifact=art, provenance={}, progress=False)
    assert art.with_suffix(".partial.pt").is_file() and not art.is_file()
    monkeypatch.setattr(uap_mod, "save_checkpoint", original)
    with caplog.at_level(logging.INFO, logger="benchmark.attacks.uap"):
        uap_mod.UAP(size=64, epochs=2, batch_size=32).fit(model, generator=torch.Generator().manual_seed(0),
                                                          artifact=art, provenance={}, progress=False)
    assert "resuming UAP training at epoch 1" in caplog.text
    assert art.is_file() and not art.with_suffix(".partial.pt").exists()
