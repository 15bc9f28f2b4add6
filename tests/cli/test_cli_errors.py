"""The error contract of the command line (issue #11.4): a user error exits 2 with one line naming the
file and the key, before any work, with nothing written; and what ``list`` tells a user (#11.5)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from benchmark.cli import main
from benchmark.errors import ConfigError, MissingWeightsError

from conftest import ROOT, folder_config, write_config

REST = """
[[attacks]]
name = "fgsm"
[[defenses]]
name = "identity"
"""


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


def test_missing_weights_fail_validate_and_run_before_any_work(tmp_path, image_folder, capsys):
    cfg = folder_config(tmp_path, "noweights", image_folder, '[[metrics]]\nname = "cnniqa"\nweights = "absent.pt"\n'
                        + REST)
    for argv in (["validate", str(cfg)], ["run", str(cfg), "--no-progress"]):
        assert main(argv) == 2
        err = one_line_error(capsys)
        assert f"{cfg}, key 'metrics[0].weights': no such file or folder: {tmp_path / 'absent.pt'}" in err
    assert not (tmp_path / "runs").exists()


def test_validate_says_which_optional_metrics_are_skipped_and_why(tmp_path, image_folder, capsys):
    cfg = folder_config(tmp_path, "opt", image_folder, '[[metrics]]\nname = "default"\n[[metrics]]\nname = "cnniqa"\n'
                        'weights = "absent.pt"\noptional = true\n' + REST)
    assert main(["validate", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "valid; 1 cells" in out
    assert (f"skipped  metric cnniqa(weights=absent.pt) (optional): metric 'cnniqa': no such file or folder: "
            f"{tmp_path / 'absent.pt'} (named by 'metrics[1].weights')") in out
    assert not (tmp_path / "runs").exists()


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_cuda_on_a_machine_without_it_is_refused_up_front(tmp_path, image_folder, capsys, no_cuda):
    tables = '[[metrics]]\nname = "default"\n' + REST
    cfg = folder_config(tmp_path, "gpu", image_folder, tables)
    assert main(["run", str(cfg), "--device", "cuda", "--no-progress"]) == 2
    err = one_line_error(capsys)
    assert "command line, key '--device': CUDA is not available on this machine" in err
    cfg = folder_config(tmp_path, "gpu", image_folder, tables, run_extra='device = "cuda"')
    for argv in (["validate", str(cfg)], ["run", str(cfg), "--no-progress"]):
        assert main(argv) == 2
        assert f"{cfg}, key 'run.device': CUDA is not available" in one_line_error(capsys)
    assert not (tmp_path / "runs").exists()
    assert main(["validate", str(cfg), "--device", "cpu"]) == 0   # the command line wins over the file
    cfg = folder_config(tmp_path, "gpu", image_folder, tables, run_extra='device = "banana"')
    assert main(["validate", str(cfg)]) == 2
    assert "key 'run.device': 'banana' is not a device name" in one_line_error(capsys)


def test_dncnn_checkpoint_errors_name_the_key_and_the_file(tmp_path, image_folder, capsys):
    from benchmark.defenses.denoiser import DnCNN, save_denoiser
    from benchmark.defenses.dncnn import DnCNNPurifier

    missing = tmp_path / "den.pt"
    with pytest.raises(MissingWeightsError, match=f"weights file not found: {missing}.*point 'weights' at"):
        DnCNNPurifier(weights=missing)
    tables = '[[metrics]]\nname = "default"\n[[attacks]]\nname = "fgsm"\n[[defenses]]\nname = "identity"\n' \
             '[[defenses]]\nname = "dncnn"\nweights = "den.pt"\n'
    cfg = folder_config(tmp_path, "den", image_folder, tables)
    assert main(["validate", str(cfg)]) == 2
    assert f"key 'defenses[1].weights': no such file or folder: {missing}" in one_line_error(capsys)
    missing.write_text("[run]\nname = 'not a checkpoint'\n")
    with pytest.raises(ConfigError, match="den.pt is not a readable torch checkpoint") as err:
        DnCNNPurifier(weights=missing)
    assert err.value.key == "weights"
    assert main(["validate", str(cfg)]) == 2
    assert f"key 'defenses[1].weights': defense 'dncnn': denoiser: {missing} is not a readable" in one_line_error(capsys)
    torch.save({"arch": {"depth": 3}}, missing)        # a torch file, but not the trainer's checkpoint
    assert main(["validate", str(cfg)]) == 2
    assert "expected a dict with 'arch' and 'state_dict', got ['arch']" in one_line_error(capsys)
    save_denoiser(DnCNN(depth=3, channels=4), missing, {"sigma": 0.1})
    assert main(["validate", str(cfg)]) == 0
    assert "defense  dncnn(weights=den.pt)" in capsys.readouterr().out


def test_a_newline_in_a_key_stays_on_one_line(tmp_path, image_folder, capsys):
    cfg = folder_config(tmp_path, "nl", image_folder, '[[metrics]]\nname = "default"\n"bad\\nkey" = 1\n' + REST)
    assert main(["validate", str(cfg)]) == 2
    assert """key 'metrics[0]."bad\\nkey"': unknown parameter for metric 'default'""" in one_line_error(capsys)


def test_a_missing_plugin_file_on_the_command_line_is_named(tmp_path, capsys):
    assert main(["-q", "list", "attacks", "--plugins", str(tmp_path / "nope.py")]) == 2
    assert f"command line, key '--plugins': plugin file not found: {tmp_path / 'nope.py'}" in one_line_error(capsys)


def test_list_shows_the_keys_every_table_takes_and_budgets_as_fractions(capsys):
    assert main(["-q", "list", "attacks"]) == 0
    out = capsys.readouterr().out
    for key in ("label (str", "optional (bool, default false)", "adaptive (bool, default both)",
                "eot_samples (int, default 20): EOT"):
        assert key in out
    assert "eps (float, default 8/255)" in out and "alpha (float, default 1/255)" in out
    assert "0.0313725" not in out and "0.00392" not in out
    assert main(["-q", "list", "defenses", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [k["name"] for k in data["table_keys"]["defenses"]] == ["name", "label", "optional"]
    assert main(["-q", "list", "attacks", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [k["name"] for k in data["table_keys"]["attacks"]] == ["name", "label", "optional", "adaptive",
                                                                  "eot_samples"]
    fgsm = next(a for a in data["attacks"] if a["name"] == "fgsm")
    eps = next(p for p in fgsm["params"] if p["name"] == "eps")
    assert eps["default"] == pytest.approx(8 / 255) and eps["default_text"] == "8/255"


def test_as_a_user_runs_it_exit_2_one_line_no_traceback(tmp_path):
    cfg = write_config(tmp_path, '[run]\nname = "x"\n[[datasets]]\nname = "synthetic"\n[[metrics]]\nname = "default"\n'
                                 '[[attacks]]\nname = "pgd"\nalpha = nan\n[[defenses]]\nname = "identity"\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "benchmark", "validate", str(cfg)], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=300)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr == f"error: {cfg}, key 'attacks[0].alpha': expected a finite number, got nan\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["matrix.toml"]
