"""The columns named after a study use its convention: scikit-image's RGB SSIM and uncapped PSNR.

The purification study (AleksandrGushchin/adversarial_purification, ``test.py``) and the Guardians benchmark
(msu-video-group/adversarial-defenses-for-iqa, ``metrics/defences/utils/metrics.py``) score purified images
with ``structural_similarity(a, b, channel_axis=2, data_range=1)`` and ``peak_signal_noise_ratio(a, b,
data_range=1)``. :func:`benchmark.quality.ssim_skimage` / :func:`~benchmark.quality.psnr_skimage` are those
in float32 torch; here they are held to scikit-image itself (float64) on real image pairs, and a cell's
``purified_quality`` / ``similarity`` of a real run to the studies' formulas computed with scikit-image on the
stored attacked images and the recomputed purified ones.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SHARED, folder_config, need_shared, tiny_images, write_image_folder
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from benchmark import quality
from benchmark.defenses.jpeg import JPEG
from benchmark.defenses.median import MedianFilter

TOL = 1e-4
TID = SHARED / "data" / "tid2013-calibration"
TID_IMAGES = ["I03.bmp", "I04.bmp", "I06.bmp", "I08.bmp", "I19.bmp"]


def hwc(x: torch.Tensor) -> np.ndarray:
    """3×H×W tensor -> H×W×3 float64 array, as the studies' ``to_numpy`` (then float64 for the reference)."""
    return x.permute(1, 2, 0).double().numpy()


def skimage_pair(dist: torch.Tensor, ref: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's SSIM and PSNR of each pair of B×3×H×W ``dist`` against ``ref``, as the studies call them."""
    ssim, psnr = [], []
    for d, r in zip(dist, ref):
        ssim.append(structural_similarity(hwc(r), hwc(d), channel_axis=2, data_range=1))
        with np.errstate(divide="ignore"):  # identical images: inf, as in the studies
            psnr.append(peak_signal_noise_ratio(hwc(r), hwc(d), data_range=1))
    return np.array(ssim), np.array(psnr)


def assert_matches_skimage(dist: torch.Tensor, ref: torch.Tensor) -> None:
    want_ssim, want_psnr = skimage_pair(dist, ref)
    got_ssim, got_psnr = quality.ssim_skimage(dist, ref), quality.psnr_skimage(dist, ref)
    assert got_ssim.dtype == torch.float64 and got_ssim.shape == (len(dist),)
    np.testing.assert_allclose(got_ssim.numpy(), want_ssim, rtol=0, atol=TOL)
    np.testing.assert_allclose(got_psnr.numpy(), want_psnr, rtol=0, atol=TOL)


def tiny_batch(n: int = 4) -> torch.Tensor:
    return torch.stack([torch.from_numpy(arr).permute(2, 0, 1).float() / 255 for _, arr, _ in tiny_images(n)])


@pytest.mark.shared
def test_tid2013_calibration_pairs_match_skimage():
    need_shared(TID)

    def load(folder: str) -> torch.Tensor:
        return torch.stack([torch.from_numpy(np.asarray(Image.open(TID / folder / n).convert("RGB")).copy())
                            .permute(2, 0, 1).float() / 255 for n in TID_IMAGES])

    dist, ref = load("dist"), load("ref")
    assert_matches_skimage(dist, ref)
    # the project's own SSIM (pyiqa: Y channel, Gaussian window) is another number on the same pairs
    assert (quality.ssim(dist, ref) - quality.ssim_skimage(dist, ref)).abs().max() > 1e-3


@pytest.mark.parametrize("defense", [JPEG(quality=50), JPEG(quality=10), MedianFilter(kernel=3),
                                     MedianFilter(kernel=5)], ids=["jpeg50", "jpeg10", "median3", "median5"])
def test_defended_images_match_skimage(defense):
    x = tiny_batch()
    out = defense.eval()(x).clamp(0, 1)
    assert_matches_skimage(out, x)
    # odd sides, and a crop whose side is the window's 7 pixels
    assert_matches_skimage(out[..., 3:64, 5:90], x[..., 3:64, 5:90])
    assert_matches_skimage(out[..., :7, :9], x[..., :7, :9])


def test_extremes_and_identical_images():
    x = tiny_batch()
    dist = torch.stack([x[0], 1 - x[1], torch.full_like(x[2], 0.5), (x[3] + 1 / 255).clamp(0, 1)])
    assert_matches_skimage(dist, x)
    q = quality.pair_quality(x, x)
    assert q["psnr_skimage"].tolist() == [math.inf] * 4 and q["ssim_skimage"].tolist() == [1.0] * 4
    closed = quality.identical_quality(4, 96)
    for k in quality.quality_keys():
        np.testing.assert_array_equal(closed[k].numpy(), q[k].numpy(), err_msg=k)
    assert q["psnr"].tolist() == [80.0] * 4  # the project's own PSNR keeps pyiqa's floor
    with pytest.raises(ValueError, match="at least 7"):
        quality.ssim_skimage(x[..., :6, :6], x[..., :6, :6])


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A real run: default metric, FGSM (transfer only), JPEG and identity, 4 images at 96 px."""
    from benchmark.config import load_config
    from benchmark.runner import Runner

    tmp = tmp_path_factory.mktemp("published")
    tables = '[[metrics]]\nname = "default"\n[[attacks]]\nname = "fgsm"\neps = "4/255"\nadaptive = false\n' \
             '[[defenses]]\nname = "jpeg"\nquality = 50\n[[defenses]]\nname = "identity"\n'
    path = folder_config(tmp, "pub", write_image_folder(tmp / "images", 4), tables, run_extra="batch_size = 4")
    cfg = load_config(path)
    run_dir = cfg.run.output_dir / cfg.run.name
    run_dir.mkdir(parents=True)
    assert Runner(cfg, run_dir, progress=False).run() == 0
    return cfg, run_dir


def test_a_run_cell_scores_purified_quality_as_the_study(small_run):
    """One real cell (default metric, FGSM, JPEG, 4 images at 96 px): its purified_quality and similarity equal
    the studies' formulas computed by scikit-image on the stored attacked PNGs and the recomputed D(x')."""
    from benchmark.measures import summarize
    from benchmark.records import load_records
    from benchmark.runner import Runner, plan
    from benchmark.store import RunStore

    cfg, run_dir = small_run
    records = load_records(run_dir)
    summary = summarize(records).set_index(["attack", "defense"])
    cell = next(c for c in plan(cfg) if c.defense.name == "jpeg" and not c.attack.adaptive)
    store = RunStore(run_dir)
    batch = next(Runner(cfg, run_dir, progress=False).open_images(cell.dataset).batches(4))
    x = batch.x
    x_adv = torch.stack([store.load_image("attack", cell.keys["attack"], i, "png") for i in batch.ids])
    purified = cell.defense.build().eval()(x_adv).clamp(0, 1)
    ssim, psnr = skimage_pair(purified, x)
    rows = records[(records["defense"] == cell.defense.label) & (records["attack"] == cell.attack.label)]
    rows = rows.set_index("image_id").loc[batch.ids]
    np.testing.assert_allclose(rows["ssim_skimage_def_adv"], ssim, rtol=0, atol=TOL)
    np.testing.assert_allclose(rows["psnr_skimage_def_adv"], psnr, rtol=0, atol=TOL)
    row = summary.loc[(cell.attack.label, cell.defense.label)]
    assert row["purified_quality"] == pytest.approx(np.mean(0.5 * (ssim + psnr / 80)), abs=TOL)
    assert row["similarity"] == pytest.approx(np.mean(ssim + psnr / 40), abs=TOL)
    # not the project's own SSIM/PSNR: those give another number on the same images
    own = np.mean(0.5 * (rows["ssim_def_adv"] + rows["psnr_def_adv"] / 80))
    assert abs(own - row["purified_quality"]) > 1e-3
    # identity: D(x) = x, the closed form's inf PSNR makes the Guardians clean similarity inf, as in its code
    ident = summary.loc[(cell.attack.label, "identity")]
    assert ident["similarity_clean"] == math.inf and ident["psnr_skimage_def_clean"] == math.inf
    ssim_att, psnr_att = skimage_pair(x_adv, x)
    assert ident["purified_quality"] == pytest.approx(np.mean(0.5 * (ssim_att + psnr_att / 80)), abs=TOL)


def one_cell(**quality) -> pd.DataFrame:
    return pd.DataFrame({"dataset": "d", "metric": "m", "attack": "a", "defense": "x", "image_id": list("abc"),
                         "score": [50.0, 60, 70], "score_adv": [60.0, 70, 80], "score_def": [50.0, 60, 70],
                         "score_adv_def": [52.0, 62, 72], "lower_better": False, "range_lo": 0.0,
                         "range_hi": 100.0, **quality})


def test_an_infinite_psnr_makes_the_studies_mean_infinite_and_nan_pairs_are_left_out():
    from benchmark.measures import summarize

    row = summarize(one_cell(psnr_def_adv=[30.0, 80, 40], ssim_def_adv=[0.8, 1.0, 0.9],
                             psnr_skimage_def_adv=[30.0, 32, math.nan], ssim_skimage_def_adv=[0.8, 0.9, 0.7],
                             psnr_skimage_def_clean=[40.0, math.inf, 36], ssim_skimage_def_clean=1.0)).iloc[0]
    # the pairs with a NaN are left out (the Guardians code drops them), the others are averaged
    assert row["similarity"] == pytest.approx(np.mean([0.8 + 30 / 40, 0.9 + 32 / 40]))
    assert row["purified_quality"] == pytest.approx(np.mean([0.5 * (0.8 + 30 / 80), 0.5 * (0.9 + 32 / 80)]))
    # one identical pair: inf, as the studies' np.mean of scikit-image's PSNR gives
    assert row["similarity_clean"] == math.inf and row["psnr_skimage_def_clean"] == math.inf
    assert row["psnr_def_adv"] == pytest.approx(50.0)   # the project's own PSNR: its mean stays finite


def test_records_without_the_skimage_columns_leave_the_studies_measures_nan_with_the_reason():
    from benchmark.measures import summarize

    row = summarize(one_cell(psnr_def_adv=[30.0, 32, 34], ssim_def_adv=0.9, psnr_def_clean=40.0,
                             ssim_def_clean=0.99)).iloc[0]
    assert all(math.isnan(row[c]) for c in ("similarity", "purified_quality", "similarity_clean"))
    assert "stored before the scikit-image quality columns" in row["nan_reasons"]


def test_a_quality_version_change_recomputes_the_defense_stages_only(small_run, monkeypatch):
    """QUALITY_VERSION is in the keys of def_clean, def_adv and def_quality, not of clean and attack; a resumed
    run whose attack stage lacks the scikit-image columns measures identity's (x, D(x')) again, to the same
    values."""
    import json

    import benchmark.stages.graph as graph_mod
    from benchmark.records import load_records
    from benchmark.runner import Runner, plan

    cfg, run_dir = small_run
    before = {c.defense.label: c.keys for c in plan(cfg)}
    monkeypatch.setattr(graph_mod, "QUALITY_VERSION", quality.QUALITY_VERSION + 1)
    after = {c.defense.label: c.keys for c in plan(cfg)}
    for d, keys in before.items():
        changed = {"def_clean", "def_adv", "strip"} | ({"def_quality"} if "def_quality" in keys else set())
        assert {k for k in keys if keys[k] != after[d][k]} == changed, d
    monkeypatch.undo()
    # an attack stage stored before the columns existed, and the defense stages recomputed
    records = load_records(run_dir)
    cell = next(c for c in plan(cfg) if c.defense.name == "identity")
    attack_json = run_dir / "stages" / "attack" / f"{cell.keys['attack']}.json"
    stage = json.loads(attack_json.read_text())
    for r in stage["records"]:
        del r["psnr_skimage_attack"], r["ssim_skimage_attack"]
    attack_json.write_text(json.dumps(stage))
    for kind in ("def_clean", "def_adv", "def_quality"):
        for c in plan(cfg):
            (run_dir / "stages" / kind / f"{c.keys.get(kind, 'none')}.json").unlink(missing_ok=True)
    assert Runner(cfg, run_dir, progress=False).run() == 0
    again = load_records(run_dir)
    assert "psnr_skimage_attack" not in again
    cols = [c for c in records if "_def_" in c and not c.startswith("seconds")]
    keys = ["attack", "defense", "image_id"]
    a, b = records.set_index(keys).sort_index()[cols], again.set_index(keys).sort_index()[cols]
    assert np.isfinite(b.loc[b.index.get_level_values("defense") == "identity", "psnr_skimage_def_adv"]).all()
    np.testing.assert_array_equal(a.to_numpy(float), b.to_numpy(float))
