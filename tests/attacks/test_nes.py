"""NES (Ilyas et al., ICML 2018): score-only gradient estimation, L∞ budget, no backward pass."""
from __future__ import annotations

import json

import pytest
import torch
from attack_helpers import counted_model, one_thread, photos  # noqa: F401  (one_thread: a fixture)
from conftest import folder_config

from benchmark import passes
from benchmark.attacks.nes import NES
from benchmark.cli import main
from benchmark.images import quantize_8bit

pytestmark = pytest.mark.usefixtures("one_thread")

EPS = 8 / 255


@pytest.mark.parametrize("direction", ["increase", "decrease"])
def test_nes_moves_the_score_within_linf_after_8bit_without_backward(direction):
    model, x = counted_model(), photos()
    attack = NES(eps=EPS, queries=205, direction=direction)  # 4 iterations of 50 samples (the default is 10 000)
    with passes.counting() as c:
        adv = attack(model, x, generator=torch.Generator().manual_seed(0), output_8bit=True)
    assert c.backward == 0 and 0 < c.forward <= len(x) * attack.queries
    with torch.no_grad():
        gain = model(adv) - model(x)
    if direction == "increase":
        assert (gain > 1.0).all() and gain.mean() > 3.0, gain   # points on the 0..100 scale
    else:
        assert (gain < -1.0).all() and gain.mean() < -3.0, gain
    assert torch.equal(quantize_8bit(adv, x, EPS), adv)          # already what the PNG will hold
    assert float((adv - x).abs().max()) <= EPS + 1e-6
    assert torch.allclose(attack.last_scores, model(adv), atol=1e-4)


def test_nes_is_deterministic_given_the_generator_and_checks_its_parameters():
    model, x = counted_model(), photos(2)
    a, b = (NES(queries=103, samples=50, batch_size=10)(model, x, generator=torch.Generator().manual_seed(5))
            for _ in range(2))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="batch_size"):
        NES(samples=50, batch_size=20)
    with pytest.raises(ValueError, match="queries"):
        NES(queries=10, samples=50)


def test_nes_run_through_the_cli_records_zero_backward_passes(tmp_path, image_folder):
    tables = """
[[metrics]]
name = "default"
[[attacks]]
name = "nes"
eps = "4/255"
queries = 103
[[attacks]]
name = "patch_rs"
area = 0.02
queries = 40
[[defenses]]
name = "identity"
"""
    cfg = folder_config(tmp_path, "nes", image_folder, tables, limit=2)
    assert main(["-q", "run", str(cfg), "--no-progress"]) == 0
    out = json.loads((tmp_path / "runs" / "nes" / "passes.json").read_text())
    rows = [r for r in out["stages"] if r["stage"] == "attack"]
    assert {r["attack"].split("(")[0] for r in rows} == {"nes", "patch_rs"}
    for r in rows:
        assert r["backward"] == 0 and r["forward"] > 0
    assert out["totals"]["attack"]["backward"] == 0
