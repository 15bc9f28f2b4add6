"""The ``strip`` stage (benchmark/stages/strip.py) on a real run of the ``synthetic`` dataset: the runner stores
each cell's strip once, from the same batch and seed as the def_adv stage (so D(x') reproduces the stored PSNR
exactly), on one image per (dataset, metric), and says why a panel is missing."""
from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import write_config
from strip_helpers import context, strip_stages

from benchmark.attacked import decode
from benchmark.cli import main
from benchmark.quality import psnr
from benchmark.stages import strip

MATRIX = """
[run]
name = "strips"
output_dir = "{out}"
image_size = 48
batch_size = 3
[[datasets]]
name = "synthetic"
levels = [2]
limit = 5
[[metrics]]
name = "default"
[[attacks]]
name = "fgsm"
eps = "4/255"
adaptive = false
[[defenses]]
name = "identity"
[[defenses]]
name = "jpeg"
quality = 40
[[defenses]]
name = "random_noise"
[[defenses]]
name = "flip"
[[defenses]]
name = "median_smoothing"
n = 4
"""


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("strip-stage")
    cfg = write_config(tmp, MATRIX.format(out=tmp / "runs"))
    assert main(["run", str(cfg), "--no-progress"]) == 0
    return cfg, tmp / "runs" / "strips"


@pytest.fixture(scope="module")
def strips(stored_run):
    """Every cell's strip stage and the record the run stored for it (by defense label), and a stage context."""
    cfg_path, run = stored_run
    ctx = context(cfg_path, run)
    stages = strip_stages(cfg_path)
    return {label: (stage.cell, ctx.store.load("strip", stage.key)) for label, stage in stages.items()}, ctx


def _png(ctx, cell, rec, name) -> torch.Tensor:
    return decode((ctx.store.root / "stages" / "strip" / cell.keys["strip"] / rec["files"][name]["file"]).read_bytes(),
                  "png")


def test_one_image_per_section_the_median_clean_score(strips):
    made, ctx = strips
    cell = next(iter(made.values()))[0]
    clean = ctx.store.load("clean", cell.keys["clean"])["records"]
    scores = sorted((r["score"], r["image_id"]) for r in clean)
    assert len(scores) == 5 and {rec["image_id"] for _, rec in made.values()} == {scores[2][1]}


def test_stored_images_are_the_runs_images_and_d_of_x_adv_reproduces_def_adv(strips):
    made, ctx = strips
    images = ctx.images(next(iter(made.values()))[0].dataset)
    for label, (cell, rec) in made.items():
        x = images.read(next(e for e in images.entries if e.image_id == rec["image_id"]))
        xa = ctx.store.load_image("attack", cell.keys["attack"], rec["image_id"], "png")
        assert torch.equal(_png(ctx, cell, rec, "clean"), x) and torch.equal(_png(ctx, cell, rec, "attacked"), xa)
        assert rec["psnr"]["attack"]["here"] == pytest.approx(rec["psnr"]["attack"]["stored"], abs=1e-6)
        assert rec["files"]["zoom"]["height"] == 32 and rec["zoom"] == strip.ZOOM and not rec["scaled"]
        if label in ("jpeg(quality=40)", "random_noise", "flip"):
            # random_noise draws its noise for the image's whole batch of 3 from the stage's seed: reproduced
            assert rec["psnr"]["def_adv"]["here"] == pytest.approx(rec["psnr"]["def_adv"]["stored"], abs=1e-6)
            assert rec["why_purified"] == "" and set(rec["files"]) == {"clean", "attacked", "purified", "diff_attacked",
                                                                       "diff_purified", "zoom"}
            # what is stored is D(x'), 8-bit: its PSNR against x is the stored one up to the rounding
            assert float(psnr(_png(ctx, cell, rec, "purified")[None], x[None])) == pytest.approx(
                rec["psnr"]["def_adv"]["stored"], abs=0.2)
            assert rec["files"]["zoom"]["width"] == 3 * 32 + 2
        else:
            assert "purified" not in rec["files"] and rec["files"]["zoom"]["width"] == 2 * 32 + 1
    assert "leaves x' as it is" in made["identity"][1]["why_purified"]
    assert "its own model or noisy copies" in made["median_smoothing(n=4)"][1]["why_purified"]
    assert made["flip"][1]["changes_geometry"] and not made["jpeg(quality=40)"][1]["changes_geometry"]
    # the difference panel is |x' − x| × amp, the largest change over the channels, in grey
    cell, rec = made["identity"]
    d = _png(ctx, cell, rec, "diff_attacked")
    assert d.shape[0] == 3 and torch.equal(d[0], d[1]) and rec["amp"]["attacked"] == round(0.5 / rec["linf"]["attacked"])


def test_the_stage_run_again_makes_the_same_record_and_files(stored_run, strips):
    cfg_path, run = stored_run
    made, ctx = strips
    stages = strip_stages(cfg_path)
    for label in ("random_noise", "median_smoothing(n=4)"):
        files = {n: (run / "stages" / "strip" / stages[label].key / f["file"]).read_bytes()
                 for n, f in made[label][1]["files"].items()}
        again = json.loads(json.dumps(strip.run(context(cfg_path, run), stages[label])))
        stored = {k: v for k, v in made[label][1].items() if k in again}
        assert again == stored
        assert all((run / "stages" / "strip" / stages[label].key / f["file"]).read_bytes() == files[n]
                   for n, f in again["files"].items())


def test_a_different_batch_does_not_reproduce_a_stochastic_defense_and_says_so(stored_run, strips):
    cfg_path, run = stored_run
    stages = strip_stages(cfg_path)
    other = context(cfg_path, run, batch_size=1)   # another batch: another seed, other noise
    rec = strip.run(other, stages["random_noise"])
    assert "not the stored" in rec["why_purified"] and "purified" not in rec["files"]
    # the deterministic jpeg does not depend on the batch
    assert strip.run(other, stages["jpeg(quality=40)"])["why_purified"] == ""


def test_an_attacked_file_that_is_not_the_runs_stores_nothing(stored_run, strips, tmp_path):
    import shutil

    cfg_path, run = stored_run
    made, _ = strips
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    ctx = context(cfg_path, copy)
    stage = strip_stages(cfg_path)["jpeg(quality=40)"]
    image = made["jpeg(quality=40)"][1]["image_id"]
    ctx.store.save_image("attack", stage.deps["attack"], image, torch.zeros(3, 48, 48), "png")
    bad = strip.run(ctx, stage)
    assert bad["files"] == {} and "does not match" in bad["why"] and bad["image_id"] == image


def test_pick_image_median_of_finite_scores():
    rows = [{"image_id": i, "score": s} for i, s in [("a", 3.0), ("b", math.nan), ("c", 1.0), ("d", 2.0), ("e", None)]]
    assert strip.pick_image(rows, {"a", "b", "c", "d", "e"}) == "d"
    assert strip.pick_image(rows, {"a", "c"}) == "c"          # even count: the lower middle one
    assert strip.pick_image(rows, {"b", "e"}) is None


def test_panels_helpers():
    d = torch.zeros(3, 64, 80)
    d[:, 40:50, 10:20] = 4 / 255
    top, left, side = strip.largest_region(d, 16)
    assert side == 16 and 34 <= top <= 40 and 4 <= left <= 10
    assert strip.amplification(d) == round(0.5 / (4 / 255))
    assert strip.difference(d, torch.zeros_like(d), 32).shape == (1, 64, 80)
    assert strip.crops([torch.rand(3, 64, 80)] * 3, (0, 0, 16)).shape == (3, 16, 3 * 16 + 2)
    data, w, h = strip.png(torch.rand(3, 300, 400))          # larger than MAX_SIDE: scaled down, aspect kept
    assert (w, h) == (256, 192) and data[:8] == b"\x89PNG\r\n\x1a\n"
    _, w, h = strip.png(torch.rand(1, 20, 30), None)
    assert (w, h) == (30, 20)


def test_kind_declares_the_stage():
    assert strip.KIND.name == "strip" and strip.KIND.run is strip.run
    assert set(strip.KIND.deps) == {"clean", "attack", "def_clean", "def_adv"}   # all it reads, stored first
