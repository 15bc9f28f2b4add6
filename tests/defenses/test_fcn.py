"""The fcn purifier: the purification study's FCN filter against the study's own module (a verbatim copy,
tests/defenses/reference/fcn_reference.py) with the same weights, its checkpoint layout, training it with
``python -m benchmark.training.denoiser --arch fcn`` (and resuming), and the missing-file error."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from benchmark.defenses.fcn import FCN, FILE, URL, FCNFilter, load_fcn
from benchmark.errors import ConfigError, MissingWeightsError

sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))
from purifier_common import import_reference, one_thread, shapes_of, validate_exit

single_thread = pytest.fixture(scope="module", autouse=True)(one_thread)


def official() -> torch.nn.Module:
    """As the study's FCNDefense builds it."""
    return import_reference("fcn_reference").FCN(3, 3, 64, norm_type="instance", act_type="relu").eval()


def test_equals_the_study_s_module_with_the_same_weights():
    torch.manual_seed(0)
    ref = official()
    mine = FCN().eval()
    assert list(mine.state_dict()) == list(ref.state_dict()) and shapes_of(mine) == shapes_of(ref)
    mine.load_state_dict(ref.state_dict())
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = ref(x), mine(x)
    assert (got - want).abs().max() < 1e-6 and want.std() > 0.01


def test_the_study_s_checkpoint_loads_and_the_output_is_clamped(tmp_path):
    torch.manual_seed(0)
    ref = official()
    path = tmp_path / FILE
    torch.save({"model": ref.state_dict(), "epoch": 57}, path)     # train.py: {'model', 'epoch'}
    defense = FCNFilter(path)
    assert defense.differentiable and not defense.stochastic and not defense.net.training
    x = torch.rand(3, 3, 33, 47, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = defense(x)
        assert torch.equal(y, ref(x).clamp(0, 1))                  # FCNDefense.__call__
    assert y.shape == x.shape
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(defense(xg).sum(), xg)
    assert g.abs().sum() > 0


def test_missing_and_foreign_files_are_named(tmp_path, capsys):
    with pytest.raises(MissingWeightsError, match=FILE) as exc:
        FCNFilter(tmp_path / FILE)
    assert URL in str(exc.value) and "benchmark.training.denoiser --arch fcn" in str(exc.value)
    foreign = tmp_path / "dncnn.pt"
    torch.save({"model": {"body.0.weight": torch.zeros(3, 3, 3, 3)}}, foreign)
    with pytest.raises(ConfigError, match="dncnn.pt.*official architecture"):
        FCNFilter(foreign)
    code, err = validate_exit(tmp_path, capsys, "fcn", tmp_path / FILE)
    assert code == 2 and FILE in err and URL in err and "defenses[0].weights" in err


def test_trained_here_with_the_denoiser_trainer_and_resumed(tmp_path, monkeypatch):
    from benchmark import photos
    from benchmark.training.denoiser import main

    monkeypatch.setattr(photos, "TRAIN_PHOTOS", ("camera",))       # one photograph keeps labelling short
    out = tmp_path / "fcn.pt"
    argv = ["--arch", "fcn", "--rank-weight", "0", "--size", "48", "--batch", "4", "--sigma", "0.1",
            "--distortions", "blur", "--seed", "0", "--out", str(out)]
    assert main(argv + ["--epochs", "1"]) == 0
    model, config = load_fcn(out)
    assert config["arch"] == "fcn" and config["epochs_done"] == 1
    assert torch.load(out, weights_only=True)["epoch"] == 0         # the study's layout, 'epoch' 0-based
    before = model.conv1.weight.clone()
    assert main(argv + ["--epochs", "2", "--resume"]) == 0          # resumes at epoch 1, trains one more
    model, config = load_fcn(out)
    assert config["epochs_done"] == 2 and not torch.equal(model.conv1.weight, before)
    assert isinstance(FCNFilter(out).net, FCN)
    with pytest.raises(SystemExit) as exc:                          # --init is DnCNN's fine-tuning
        main(argv + ["--epochs", "1", "--init", str(out)])
    assert exc.value.code == 2
