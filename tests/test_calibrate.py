from __future__ import annotations

import json

import pytest

from benchmark.cli import main
from benchmark.config import load_config

from conftest import write_config

HEAD = """
[run]
image_size = 96
[[datasets]]
name = "folder"
root = "{root}"
[[metrics]]
name = "default"
[[defenses]]
name = "identity"
"""


def test_calibration_hits_the_budgets_and_is_reusable(tmp_path, image_folder, capsys):
    head = HEAD.format(root=image_folder)
    cfg = write_config(tmp_path, head + '[[attacks]]\nname = "madc"\nsteps = 3\n[[attacks]]\nname = "fgsm"\n')
    out = tmp_path / "calibration.json"
    assert main(["-q", "calibrate", str(cfg), "--targets", "2/255", "8/255", "--images", "3", "-o", str(out)]) == 0
    results = json.loads(out.read_text())
    assert len(results) == 4 and all(r["within_tol"] for r in results)
    for r in results:
        assert r["measured_linf"] == pytest.approx(r["target"], rel=0.02)
    madc = [r for r in results if r["attack_name"] == "madc"]
    assert madc[0]["param"] == "eps" and madc[0]["value"] < madc[1]["value"] < 8 / 255  # an RMSE radius
    # the stored TOML fragment is a valid [[attacks]] section
    reused = write_config(tmp_path, head + out.with_suffix(".toml").read_text(), name="reused.toml")
    c = load_config(reused)
    assert len(c.attacks) == 4
    assert sorted(a.params["eps"] for a in c.attacks if a.name == "madc") == pytest.approx(
        [r["value"] for r in madc], rel=1e-5)
