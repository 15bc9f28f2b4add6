"""Declared capabilities and purified quality in the defense's output geometry (docs/measures.md#defense).

A defense that moves pixels (flip, crop, rotation) declares ``changes_geometry`` and ``align``; the
runner then also compares ``D(x')`` and ``D(x)`` with ``A(x)``, the clean image in the same geometry
(``*_aligned`` columns), and keeps the published values against ``x``. A gradient attack on a metric that
declares ``differentiable = False`` is skipped with its reason, not failed.
"""
from __future__ import annotations

import json

import kornia
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import benchmark.runner as runner_module
from benchmark.attacks.base import Attack
from benchmark.cli import main
from benchmark.defenses.base import Defense
from benchmark.metrics.default_model import DefaultModel
from benchmark.quality import pair_quality
from benchmark.registry import ATTACKS, DEFENSES, METRICS, load_builtin_plugins

from conftest import tiny_images, write_config

GEOMETRIC = {"flip", "random_crop", "random_rotate"}


@METRICS.register("nondiff_default_for_test")
class NonDifferentiableDefault(DefaultModel):
    """The default model declaring itself non-differentiable (as a metric without gradients would)."""

    differentiable = False


@ATTACKS.register("noop_for_test")
class NoAttack(Attack):
    """Returns the clean image: the unattacked pipeline, D(x') = D(x)."""

    needs_gradient = False
    eps = 0.0

    def perturb(self, model, x, *, generator=None):
        return x.detach().clone()


def photos(n: int = 3, size: int = 64) -> torch.Tensor:
    return torch.stack([torch.from_numpy(a).permute(2, 0, 1).float() / 255 for _, a, _ in tiny_images(n, size)])


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- declarations --------------------------------------------------------------------------------
def test_capabilities_are_declared_on_the_base_classes_with_their_defaults():
    load_builtin_plugins()
    assert (Defense.stochastic, Defense.differentiable, Defense.baseline, Defense.wraps_metric,
            Defense.changes_geometry) == (False, True, False, False, False)
    assert (Attack.needs_gradient, Attack.needs_fit) == (True, False) and not hasattr(Attack, "adaptive")
    assert not hasattr(runner_module, "StageFailed")
    assert [n for n in DEFENSES.names() if DEFENSES.get(n).baseline] == ["identity"]
    assert {n for n in DEFENSES.names() if DEFENSES.get(n).changes_geometry} == GEOMETRIC
    assert {"median_smoothing", "denoised_smoothing", "cohen_smoothing"} <= {
        n for n in DEFENSES.names() if DEFENSES.get(n).wraps_metric}
    assert ATTACKS.get("square").needs_gradient is False and ATTACKS.get("pgd").needs_gradient is True
    assert ATTACKS.get("uap").needs_fit is True and ATTACKS.get("fgsm").needs_fit is False
    x = photos(2)
    assert DEFENSES.get("resize")().align(x) is x   # same size, pixels in place: nothing to align


# -- align draws what forward drew ----------------------------------------------------------------
@pytest.mark.parametrize("name,params", [("flip", {"p": 0.5}), ("flip", {"axis": "vertical"}),
                                         ("random_crop", {}), ("random_crop", {"scale": 0.5}),
                                         ("random_rotate", {"max_degrees": 30})])
def test_align_reproduces_the_draws_of_forward(name, params):
    d = DEFENSES.get(name)(**params)
    x = photos(4)
    x_adv = (x + 0.02 * torch.randn(x.shape, generator=gen(1))).clamp(0, 1)
    for seed in (0, 1, 2):
        # same generator state -> the same flip/crop/angle: A(x) is D applied to x with D(x')'s draws
        assert torch.equal(d.align(x, generator=gen(seed)), d(x, generator=gen(seed)))
        out, ref = d(x_adv, generator=gen(seed)), d.align(x, generator=gen(seed))
        aligned, unaligned = pair_quality(out, ref)["psnr"], pair_quality(out, x)["psnr"]
        attack_psnr = pair_quality(x_adv, x)["psnr"]
        moved = (ref - x).flatten(1).abs().amax(1) > 0   # flip with p < 1 leaves some images in place
        assert moved.any()
        # against A(x) only the perturbation's trace is left (≥ the attack's PSNR), against x the geometry
        assert (aligned >= attack_psnr - 0.5).all(), (seed, aligned, attack_psnr)
        assert (aligned[moved] > unaligned[moved]).all() and torch.equal(aligned[~moved], unaligned[~moved])
        assert (aligned[moved] - unaligned[moved]).mean() > 5   # a small angle moves pixels only a little
    if d.stochastic:
        assert not torch.equal(d.align(x, generator=gen(0)), d.align(x, generator=gen(1)))


def test_refactored_draws_keep_their_order_and_outputs():
    """The parameters are drawn in the order the defenses always drew them, so stored runs do not change."""
    x = photos(3, 48)
    g = gen(5)
    tops = torch.randint(0, 48 - 43 + 1, (3,), generator=g).tolist()   # round(48 · 0.9) = 43
    lefts = torch.randint(0, 48 - 43 + 1, (3,), generator=g).tolist()
    crops = [F.interpolate(x[i:i + 1, :, t:t + 43, l:l + 43], size=(48, 48), mode="bilinear", align_corners=False)
             for i, (t, l) in enumerate(zip(tops, lefts))]
    assert torch.equal(DEFENSES.get("random_crop")()(x, generator=gen(5)), torch.cat(crops))
    angle = (torch.rand(3, generator=gen(5)) * 2 - 1) * 10.0
    rotated = kornia.geometry.transform.rotate(x, angle, padding_mode="reflection").clamp(0, 1)
    assert torch.equal(DEFENSES.get("random_rotate")()(x, generator=gen(5)), rotated)
    flipped = torch.rand(3, generator=gen(5)) < 0.5
    expected = torch.where(flipped.view(-1, 1, 1, 1), x.flip(-1), x)
    assert torch.equal(DEFENSES.get("flip")(p=0.5)(x, generator=gen(5)), expected)


# -- through the runner ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def geometry_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("geometry")
    folder = root / "images"
    folder.mkdir()
    for name, arr, _ in tiny_images(3):
        Image.fromarray(arr).save(folder / name)
    cfg = write_config(root, f"""
[run]
name = "geometry"
output_dir = "{root / 'runs'}"
image_size = 96
batch_size = 4
[[datasets]]
name = "folder"
root = "{folder}"
[[metrics]]
name = "default"
[[metrics]]
name = "nondiff_default_for_test"
[[attacks]]
name = "noop_for_test"
adaptive = false
[[attacks]]
name = "pgd"
eps = "4/255"
steps = 2
adaptive = false
[[attacks]]
name = "square"
eps = "4/255"
queries = 5
adaptive = false
[[defenses]]
name = "identity"
[[defenses]]
name = "flip"
[[defenses]]
name = "random_crop"
[[defenses]]
name = "median"
""")
    assert main(["run", str(cfg), "--no-progress"]) == 0   # a skipped cell is not a failure
    run_dir = root / "runs" / "geometry"
    return run_dir, pd.read_csv(run_dir / "records.csv"), pd.read_csv(run_dir / "summary.csv")


NOOP, PGD, SQUARE = "noop_for_test", "pgd(eps=4/255,steps=2)", "square(eps=4/255,queries=5)"


def rows(df, attack, defense, metric="default"):
    return df[(df["attack"] == attack) & (df["defense"] == defense) & (df["metric"] == metric)]


def test_flip_purified_quality_aligned_is_perfect_when_unattacked(geometry_run):
    _, rec, summ = geometry_run
    flip = rows(rec, NOOP, "flip")
    assert len(flip) == 3
    # D(x') = D(x) = A(x): PSNR of identical images (pyiqa: 80 dB), SSIM 1; against the unflipped x it looks
    # badly damaged
    assert (flip["psnr_def_adv_aligned"] >= 80).all() and (flip["ssim_def_adv_aligned"] > 0.999).all()
    assert (flip["psnr_def_adv"] < 25).all() and (flip["ssim_def_adv"] < 0.7).all()
    s = rows(summ, NOOP, "flip").iloc[0]
    assert s["purified_quality_aligned"] >= 0.999 and s["similarity_aligned"] >= 2.999   # ½(1 + 80/80), 1 + 80/40
    assert s["purified_quality"] < 0.5 and s["purified_quality_aligned"] > s["purified_quality"] + 0.5
    # a flip is a permutation of pixels: against A(x), D(x') keeps exactly the attack's PSNR
    flip_pgd = rows(rec, PGD, "flip")
    np.testing.assert_allclose(flip_pgd["psnr_def_adv_aligned"], flip_pgd["psnr_attack"], rtol=1e-4)
    # the clean branch: D(x) against A(x) is perfect for every geometric defense of the run
    for d in ("flip", "random_crop"):
        assert (rows(rec, PGD, d)["psnr_def_clean_aligned"] >= 80).all(), d


def test_aligned_columns_and_declared_capabilities_in_the_records(geometry_run):
    _, rec, summ = geometry_run
    cols = [f"{k}_def_{t}" for k in ("psnr", "ssim", "ms_ssim") for t in ("adv", "clean")]
    assert set(c + "_aligned" for c in cols) <= set(rec.columns)
    assert {"purified_quality_aligned", "similarity_aligned", "purified_quality", "similarity"} <= set(summ.columns)
    by_defense = rec.groupby("defense")[["defense_baseline", "defense_changes_geometry"]].first()
    assert by_defense["defense_baseline"].to_dict() == {"flip": False, "identity": True, "median": False,
                                                        "random_crop": False}
    assert by_defense["defense_changes_geometry"].to_dict() == {"flip": True, "identity": False, "median": False,
                                                                "random_crop": True}
    for d in ("identity", "median"):   # nothing moved: the aligned values are the unaligned ones
        g = rec[rec["defense"] == d]
        for c in cols:
            np.testing.assert_array_equal(g[c + "_aligned"].to_numpy(), g[c].to_numpy(), err_msg=f"{d} {c}")
        s = summ[summ["defense"] == d]
        np.testing.assert_array_equal(s["purified_quality_aligned"], s["purified_quality"])
    crop = rows(rec, SQUARE, "random_crop")
    assert (crop["psnr_def_adv_aligned"] > crop["psnr_def_adv"] + 5).all()


def test_gradient_attack_on_a_non_differentiable_metric_is_skipped_with_its_reason(geometry_run):
    run_dir, rec, _ = geometry_run
    nd = rec[rec["metric"] == "nondiff_default_for_test"]
    assert set(nd["attack"]) == {NOOP, SQUARE}          # score-only attacks still run on it
    assert set(rec[rec["metric"] == "default"]["attack"]) == {NOOP, PGD, SQUARE}
    skipped = json.loads((run_dir / "skipped.json").read_text())
    (item,) = [s for s in skipped if "pgd" in s["what"]]
    assert "nondiff_default_for_test" in item["what"] and "differentiable = False" in item["reason"]
    assert not list(run_dir.glob("errors/*.json"))        # skipped, not failed
    assert "differentiable = False" in (run_dir / "report.html").read_text()
