"""A missing or corrupt denoiser checkpoint, through both defenses that load one (dncnn, denoised_smoothing)
and the trainer's ``--init``: one line naming the file and the key, exit code 2, before any work."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT, folder_config

from benchmark.defenses.denoiser import DnCNN, load_denoiser, save_denoiser
from benchmark.errors import ConfigError, MissingWeightsError
from benchmark.weights import CheckpointError, check_weights_file

KEYS = {"dncnn": "weights", "denoised_smoothing": "denoiser"}


@pytest.fixture
def truncated(tmp_path):
    """A real denoiser checkpoint cut in half (a download or copy that stopped)."""
    good = tmp_path / "good.pt"
    save_denoiser(DnCNN(depth=3, channels=4), good, {"sigma": 0.12})
    data = good.read_bytes()
    bad = tmp_path / "den.pt"
    bad.write_bytes(data[: len(data) // 2])
    return bad


def run_cli(tmp_path, image_folder, defense: str, weights: str) -> subprocess.CompletedProcess:
    tables = (f'[[metrics]]\nname = "default"\n[[attacks]]\nname = "fgsm"\n[[defenses]]\nname = "{defense}"\n'
              f'{KEYS[defense]} = "{weights}"\n')
    cfg = folder_config(tmp_path, defense, image_folder, tables)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "benchmark", "run", str(cfg), "--no-progress"], check=False,
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)


@pytest.mark.parametrize("defense", ["dncnn", "denoised_smoothing"])
def test_a_truncated_denoiser_exits_2_naming_the_file_and_the_key(tmp_path, image_folder, truncated, defense):
    res = run_cli(tmp_path, image_folder, defense, "den.pt")
    assert res.returncode == 2 and res.stdout == "", res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res.stderr
    key = KEYS[defense]
    assert res.stderr.startswith(f"error: {tmp_path / defense}.toml, key 'defenses[0].{key}': defense '{defense}': "
                                 f"denoiser: {truncated} is not a readable torch checkpoint (RuntimeError: "
                                 "PytorchStreamReader failed reading zip archive: failed finding central directory); "
                                 f"train one with `python -m benchmark.training.denoiser --out {truncated}`, "
                                 f"or point '{key}' at a checkpoint it wrote"), res.stderr
    assert not (tmp_path / "runs").exists()                      # refused before any work


@pytest.mark.parametrize("defense", ["dncnn", "denoised_smoothing"])
def test_a_missing_denoiser_exits_2_naming_the_file_and_the_key(tmp_path, image_folder, defense):
    res = run_cli(tmp_path, image_folder, defense, "absent.pt")
    assert res.returncode == 2 and res.stdout == "", res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res.stderr
    assert (f"key 'defenses[0].{KEYS[defense]}': no such file or folder: {tmp_path / 'absent.pt'}"
            in res.stderr), res.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("defense", ["dncnn", "denoised_smoothing"])
def test_python_callers_get_the_same_errors_from_both_defenses(tmp_path, truncated, defense):
    from benchmark.registry import DEFENSES, load_builtin_plugins

    load_builtin_plugins()
    cls, key = DEFENSES.get(defense), KEYS[defense]
    with pytest.raises(MissingWeightsError, match=f"weights file not found: {tmp_path / 'absent.pt'}. train one "
                                                  f".*point '{key}' at a checkpoint") as err:
        cls(**{key: tmp_path / "absent.pt"})
    assert err.value.key == key and err.value.path == str(tmp_path / "absent.pt")
    with pytest.raises(ConfigError, match=f"{truncated} is not a readable torch checkpoint") as err:
        cls(**{key: truncated})
    assert err.value.key == key
    save_denoiser(DnCNN(depth=3, channels=4), truncated, {"sigma": 0.12})   # a good file loads, frozen
    defense_ = cls(**{key: truncated})
    assert not any(p.requires_grad for p in defense_.parameters())


def test_a_checkpoint_of_another_network_is_refused_naming_what_does_not_fit(tmp_path):
    ck = tmp_path / "other.pt"
    save_denoiser(DnCNN(depth=3, channels=4), ck, {})
    import torch

    data = torch.load(ck, weights_only=True)
    data["arch"]["channels"] = 8                         # declares 8 channels, holds weights for 4
    torch.save(data, ck)
    with pytest.raises(CheckpointError, match=r"other.pt is not a denoiser checkpoint written by benchmark.training."
                                              r"denoiser: its weights do not fit a DnCNN\(depth=3, channels=8\) "
                                              r"\(RuntimeError: Error\(s\) in loading state_dict.*size mismatch"):
        load_denoiser(ck)
    torch.save([1, 2], ck)
    with pytest.raises(CheckpointError, match="expected a dict with 'arch' and 'state_dict', got list"):
        load_denoiser(ck)


def test_training_with_a_corrupt_init_exits_2_before_any_work(tmp_path, truncated, capsys):
    from benchmark.training.denoiser import main

    out = tmp_path / "new.pt"
    assert main(["--epochs", "1", "--depth", "3", "--channels", "4", "--init", str(truncated), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: denoiser: {truncated} is not a readable torch checkpoint") and "'--init'" in err
    assert not out.exists() and not list(tmp_path.glob("trainset-*.pt"))   # no labelling started
    assert main(["--init", str(tmp_path / "absent.pt"), "--out", str(out)]) == 2
    assert f"weights file not found: {tmp_path / 'absent.pt'}" in capsys.readouterr().err


def test_the_pyiqa_weights_check_reads_a_truncated_file_as_corrupt(tmp_path, truncated):
    with pytest.raises(CheckpointError, match=f"{truncated} is not a readable torch checkpoint"):
        check_weights_file(truncated, "pyiqa metric 'cnniqa'")
    check_weights_file(tmp_path / "good.pt", "pyiqa metric 'cnniqa'")   # tensors mapped, not read: passes
