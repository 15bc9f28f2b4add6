"""Dataset loaders on fixtures in each database's official format, splits, stratified subsets, bad images."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from benchmark.datasets.clive import CLIVE
from benchmark.datasets.folder import ImageFolder
from benchmark.datasets.kadid import KADID10k
from benchmark.datasets.koniq import KonIQ10k
from benchmark.datasets.spaq import SPAQ
from benchmark.datasets.tid2013 import TID2013
from benchmark.errors import ConfigError, DataError
from benchmark.images import read_image


def img(path, seed=0, size=(48, 40)):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (*size[::-1], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


def test_koniq(tmp_path):
    with (tmp_path / "koniq10k_scores_and_distributions.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "MOS_zscore"])
        for i in range(20):
            name = f"{1000 + i}.jpg"
            img(tmp_path / "512x384" / name, i)
            w.writerow([name, 1, 2, 3, 4, 5, 15, 1 + i * 0.2, 0.5, 50])
    ds = KonIQ10k(root=tmp_path)
    assert len(ds) == 20 and ds.mos_range == (1.0, 5.0)
    s = ds.load("1005.jpg")
    assert s.mos == pytest.approx(2.0) and s.image.shape == (40, 48, 3)
    sub = KonIQ10k(root=tmp_path, limit=5)                   # MOS-stratified: spread over the range
    moss = sorted(sub.load(i).mos for i in sub.ids())
    assert len(moss) == 5 and moss[0] < 2.0 and moss[-1] > 4.0
    tr, te = KonIQ10k(root=tmp_path, split="train"), KonIQ10k(root=tmp_path, split="test")
    assert not set(tr.ids()) & set(te.ids()) and len(tr) + len(te) == 20 and len(tr) == 16
    assert KonIQ10k(root=tmp_path, split="train").ids() == tr.ids()   # deterministic
    with pytest.raises(ConfigError, match="1024x768"):
        KonIQ10k(root=tmp_path, resolution="1024x768")


def test_kadid_splits_by_reference(tmp_path):
    with (tmp_path / "dmos.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dist_img", "ref_img", "dmos", "var"])
        for r in range(5):
            for d in range(4):
                name = f"I{r + 1:02d}_{d + 1:02d}_01.png"
                img(tmp_path / "images" / name, r * 10 + d)
                w.writerow([name, f"I{r + 1:02d}.png", 1 + d, 0.1])
    tr, te = KADID10k(root=tmp_path, split="train"), KADID10k(root=tmp_path, split="test")
    refs = lambda ds: {i[:3] for i in ds.ids()}  # noqa: E731
    assert len(tr) == 16 and len(te) == 4 and not refs(tr) & refs(te)
    assert KADID10k(root=tmp_path).load("I02_03_01.png").mos == 3.0


def test_tid2013(tmp_path):
    lines = []
    for r in (1, 2):
        for d in (1, 2):
            name = f"i{r:02d}_{d:02d}_1.bmp" if r == 1 else f"I{r:02d}_{d:02d}_1.BMP"
            img(tmp_path / "distorted_images" / name, r + d)
            lines.append(f"{4.5 + d} {name}")
    (tmp_path / "mos_with_names.txt").write_text("\n".join(lines) + "\n")
    ds = TID2013(root=tmp_path)
    assert len(ds) == 4 and ds.load("I02_02_1.BMP").mos == 6.5
    (tmp_path / "mos_with_names.txt").write_text("oops\n")
    with pytest.raises(DataError, match="mos_with_names.txt, line 1"):
        TID2013(root=tmp_path)


def test_clive_mat_files(tmp_path):
    names = [f"{i}.bmp" for i in range(10)]
    for i, n in enumerate(names):
        img(tmp_path / "Images" / n, i)
    (tmp_path / "Data").mkdir()
    cell = np.empty((len(names), 1), dtype=object)
    for i, n in enumerate(names):
        cell[i, 0] = np.array([n])
    savemat(tmp_path / "Data" / "AllImages_release.mat", {"AllImages_release": cell})
    savemat(tmp_path / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.arange(10.0)[None] * 10})
    ds = CLIVE(root=tmp_path)
    assert ds.ids() == names[7:] and ds.load("8.bmp").mos == 80.0
    assert len(CLIVE(root=tmp_path, include_training_images=True)) == 10


def test_spaq_spreadsheet(tmp_path):
    pytest.importorskip("openpyxl")
    import pandas as pd

    (tmp_path / "Annotations").mkdir()
    for i in range(3):
        img(tmp_path / "TestImage" / f"{i + 1:05d}.jpg", i)
    pd.DataFrame({"Image name": [f"{i + 1:05d}.jpg" for i in range(3)], "MOS": [20.0, 50.0, 80.0],
                  "Brightness": [1, 2, 3]}).to_excel(tmp_path / "Annotations" / "MOS and Image attribute scores.xlsx",
                                                      index=False)
    ds = SPAQ(root=tmp_path)
    assert len(ds) == 3 and ds.load("00002.jpg").mos == 50.0


def test_bad_images_are_converted_or_named(tmp_path, monkeypatch):
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((40, 40), 100, np.uint8)).save(grey)
    assert (read_image(grey) == 100).all() and read_image(grey).shape == (40, 40, 3)
    rgba = tmp_path / "rgba.png"
    a = np.zeros((40, 40, 4), np.uint8)
    a[..., 0], a[..., 3] = 255, 0                      # fully transparent red -> white
    Image.fromarray(a).save(rgba)
    assert (read_image(rgba) == 255).all()
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((40, 40), 65535, np.uint16)).save(deep)
    assert (read_image(deep) == 255).all()
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tiny)
    with pytest.raises(DataError, match="tiny.png is 8×8"):
        read_image(tiny)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="broken.jpg"):
        read_image(broken)
    truncated = tmp_path / "truncated.png"
    img(truncated, 1, size=(64, 64))
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(DataError, match="truncated.png"):
        read_image(truncated)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    huge = tmp_path / "huge.png"
    img(huge, 2, size=(64, 64))
    with pytest.raises(DataError, match="huge.png is too large"):
        read_image(huge)


def test_one_bad_image_does_not_lose_the_run(tmp_path, image_folder):
    from benchmark.cli import main

    from conftest import DEFAULT_FGSM_IDENTITY, folder_config

    (image_folder / "img01.png").write_bytes(b"corrupt")
    cfg = folder_config(tmp_path, "bad", image_folder, DEFAULT_FGSM_IDENTITY, mos=True)

    assert main(["run", str(cfg), "--no-progress"]) == 0
    import json
    import pandas as pd

    run = tmp_path / "runs" / "bad"
    assert len(pd.read_csv(run / "records.csv")) == 5
    assert "img01.png" in json.loads((run / "skipped.json").read_text())[0]["what"]
    assert "img01.png" in (run / "report.html").read_text()


def test_folder_without_csv_and_missing_listed_file(tmp_path, image_folder):
    assert len(ImageFolder(root=image_folder)) == 6
    (image_folder / "img02.png").unlink()
    with pytest.raises(DataError, match="img02.png"):
        ImageFolder(root=image_folder, mos_csv=image_folder / "mos.csv")


def test_live_release2(tmp_path):
    from benchmark.datasets.live2 import FOLDERS, LIVE2

    n = sum(c for _, c in FOLDERS)
    rng = np.random.default_rng(0)
    refs = np.empty((1, n), dtype=object)
    for i in range(n):
        refs[0, i] = np.array([f"ref{i % 29}.bmp"])
    orgs = np.zeros((1, n))
    orgs[0, ::10] = 1                                    # some entries are the references themselves
    savemat(tmp_path / "dmos_realigned.mat", {"dmos_new": rng.uniform(0, 100, (1, n)), "orgs": orgs})
    savemat(tmp_path / "refnames_all.mat", {"refnames_all": refs})
    for folder, count in FOLDERS:
        (tmp_path / folder).mkdir()
        for k in range(1, count + 1):
            (tmp_path / folder / f"img{k}.bmp").write_bytes(b"")  # listing only; loading is tested elsewhere
    ds = LIVE2(root=tmp_path)
    assert len(ds) == n - len(range(0, n, 10)) and ds.mos_lower_better
    assert "jp2k/img2.bmp" in ds.ids() and "jp2k/img1.bmp" not in ds.ids()   # index 0 is a reference
    tr, te = LIVE2(root=tmp_path, split="train"), LIVE2(root=tmp_path, split="test")
    groups = lambda d: {d._entries[i].group for i in d.ids()}  # noqa: E731
    assert not groups(tr) & groups(te)
    (tmp_path / "wn" / "img174.bmp").unlink()
    with pytest.raises(DataError, match="img174.bmp"):
        LIVE2(root=tmp_path).load("wn/img174.bmp")


def test_bad_score_row_names_file_and_line(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "dmos.csv").write_text("dist_img,ref_img,dmos,var\nI01_01_01.png,I01.png,high,0.1\n")
    with pytest.raises(DataError, match=r"dmos.csv, line 2"):
        KADID10k(root=tmp_path)


def test_csiq_spreadsheet_and_folders(tmp_path):
    pytest.importorskip("openpyxl")
    import pandas as pd

    from benchmark.datasets.csiq import CSIQ

    rows = []
    tags = {1: ("awgn", "AWGN"), 2: ("jpeg", "JPEG"), 5: ("blur", "BLUR"), 6: ("contrast", "contrast")}
    for r, image in enumerate(["1600", "aerial_city", "boston"]):
        img(tmp_path / "src_imgs" / f"{image}.png", r)
        for idx, (folder, tag) in tags.items():
            for lev in (1, 2):
                img(tmp_path / "dst_imgs" / folder / f"{image}.{tag}.{lev}.png", r * 10 + idx + lev)
                rows.append({"image": int(image) if image.isdigit() else image, "dst_idx": idx,
                             "dst_type": folder, "dst_lev": lev, "dmos_std": 0.05, "dmos": 0.1 * lev + 0.01 * idx})
    with pd.ExcelWriter(tmp_path / "csiq.DMOS.xlsx") as xw:
        pd.DataFrame({"note": ["readme sheet"]}).to_excel(xw, sheet_name="readme", index=False)
        pd.DataFrame(rows).to_excel(xw, sheet_name="all_by_image", index=False)
    ds = CSIQ(root=tmp_path)
    assert len(ds) == 24 and ds.mos_lower_better
    s = ds.load("awgn/1600.AWGN.2.png")
    assert s.mos == pytest.approx(0.21) and s.image.shape == (40, 48, 3)
    tr, te = CSIQ(root=tmp_path, split="train"), CSIQ(root=tmp_path, split="test")
    refs = lambda d: {d._entries[i].group for i in d.ids()}  # noqa: E731
    assert not refs(tr) & refs(te) and len(tr) + len(te) == 24
    (tmp_path / "dst_imgs" / "blur" / "boston.BLUR.1.png").unlink()
    with pytest.raises(DataError, match=r"boston.<type>.1.png"):
        CSIQ(root=tmp_path)
