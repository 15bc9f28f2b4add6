"""``validate`` (and ``run``, before any work) reports every error of a config at once, one line each, exit 2,
nothing written (issue #25, items 1-5): checkpoints opened safely and checked against the architecture, pyiqa
weight files located, dataset folders listed and MOS tables parsed, bounds derived from the operations, and
the command line's own arguments and exits."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmark.cli import main

from conftest import ROOT, tiny_images, write_config

REST = '[[attacks]]\nname = "fgsm"\nadaptive = false\n[[defenses]]\nname = "identity"\n'


class _Payload:
    """Unpickled without restriction, this creates ``marker``: proof that a checkpoint ran code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines and all(line.startswith("error: ") for line in lines), err
    assert "Traceback" not in err
    return lines


def line_for(lines: list[str], key: str) -> str:
    found = [line for line in lines if f"key '{key}'" in line]
    assert len(found) >= 1, (key, lines)
    return found[0]


def image_dir(path: Path, n: int = 3) -> Path:
    from PIL import Image

    path.mkdir()
    for name, arr, _ in tiny_images(n, 64):
        Image.fromarray(arr).save(path / name)
    return path


def header(tmp_path: Path, name: str = "all") -> str:
    return f'[run]\nname = "{name}"\noutput_dir = "{tmp_path / "runs"}"\nimage_size = 64\n'


# -- items 1-4: one config, every error -------------------------------------------------------------------
def test_one_config_lists_every_error_of_data_checkpoints_and_bounds_and_writes_nothing(tmp_path, capsys,
                                                                                      monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    from benchmark.metrics.zoo import weight_file

    musiq_status, musiq_file = weight_file(DEFAULT_CONFIGS["musiq"])
    (tmp_path / "empty").mkdir()
    imgs = image_dir(tmp_path / "imgs")
    (imgs / "mos.csv").write_text("image,mos\nimg00.png,3\nimg00.png,4\nimg01.png,nan\nimg02.png,\n"
                                  "absent.png,2\nimg01.png,abc\n")
    marker = tmp_path / "CODE-RAN"
    torch.save({"conv1.weight": _Payload(marker)}, tmp_path / "payload.pt")
    (tmp_path / "garbage.pt").write_bytes(b"\x00garbage, not a checkpoint")
    (tmp_path / "passwd.pt").write_text("root:x:0:0:root:/root:/bin/bash\n")
    torch.save({"model": {"fc.weight": torch.zeros(2)}, "k": [1.0], "b": [0.0]}, tmp_path / "wrong_keys.pth")
    torch.save({"conv1.weight": torch.zeros(3, 3)}, tmp_path / "small.pt")
    cfg = write_config(tmp_path, header(tmp_path) + """
[[datasets]]
name = "folder"
root = "empty"
[[datasets]]
name = "folder"
root = "imgs"
mos_csv = "imgs/mos.csv"
[[metrics]]
name = "default"
weights = "garbage.pt"
[[metrics]]
name = "cnniqa"
weights = "passwd.pt"
[[metrics]]
name = "cnniqa"
weights = "payload.pt"
label = "c2"
[[metrics]]
name = "cnniqa"
weights = "small.pt"
label = "c3"
[[metrics]]
name = "linearity"
weights = "p1q2.pth"
[[metrics]]
name = "linearity"
weights = "wrong_keys.pth"
[[metrics]]
name = "torchscript"
path = "garbage.pt"
score_range = [0, 1]
[[metrics]]
name = "torch_module"
factory = "torch.nn:Identity"
weights = "payload.pt"
score_range = [0, 1]
[[metrics]]
name = "torch_module"
factory = "builtins:int"
score_range = [0, 1]
label = "not a module"
[[metrics]]
name = "pyiqa"
metric = "musiq"
[[metrics]]
name = "pyiqa"
metric = "cnniqa"
options = {n_kers = 50, bogus = 1}
[[attacks]]
name = "fgsm"
adaptive = false
[[defenses]]
name = "gaussian_blur"
sigma = 1e-300
[[defenses]]
name = "unsharp"
sigma = 1e-300
[[defenses]]
name = "bilateral"
sigma_color = 1e-300
""")
    for argv in (["validate", str(cfg)], ["run", str(cfg), "--no-progress"]):
        assert main(argv) == 2
        lines = error_lines(capsys)
        assert "no images found in" in line_for(lines, "datasets[0].root")
        csv_lines = [line for line in lines if "key 'datasets[1].mos_csv'" in line]
        assert len(csv_lines) == 5, csv_lines          # every row's problem, one line each
        for text in ("line 3: image 'img00.png' is listed again", "line 6: image 'absent.png' is absent",
                     "line 7: image 'img01.png' is listed again", "line 4: MOS 'nan' of 'img01.png' is not a finite",
                     "line 5: MOS '' of 'img02.png' is empty"):
            assert sum(text in line for line in csv_lines) == 1, (text, csv_lines)
        assert "garbage.pt is not a readable torch checkpoint" in line_for(lines, "metrics[0].weights")
        passwd = line_for(lines, "metrics[1].weights")
        assert "passwd.pt is not a readable torch checkpoint" in passwd and "not found" not in passwd
        assert "payload.pt pickles Python objects" in line_for(lines, "metrics[2].weights")
        assert "size mismatch for conv1.weight" in line_for(lines, "metrics[3]")   # checked against the network
        release = line_for(lines, "metrics[4].weights")
        assert "no such file or folder" in release and "github.com/lidq92/LinearityIQA" in release
        assert "does not match the official architecture: missing keys" in line_for(lines, "metrics[5].weights")
        assert "is not a TorchScript file" in line_for(lines, "metrics[6].path")
        assert "payload.pt pickles Python objects" in line_for(lines, "metrics[7].weights")
        assert "must be a torch.nn.Module (its factory or file gave a int)" in line_for(lines, "metrics[8].factory")
        if musiq_status == "missing":  # pyiqa's own message: the URL and where to put the file
            musiq = line_for(lines, "metrics[9].metric")
            assert f"weights file not found: {musiq_file}" in musiq and "download https://" in musiq
        assert "unknown option ['bogus'] for pyiqa metric 'cnniqa'" in line_for(lines, "metrics[10].options.bogus")
        assert "sigma must be at least 0.1734" in line_for(lines, "defenses[0].sigma")
        assert "sigma must be at least 0.1734" in line_for(lines, "defenses[1].sigma")
        assert "sigma_color must be at least 3.833e-20" in line_for(lines, "defenses[2].sigma_color")
    assert not marker.exists()                          # no checkpoint ran code
    assert not (tmp_path / "runs").exists()            # nothing written


def test_run_level_errors_are_listed_with_the_rest(tmp_path, capsys):
    plugin = tmp_path / "exits.py"
    plugin.write_text("import sys\nsys.exit(7)\n")
    cfg = write_config(tmp_path, """
[run]
name = "   "
output_dir = "runs\\u0000x"
batch_size = 0
plugins = ["exits.py"]
[[datasets]]
name = "synthetic"
limit = 0
[[metrics]]
name = "default"
[[attacks]]
name = "pgd"
eps = nan
steps = "ten"
[[defenses]]
name = "median"
kernel = 4
""")
    assert main(["validate", str(cfg)]) == 2            # not 7: a plugin does not decide the exit status
    lines = error_lines(capsys)
    assert "run name '   ' must not be blank" in line_for(lines, "run.name")
    assert "must not contain a NUL character" in line_for(lines, "run.output_dir")
    assert "expected a positive integer, got 0" in line_for(lines, "run.batch_size")
    assert f"plugin file {plugin} called sys.exit(7)" in line_for(lines, "run.plugins")
    assert "limit" in line_for(lines, "datasets[0].limit")
    assert "expected a finite number, got nan" in line_for(lines, "attacks[0].eps")
    assert "expected an integer" in line_for(lines, "attacks[0].steps")
    assert "kernel must be an odd integer" in line_for(lines, "defenses[0].kernel")
    assert len(lines) == 8, lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exits.py", "matrix.toml"]


def test_a_blank_name_or_a_name_with_outer_spaces_is_refused(tmp_path, capsys):
    for name in ("   ", " run", "run\u3000"):
        cfg = write_config(tmp_path, f'[run]\nname = "{name}"\n[[datasets]]\nname = "synthetic"\n'
                                     '[[metrics]]\nname = "default"\n' + REST)
        assert main(["validate", str(cfg)]) == 2
        assert "key 'run.name'" in error_lines(capsys)[0]


# -- item 3: MOS tables ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "", "abc"])
def test_an_unusable_mos_is_an_error_or_with_drop_bad_mos_a_warning_naming_the_image(tmp_path, capsys, caplog, bad):
    imgs = image_dir(tmp_path / "imgs")
    (imgs / "mos.csv").write_text(f"image,mos\nimg00.png,3\nimg01.png,{bad}\nimg02.png,4\n")
    body = header(tmp_path) + '[[datasets]]\nname = "folder"\nroot = "imgs"\nmos_csv = "imgs/mos.csv"\n{drop}' \
        '[[metrics]]\nname = "default"\n' + REST
    cfg = write_config(tmp_path, body.format(drop=""))
    assert main(["validate", str(cfg)]) == 2
    (line,) = error_lines(capsys)
    assert "key 'datasets[0].mos_csv'" in line and "line 3: MOS" in line and "'img01.png'" in line
    assert "drop_bad_mos = true" in line
    cfg = write_config(tmp_path, body.format(drop="drop_bad_mos = true\n"))
    assert main(["validate", str(cfg)]) == 0
    assert "valid;" in capsys.readouterr().out
    warned = [r.getMessage() for r in caplog.records if "drop_bad_mos" in r.getMessage()]
    assert warned and "img01.png" in warned[-1] and "1 image(s) left out" in warned[-1]
    from benchmark.datasets.folder import ImageFolder

    ds = ImageFolder(imgs, mos_csv=imgs / "mos.csv", drop_bad_mos=True)
    assert ds.ids() == ["img00.png", "img02.png"] and ds.mos == {"img00.png": 3.0, "img02.png": 4.0}


def test_a_database_table_lists_every_bad_row(tmp_path, caplog):
    """KADID-10k's layout (dmos.csv + images/): repeats, absent images, bad MOS, all in one error."""
    from benchmark.datasets.kadid import KADID10k
    from benchmark.errors import DataErrors

    root = tmp_path / "kadid"
    root.mkdir()
    image_dir(root / "images", 4)
    rows = ["img00.png,r1,3.5", "img01.png,r1,nan", "img00.png,r2,2", "gone.png,r2,4", "img02.png,r3,x",
            "img03.png,r3,4.5"]
    (root / "dmos.csv").write_text("dist_img,ref_img,dmos,var\n" + "".join(r + ",0.1\n" for r in rows))
    with pytest.raises(DataErrors) as err:
        KADID10k(root)
    text = [str(e) for e in err.value.errors]
    assert len(text) == 4, text
    assert any("line 4: image 'img00.png' is listed again" in t for t in text)
    assert any("line 5: image 'gone.png' is absent" in t for t in text)
    assert any("line 3: MOS 'nan' of 'img01.png' is not a finite number" in t for t in text)
    assert any("line 6: MOS 'x' of 'img02.png' is not a finite number" in t for t in text)
    rows = [r for r in rows if "gone" not in r and r != "img00.png,r2,2"]
    (root / "dmos.csv").write_text("dist_img,ref_img,dmos,var\n" + "".join(r + ",0.1\n" for r in rows))
    ds = KADID10k(root, drop_bad_mos=True)
    assert sorted(ds.ids()) == ["img00.png", "img03.png"]
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "'img01.png'" in warned and "'img02.png'" in warned


def test_an_empty_dataset_folder_fails_validate(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    cfg = write_config(tmp_path, header(tmp_path) + '[[datasets]]\nname = "folder"\nroot = "empty"\n'
                       '[[metrics]]\nname = "default"\n' + REST)
    assert main(["validate", str(cfg)]) == 2
    (line,) = error_lines(capsys)
    assert "key 'datasets[0].root'" in line and "no images found" in line


# -- item 5: devices, FIFOs, pipes, exits ------------------------------------------------------------------
def test_a_device_or_a_fifo_is_refused_without_being_called_a_folder(tmp_path, capsys):
    imgs = image_dir(tmp_path / "imgs")
    fifo = tmp_path / "mos.fifo"
    os.mkfifo(fifo)
    cfg = write_config(tmp_path, header(tmp_path) + f"""
[[datasets]]
name = "folder"
root = "imgs"
mos_csv = "{fifo}"
[[metrics]]
name = "cnniqa"
weights = "/dev/zero"
[[metrics]]
name = "default"
weights = "{fifo}"
""" + REST)
    assert main(["validate", str(cfg)]) == 2          # returns: the FIFO is never opened (that would block)
    lines = error_lines(capsys)
    assert len(lines) == 3, lines
    assert "/dev/zero is a character device" in line_for(lines, "metrics[0].weights")
    assert "mos.fifo is a named pipe (FIFO)" in line_for(lines, "datasets[0].mos_csv")
    assert "mos.fifo is a named pipe (FIFO)" in line_for(lines, "metrics[1].weights")
    assert not any("got the folder" in line or "a folder" in line for line in lines)
    assert imgs.is_dir()


def test_calibrate_refuses_a_target_above_1_in_one_line(tmp_path, capsys):
    cfg = write_config(tmp_path, '[[datasets]]\nname = "synthetic"\n[[metrics]]\nname = "default"\n' + REST)
    for extra in (["--targets", "4"], ["--images", "0"], ["--tol", "nan"]):
        assert main(["calibrate", str(cfg), *extra]) == 2
        (line,) = error_lines(capsys)
        assert extra[0] in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["matrix.toml"]


def test_validate_into_a_closed_pipe_ends_without_a_traceback(tmp_path):
    cfg = write_config(tmp_path, '[[datasets]]\nname = "synthetic"\n[[metrics]]\nname = "default"\n'
                                 '[[attacks]]\nname = "fgsm"\neps = [' + ", ".join(f'"{k}/255"' for k in range(1, 200))
                       + ']\nadaptive = false\n[[defenses]]\nname = "identity"\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "benchmark", "validate", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path, env=env)
    proc.stdout.close()                                # `| head` that has read what it wanted
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141, err          # 128 + SIGPIPE, as a shell reports it
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err, err


def test_a_plugin_that_exits_does_not_set_the_exit_status(tmp_path):
    plugin = tmp_path / "exits.py"
    plugin.write_text("import sys\nsys.exit(7)\n")
    cfg = write_config(tmp_path, '[run]\nplugins = ["exits.py"]\n[[datasets]]\nname = "synthetic"\n'
                                 '[[metrics]]\nname = "default"\n' + REST)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "benchmark", "validate", str(cfg)], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=300)
    assert res.returncode == 2, res.stderr
    assert res.stderr == (f"error: {cfg}, key 'run.plugins': plugin file {plugin} called sys.exit(7) while being "
                          "imported; a plugin file only defines and registers classes\n")


def test_legacy_pickle_payload_as_weights_runs_no_code(tmp_path, capsys):
    marker = tmp_path / "CODE-RAN"
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(pickle.dumps({"conv1.weight": _Payload(marker)}, protocol=2))
    cfg = write_config(tmp_path, header(tmp_path) + '[[datasets]]\nname = "synthetic"\nlimit = 2\n'
                       f'[[metrics]]\nname = "default"\nweights = "{legacy.name}"\n' + REST)
    assert main(["run", str(cfg), "--no-progress"]) == 2
    line = line_for(error_lines(capsys), "metrics[0].weights")
    assert "legacy.pt" in line and "not found" not in line
    assert not marker.exists() and not (tmp_path / "runs").exists()


def test_an_optional_pyiqa_metric_without_its_weights_is_skipped_with_pyiqas_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from benchmark.metrics.zoo import weight_file
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    status, path = weight_file(DEFAULT_CONFIGS["musiq"])
    if status != "missing":
        pytest.skip(f"musiq's weights are in pyiqa's cache here ({path})")
    cfg = write_config(tmp_path, header(tmp_path) + '[[datasets]]\nname = "synthetic"\nlimit = 2\n[[metrics]]\n'
                       'name = "default"\n[[metrics]]\nname = "pyiqa"\nmetric = "musiq"\noptional = true\n' + REST)
    assert main(["validate", str(cfg)]) == 0
    out = capsys.readouterr().out
    skipped = [line for line in out.splitlines() if line.strip().startswith("skipped")]
    assert len(skipped) == 1 and "pyiqa(metric=musiq)" in skipped[0]
    assert f"weights file not found: {path}" in skipped[0] and "download https://" in skipped[0]
    assert "valid; 1 cells" in out
