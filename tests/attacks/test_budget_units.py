"""Budget units (benchmark/attacks/base.py): every attack declares one, quantisation to 8 bits keeps the budget
in it, and `calibrate` hits L∞, PSNR and own-unit targets (perceptual distance, flow, colour filter)."""
from __future__ import annotations

import json
import math

import pytest
import torch
from attack_helpers import frozen, photos
from conftest import write_config

from benchmark.attacks.advcf import AdvCF
from benchmark.attacks.base import BUDGET_UNITS, Attack, shrink_8bit
from benchmark.attacks.madc import MADC
from benchmark.attacks.pgd import PGD
from benchmark.attacks.stadv import StAdv
from benchmark.attacks.uap import UAP
from benchmark.attacks.zhang import Zhang
from benchmark.calibrate import calibrate_one, parse_target
from benchmark.cli import main
from benchmark.errors import BenchmarkError
from benchmark.metrics.default_model import DefaultModel
from benchmark.quality import psnr
from benchmark.registry import ATTACKS


@pytest.fixture(scope="module")
def model():
    return frozen(DefaultModel())


def test_every_registered_attack_declares_a_known_unit():
    seen = set()
    for name in ATTACKS.names():
        cls = ATTACKS.get(name)
        try:
            attack = cls()
        except (TypeError, BenchmarkError):  # needs a required argument or weights: its class attribute
            unit = cls.__dict__.get("budget_unit") or next(
                (c.__dict__["budget_unit"] for c in cls.__mro__ if isinstance(c.__dict__.get("budget_unit"), str)),
                "linf")
        else:
            unit = attack.budget_unit
        assert unit in BUDGET_UNITS, (name, unit)
        seen.add(unit)
    assert {"linf", "perceptual", "flow", "colour_filter"} <= seen


def test_undeclared_units_follow_the_threat_model():
    assert PGD(norm="l2", eps=0.5).budget_unit == "l2" and PGD().budget_unit == "linf"
    assert MADC().budget_unit == "rmse" and UAP().budget_unit == "linf"  # a UAP's amplitude · eps is an L∞ bound
    assert PGD().describe_budget() == "8/255 L∞" and PGD(norm="l2", eps=0.5).describe_budget() == "0.5 L2"
    assert MADC().describe_budget() == "2/255 RMSE" and UAP(amplitude=0.2).describe_budget() == "2/255 L∞"


def test_measured_budget_in_each_image_unit():
    x = torch.zeros(2, 3, 10, 10)
    adv = x.clone()
    adv[0, 1, 2, 3] = 0.5   # one pixel, one channel
    adv[1, :, :2, :5] = 0.1  # ten pixels, all channels
    def declaring(unit):  # a subclass declaring its unit as a class attribute
        return type(f"Unit_{unit}", (Attack,), {"budget_unit": unit})()

    for unit, want in (("linf", [0.5, 0.1]), ("l2", [0.5, math.sqrt(30) * 0.1]),
                       ("rmse", [0.5 / math.sqrt(300), 0.1 / math.sqrt(10)]), ("l0_pixels", [1, 10]),
                       ("patch_area", [0.01, 0.1])):
        assert declaring(unit).measured_budget(adv, x).tolist() == pytest.approx(want, rel=1e-5), unit
    with pytest.raises(NotImplementedError):  # a parameter bound is recorded by the attack (last_budget)
        declaring("flow").measured_budget(adv, x)


def test_shrink_8bit_keeps_an_l2_ball_on_the_grid():
    g = torch.Generator().manual_seed(0)
    x = torch.round(torch.rand(3, 3, 16, 16, generator=g) * 255) / 255
    q = torch.round((x + 0.03 * torch.randn(x.shape, generator=g)).clamp(0, 1) * 255) / 255
    norms = (q - x).flatten(1).norm(dim=1)
    radius = float(norms[1])  # image 0 or 2 is over it, image 1 exactly at it
    out = shrink_8bit(q, x, radius)
    assert torch.equal(out, torch.round(out * 255) / 255)
    assert bool(((out - x).flatten(1).norm(dim=1) <= radius + 1e-6).all())
    assert torch.equal(out[1], q[1])                                  # within the ball: unchanged
    assert bool((((out - x).abs() <= (q - x).abs() + 1e-7)).all())   # no level moves away from x


def test_finish_keeps_l2_and_rmse_budgets_after_quantisation(model):
    x = photos(2, 64)
    for attack, radius in ((PGD(norm="l2", eps=0.3, steps=3), 0.3), (MADC(eps=1 / 255, steps=3), 1 / 255)):
        x_adv = attack(model, x, generator=torch.Generator().manual_seed(0), output_8bit=True)
        assert torch.equal(x_adv, torch.round(x_adv * 255) / 255)
        assert bool((attack.measured_budget(x_adv, x) <= radius + 1e-6).all()), type(attack).__name__


def test_targets_name_their_measure():
    assert parse_target("4/255") == ("linf", pytest.approx(4 / 255))
    assert parse_target("linf:0.01") == ("linf", 0.01)
    assert parse_target("40dB") == ("psnr", 40.0) and parse_target("psnr:32.5") == ("psnr", 32.5)
    assert parse_target("unit:0.05") == ("unit", 0.05)
    for bad in ("2", "abc", "unit:-1", "lpips:0.1", "0dB", "1/0"):
        with pytest.raises(BenchmarkError, match="--targets"):
            parse_target(bad)


def test_cli_refuses_a_bad_target_before_any_work(tmp_path, capsys):
    # the config does not even exist: the target is checked first
    assert main(["-q", "calibrate", str(tmp_path / "none.toml"), "--targets", "40db", "huge"]) == 2
    assert "huge" in capsys.readouterr().err


def test_cli_calibrates_an_linf_attack_to_psnr_targets(tmp_path, image_folder):
    cfg = write_config(tmp_path, f"""
[run]
image_size = 64
[[datasets]]
name = "folder"
root = "{image_folder}"
[[metrics]]
name = "default"
[[defenses]]
name = "identity"
[[attacks]]
name = "fgsm"
""")
    out = tmp_path / "cal.json"
    assert main(["-q", "calibrate", str(cfg), "--targets", "40dB", "34dB", "--images", "2", "-o", str(out)]) == 0
    results = json.loads(out.read_text())
    assert [r["measure"] for r in results] == ["psnr", "psnr"] and all(r["within_tol"] for r in results)
    assert [r["measured"] for r in results] == [pytest.approx(40, rel=0.02), pytest.approx(34, rel=0.02)]
    assert results[0]["value"] < results[1]["value"]  # a lower PSNR needs a larger eps
    assert "40dB, 34dB" in out.with_suffix(".toml").read_text()


def _calibrated(cls, params, model, x, target, measure, tol=0.03):
    r = calibrate_one(cls, params, model, x, target, seed=0, fit_dir=None, tol=tol, measure=measure)
    assert r["within_tol"], r
    return r, cls(**{**params, r["param"]: r["value"]})


@pytest.mark.slow
def test_calibrate_in_each_new_unit_and_by_psnr(model):
    x = photos(2, 64)
    # perceptual: the SSIM variant of Zhang et al., by lr (the Guardians preset parameter), to 1 − SSIM = 0.01
    r, attack = _calibrated(Zhang, {"distance": "ssim", "steps": 3, "eps": 0.5}, model, x, 0.01, "unit")
    assert r["param"] == "lr" and float(attack.measured_budget(attack(model, x, output_8bit=True), x).mean()) == pytest.approx(
        0.01, rel=0.1)
    # flow: stAdv's displacement bound, to a mean largest displacement of 0.3 px
    r, attack = _calibrated(StAdv, {}, model, x, 0.3, "unit")
    assert r["param"] == "eps" and r["measured"] == pytest.approx(0.3, rel=0.03)
    # colour filter: AdvCF's slope-ratio bound, to 2 (slopes at most 3× apart), and to a PSNR of 30 dB (the Guardians' PSNR buckets)
    r, _ = _calibrated(AdvCF, {"steps": 3}, model, x, 2.0, "unit")
    assert r["param"] == "eps" and r["value"] == pytest.approx(2.0, rel=0.05)
    r, attack = _calibrated(AdvCF, {"steps": 3}, model, x, 30.0, "psnr")
    # the stored (8-bit) images are within a dB of it
    assert float(psnr(attack(model, x, output_8bit=True), x).mean()) == pytest.approx(30.0, abs=1.0)
