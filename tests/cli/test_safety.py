"""Hostile or careless input (issue 13): run names, --overwrite, unsafe checkpoints, file modes, dataset
paths that escape their folder, 16-bit colour, and labels that would become markup or spreadsheet formulas."""
from __future__ import annotations

import csv
import json
import os
import pickle
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from benchmark.cli import main
from benchmark.config import load_config
from benchmark.errors import DataError
from benchmark.store import TOOL, atomic_write_text, is_run_dir

from conftest import DEFAULT_FGSM_IDENTITY, write_config


def tiny_config(tmp_path: Path, image_folder: Path, name_line: str, *, limit: int = 2, tables: str = "",
                fname: str = "m.toml") -> Path:
    return write_config(tmp_path, f"""
[run]
{name_line}
output_dir = "{tmp_path / 'runs'}"
image_size = 64
[[datasets]]
name = "folder"
root = "{image_folder}"
limit = {limit}
{tables or DEFAULT_FGSM_IDENTITY}""", name=fname)


# -- run names and --overwrite ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../victim", "", ".", "..", "/tmp/abs", "a/b", "a\\\\b", "-rf", "x\\u0000y",
                                  "tab\\there"])
def test_run_name_must_be_one_safe_folder_name(tmp_path, image_folder, capsys, name):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.tex").write_text("precious")
    cfg = tiny_config(tmp_path, image_folder, f'name = "{name}"')
    for argv in (["validate", str(cfg)], ["run", str(cfg), "--overwrite", "--no-progress"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "run.name" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert (victim / "thesis.tex").read_text() == "precious" and not (tmp_path / "runs").exists()


def test_default_name_from_the_file_stem_is_checked_too(tmp_path, image_folder, capsys):
    cfg = tiny_config(tmp_path, image_folder, "", fname="-rf.toml")
    assert main(["validate", str(cfg)]) == 2 and "run.name" in capsys.readouterr().err
    ok = tiny_config(tmp_path, image_folder, "", fname="study-1.toml")
    assert load_config(ok).run.name == "study-1"


def test_overwrite_removes_only_a_run_of_this_tool(tmp_path, image_folder, capsys):
    cfg = tiny_config(tmp_path, image_folder, 'name = "study"')
    foreign = tmp_path / "runs" / "study"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    (foreign / "manifest.json").write_text(json.dumps({"name": "study", "tool": "something-else"}))
    for flag in ("--overwrite", "--resume"):
        assert main(["run", str(cfg), flag, "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert str(foreign) in err and "not a run directory of this tool" in err
    assert (foreign / "notes.txt").read_text() == "mine" and not (foreign / ".lock").exists()

    # a real run is overwritten: everything in it goes, and the new run is complete
    (foreign / "notes.txt").unlink()
    (foreign / "manifest.json").unlink()
    assert main(["run", str(cfg), "--no-progress"]) == 0
    assert is_run_dir(foreign) and json.loads((foreign / "manifest.json").read_text())["tool"] == TOOL
    (foreign / "left-over.txt").write_text("old")
    assert main(["run", str(cfg), "--no-progress"]) == 2 and "--resume" in capsys.readouterr().err
    assert main(["run", str(cfg), "--overwrite", "--no-progress"]) == 0
    assert not (foreign / "left-over.txt").exists() and len(pd.read_csv(foreign / "records.csv")) == 2


def test_run_directory_that_is_a_symlink_is_refused(tmp_path, image_folder, capsys):
    cfg = tiny_config(tmp_path, image_folder, 'name = "study"')
    assert main(["run", str(cfg), "--no-progress"]) == 0            # elsewhere: a real run of this tool
    real = tmp_path / "elsewhere"
    (tmp_path / "runs" / "study").rename(real)
    (tmp_path / "runs" / "study").symlink_to(real, target_is_directory=True)
    n_files = len(list(real.rglob("*")))
    assert main(["run", str(cfg), "--overwrite", "--no-progress"]) == 2
    assert "symbolic link" in capsys.readouterr().err and len(list(real.rglob("*"))) == n_files


# -- checkpoints: nothing is unpickled unrestricted ------------------------------------------------
class _Payload:
    """Unpickling this creates the file ``marker``: what a crafted checkpoint does with any code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def crafted_checkpoints(tmp_path: Path) -> tuple[Path, list[Path]]:
    marker = tmp_path / "CODE-RAN"
    zipped, legacy = tmp_path / "evil.pth", tmp_path / "evil-legacy.pth"
    torch.save({"params": _Payload(marker), "conv.weight": torch.zeros(2)}, zipped)
    legacy.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}, protocol=2))
    # the files are real: an unrestricted load runs their code
    for f in (zipped, legacy):
        try:
            torch.load(f, weights_only=False)
        except RuntimeError:  # the legacy stream's "magic number" is the payload: code ran, then torch gave up
            pass
        assert marker.exists()
        marker.unlink()
    return marker, [zipped, legacy]


def pyiqa_tables(path: Path) -> str:
    return f"""
[[metrics]]
name = "pyiqa"
metric = "cnniqa"
pretrained_model_path = "{path.name}"
[[attacks]]
name = "fgsm"
[[defenses]]
name = "identity"
"""


def test_crafted_checkpoint_for_pyiqa_runs_no_code(tmp_path, image_folder, capsys):
    marker, files = crafted_checkpoints(tmp_path)
    for i, evil in enumerate(files):
        cfg = tiny_config(tmp_path, image_folder, f'name = "evil{i}"', tables=pyiqa_tables(evil))
        for argv in (["validate", str(cfg)], ["run", str(cfg), "--no-progress"]):
            assert main(argv) == 2                      # refused at validation: no work done
            err = capsys.readouterr().err
            assert not marker.exists()
            assert evil.name in err and "metrics[0].pretrained_model_path" in err and "Traceback" not in err
            assert "not a plain weights file" in err or "weights_only=True" in err
        assert not (tmp_path / "runs" / f"evil{i}").exists()


def test_checkpoint_swapped_after_validation_is_refused_by_the_runner(tmp_path, image_folder):
    from benchmark.runner import Runner

    marker, (evil, _) = crafted_checkpoints(tmp_path)
    ckpt = tmp_path / "cnniqa.pth"
    torch.save({"params": {"conv1.weight": torch.zeros(50, 1, 7, 7)}}, ckpt)   # passes the checks
    cfg = load_config(tiny_config(tmp_path, image_folder, 'name = "swapped"', tables=pyiqa_tables(ckpt)))
    ckpt.write_bytes(evil.read_bytes())                 # replaced between validate and run
    run_dir = tmp_path / "runs" / "swapped"
    assert Runner(cfg, run_dir, progress=False).run() == 1
    assert not marker.exists()
    errors = " ".join(json.loads(p.read_text())["error"] for p in (run_dir / "errors").glob("*.json"))
    assert str(ckpt) in errors and "pretrained_model_path" in errors and "weights_only=True" in errors


def test_crafted_checkpoint_through_options_and_other_loaders_runs_no_code(tmp_path):
    from benchmark.metrics.checkpoints import CheckpointError
    from benchmark.metrics.pyiqa_adapter import PyIQAMetric

    marker, files = crafted_checkpoints(tmp_path)
    for evil in files:
        with pytest.raises(CheckpointError, match="options.pretrained_model_path"):
            PyIQAMetric("cnniqa", options={"pretrained_model_path": str(evil)})
        # every other loader of the project reads with weights_only=True: refused, no code run
        from benchmark.defenses.dncnn import DnCNNPurifier
        from benchmark.metrics.cnniqa import CNNIQA
        from benchmark.metrics.torch_model import TorchModuleMetric

        for build in (lambda: CNNIQA(weights=evil), lambda: DnCNNPurifier(weights=evil),
                      lambda: TorchModuleMetric("torch.nn:Identity", score_range=(0, 1), weights=evil)):
            with pytest.raises(Exception):
                build()
        assert not marker.exists()


def test_crafted_checkpoints_as_any_metric_weights_are_refused_at_validate_and_run_no_code(tmp_path, image_folder,
                                                                                           capsys):
    """Issue 25.2: garbage, a text file or a pickle with a payload as the weights of default, cnniqa, linearity or
    torch_module: exit 2 before any work (the run directory is never made), the file named, never "not found"."""
    marker, files = crafted_checkpoints(tmp_path)
    (tmp_path / "garbage.pt").write_bytes(os.urandom(64))
    (tmp_path / "text.pt").write_text("root:x:0:0:root:/root:/bin/bash\n")
    files += [tmp_path / "garbage.pt", tmp_path / "text.pt"]
    for metric in ("name = \"default\"", "name = \"cnniqa\"", "name = \"linearity\"",
                   "name = \"torch_module\"\nfactory = \"torch.nn:Identity\"\nscore_range = [0, 1]"):
        tables = "".join(f'[[metrics]]\n{metric}\nweights = "{f.name}"\nlabel = "m{i}"\n' for i, f in enumerate(files))
        cfg = tiny_config(tmp_path, image_folder, 'name = "crafted"', tables=tables + '[[attacks]]\nname = "fgsm"\n'
                          'adaptive = false\n[[defenses]]\nname = "identity"\n')
        for argv in (["validate", str(cfg)], ["run", str(cfg), "--no-progress"]):
            assert main(argv) == 2
            lines = capsys.readouterr().err.splitlines()
            assert len(lines) == len(files), (metric, lines)
            for i, f in enumerate(files):
                assert f"key 'metrics[{i}].weights'" in lines[i] and f.name in lines[i], lines[i]
                assert "not found" not in lines[i] and "Traceback" not in lines[i]
        assert not marker.exists() and not (tmp_path / "runs").exists()


def test_matlab_parameter_files_still_reach_pyiqa(tmp_path):
    from scipy.io import savemat

    from benchmark.metrics.pyiqa_adapter import check_weights_file

    mat = tmp_path / "params.mat"
    savemat(mat, {"mu_prisparam": np.zeros((1, 36))})
    check_weights_file(mat, "pyiqa metric 'niqe'")        # passes: scipy reads it, no pickle involved
    good = tmp_path / "good.pth"
    torch.save({"params": {"w": torch.ones(3)}}, good)
    for full in (True, False):
        check_weights_file(good, "pyiqa metric 'cnniqa'", full=full)


def test_quick_scan_for_validation_refuses_crafted_files(tmp_path):
    from benchmark.metrics.checkpoints import CheckpointError
    from benchmark.metrics.pyiqa_adapter import check_weights_file

    marker, (zipped, legacy) = crafted_checkpoints(tmp_path)
    with pytest.raises(CheckpointError, match=r"evil.pth is not a plain weights file: unpickling it would call "
                                              r"(builtins|io)\.open"):
        check_weights_file(zipped, "pyiqa metric 'cnniqa'", full=False)
    with pytest.raises(CheckpointError, match="evil-legacy.pth"):      # not a zip: a full safe load decides
        check_weights_file(legacy, "pyiqa metric 'cnniqa'", full=False)
    assert not marker.exists()


# -- file modes ------------------------------------------------------------------------------------
def test_written_files_follow_the_umask_like_open(tmp_path, image_folder):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "x.txt", "hello")
        assert stat.S_IMODE((tmp_path / "x.txt").stat().st_mode) == 0o644
        cfg = tiny_config(tmp_path, image_folder, 'name = "modes"')
        assert main(["run", str(cfg), "--no-progress"]) == 0
        files = [p for p in (tmp_path / "runs" / "modes").rglob("*") if p.is_file() and p.name != ".lock"]
        assert len(files) >= 8
        assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files if stat.S_IMODE(p.stat().st_mode) != 0o644} == {}
        os.umask(0o077)
        atomic_write_text(tmp_path / "private.txt", "secret")
        assert stat.S_IMODE((tmp_path / "private.txt").stat().st_mode) == 0o600
    finally:
        os.umask(old)


# -- datasets: paths that escape, repeated rows, 16-bit colour --------------------------------------
def write_csv(path: Path, rows: list[tuple[str, float]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "mos"])
        w.writerows(rows)
    return path


def test_mos_csv_cannot_reach_outside_the_dataset_folder(tmp_path, image_folder):
    from benchmark.datasets.folder import ImageFolder

    secret = tmp_path / "secret.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(secret)
    (image_folder / "link.png").symlink_to(secret)
    for bad in ("../secret.png", str(secret), "link.png"):
        table = write_csv(tmp_path / "mos.csv", [("img00.png", 50.0), (bad, 60.0)])
        with pytest.raises(DataError, match=r"mos.csv, line 3: image .* lies outside the dataset folder"):
            ImageFolder(root=image_folder, mos_csv=table)
    with pytest.raises(DataError, match="link.png is a symbolic link out of the dataset folder"):
        ImageFolder(root=image_folder)
    (image_folder / "link.png").unlink()
    (image_folder / "inner.png").symlink_to(image_folder / "img01.png")   # a link inside the folder is fine
    assert "inner.png" in ImageFolder(root=image_folder).ids()


def test_score_table_of_a_database_cannot_reach_outside(tmp_path):
    from benchmark.datasets.kadid import KADID10k

    root = tmp_path / "kadid"
    (root / "images").mkdir(parents=True)
    for n in ("I01_01_01.png", "I02_01_01.png"):
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(root / "images" / n)
    rows = ["dist_img,ref_img,dmos", "I01_01_01.png,I01.png,3.5", "../../outside.png,I02.png,2.0"]
    (root / "dmos.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"dmos.csv, line 3: image '../../outside.png' lies outside"):
        KADID10k(root=root)
    (root / "dmos.csv").write_text("\n".join(rows[:2] + ["I01_01_01.png,I01.png,4.0"]) + "\n")
    with pytest.raises(DataError, match=r"line 3: image 'I01_01_01.png' is listed again \(first on line 2\)"):
        KADID10k(root=root)


def test_repeated_mos_row_is_an_error_naming_the_image(tmp_path, image_folder):
    from benchmark.datasets.folder import ImageFolder

    table = write_csv(tmp_path / "dup.csv", [("img00.png", 50.0), ("img01.png", 40.0), ("img00.png", 70.0)])
    with pytest.raises(DataError, match=r"dup.csv, line 4: image 'img00.png' is listed again \(first on line 2\)"):
        ImageFolder(root=image_folder, mos_csv=table)


def test_16bit_colour_png_is_rounded_not_truncated(tmp_path):
    import cv2

    from benchmark.images import read_image

    rgb = np.zeros((40, 40, 3), np.uint16)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 51528, 257 * 7 + 128, 65535     # R, G, B
    path = tmp_path / "deep-rgb.png"
    assert cv2.imwrite(str(path), rgb[..., ::-1])                            # OpenCV writes BGR
    with Image.open(path) as im:
        assert np.asarray(im.convert("RGB"))[0, 0, 0] == 201                 # what Pillow alone gives
    assert read_image(path)[0, 0].tolist() == [200, 7, 255]                  # round(51528/257) = 200
    rgba = np.dstack([rgb, np.full((40, 40), 65535, np.uint16)])
    assert cv2.imwrite(str(tmp_path / "deep-rgba.png"), rgba[..., [2, 1, 0, 3]])
    assert read_image(tmp_path / "deep-rgba.png")[0, 0].tolist() == [200, 7, 255]


# -- labels in written tables ----------------------------------------------------------------------
def test_labels_are_inert_in_markdown_and_csv(tmp_path, image_folder):
    cfg = tiny_config(tmp_path, image_folder, 'name = "labels"', tables="""
[[metrics]]
name = "default"
label = "=HYPERLINK(\\"http://x\\")"
[[attacks]]
name = "fgsm"
label = "<img src=x onerror=alert(1)>"
[[defenses]]
name = "identity"
label = "@SUM(A1) | ![t](http://track/p.png)"
""")
    assert main(["run", str(cfg), "--no-progress"]) == 0
    run = tmp_path / "runs" / "labels"
    md = (run / "summary.md").read_text()
    assert "<img" not in md and "&lt;img src=x onerror=alert(1)&gt;" in md
    assert "![t](" not in md and "!\\[t](" in md and "\\|" in md
    for name in ("summary.csv", "records.csv"):
        df = pd.read_csv(run / name)
        assert df["metric"].iloc[0] == "'=HYPERLINK(\"http://x\")" and df["defense"].iloc[0].startswith("'@SUM")
        assert df["attack"].iloc[0] == "<img src=x onerror=alert(1)>"      # not formula-like: as written
        assert pd.api.types.is_float_dtype(df["score"] if "score" in df else df["abs_gain"])
    rec = pd.read_csv(run / "records.csv")
    assert (rec["score_adv"] - rec["score"]).abs().max() > 0                # numbers are numbers


def test_negative_numbers_stay_numbers_in_csv():
    from benchmark.reports.tables import csv_text

    df = pd.DataFrame({"label": ["-x", "+y", "ok", "\tz"], "value": [-1.5, 2.0, -3.0, 0.0]})
    back = pd.read_csv(__import__("io").StringIO(csv_text(df)))
    assert back["label"].tolist() == ["'-x", "'+y", "ok", "'\tz"] and back["value"].tolist() == [-1.5, 2.0, -3.0, 0.0]


# -- resume of a finished run ------------------------------------------------------------------------
def test_resume_of_a_finished_run_loads_no_data_and_builds_no_model(tmp_path, image_folder, monkeypatch):
    from benchmark.datasets.folder import ImageFolder
    from benchmark.metrics.default_model import DefaultModel

    cfg = tiny_config(tmp_path, image_folder, 'name = "done"')
    assert main(["run", str(cfg), "--no-progress"]) == 0
    run = tmp_path / "runs" / "done"
    stages = {p: p.stat().st_mtime_ns for p in (run / "stages").rglob("*")}
    skipped = (run / "skipped.json").read_text()

    def refuse(*a, **k):
        raise AssertionError("a finished run was resumed by loading its data or building its model")

    cfg_obj = load_config(cfg)      # validation may build attacks and defenses; the resume must do no more
    monkeypatch.setattr(ImageFolder, "__init__", refuse)
    monkeypatch.setattr(DefaultModel, "__init__", refuse)
    from benchmark.runner import Runner

    assert Runner(cfg_obj, run, progress=False).run() == 0
    assert {p: p.stat().st_mtime_ns for p in (run / "stages").rglob("*")} == stages
    assert (run / "skipped.json").read_text() == skipped
