"""The disco purifier: DISCO's local implicit function against LIIF's own modules (a verbatim copy,
tests/defenses/reference/liif_reference.py; DISCO is LIIF with a choice of unfold kernel, 3 by default) run as
Guardians' ``inr.INR`` runs it, from a checkpoint in the official ``{'model': {'name', 'args', 'sd'}}`` layout;
batching and query chunks; refused and missing files."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import benchmark.defenses.disco as plugin
from benchmark.defenses.disco import FILE, URL, DISCOPurifier
from benchmark.errors import ConfigError, MissingWeightsError

sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))
from purifier_common import import_reference, one_thread, shapes_of, validate_exit

single_thread = pytest.fixture(scope="module", autouse=True)(one_thread)

# LIIF's train_edsr-baseline-liif.yaml, DISCO's default model
SPEC = {"name": "liif", "args": {"encoder_spec": {"name": "edsr-baseline", "args": {"no_upsampling": True}},
                                 "imnet_spec": {"name": "mlp", "args": {"out_dim": 3,
                                                                        "hidden_list": [256, 256, 256, 256]}}}}


@pytest.fixture(scope="module")
def official():
    """LIIF's module with its own (seeded) initialisation, and a checkpoint of it in DISCO's layout."""
    liif = import_reference("liif_reference")
    torch.manual_seed(0)
    model = liif.make(SPEC).eval()
    return liif, model


def write(path: Path, model: torch.nn.Module, spec: dict = SPEC) -> Path:
    torch.save({"model": {**spec, "sd": model.state_dict()}, "epoch": 100}, path)  # DISCO's train script layout
    return path


def inr_forward(liif, model, x: torch.Tensor) -> torch.Tensor:
    """Guardians' ``INR.forward`` (robustbench/model_zoo/defense/inr.py) at the input's own size."""
    h, w = x.shape[-2:]
    coord = liif.make_coord((h, w))
    cell = torch.ones_like(coord)
    cell[:, 0] *= 2 / h
    cell[:, 1] *= 2 / w
    outs = []
    for img in x:
        model.gen_feat((img.unsqueeze(0) - 0.5) / 0.5)
        pred = model.query_rgb(coord.unsqueeze(0), cell.unsqueeze(0))[0]
        outs.append((pred * 0.5 + 0.5).clamp(0, 1).view(h, w, 3).permute(2, 0, 1))
    return torch.stack(outs)


def test_equals_liif_run_as_guardians_runs_it(tmp_path, official, monkeypatch):
    liif, model = official
    defense = DISCOPurifier(write(tmp_path / FILE, model))
    assert shapes_of(defense.net) == shapes_of(model) and list(defense.net.state_dict()) == list(model.state_dict())
    assert defense.differentiable and not defense.stochastic
    x = torch.rand(2, 3, 20, 28, generator=torch.Generator().manual_seed(1))
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)  # liif.py puts a grid on the GPU
    with torch.no_grad():
        want = inr_forward(liif, model, x)
        got = defense(x)
    assert got.shape == x.shape
    assert (got - want).abs().max() < 1e-5 and (want - x).abs().mean() > 0.01


def test_batches_and_query_chunks_do_not_change_the_output(tmp_path, official, monkeypatch):
    _, model = official
    defense = DISCOPurifier(write(tmp_path / FILE, model))
    x = torch.rand(3, 3, 16, 12, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = defense(x)
        monkeypatch.setattr(plugin, "QUERIES", 150)  # 50 queries a chunk for 3 images
        assert torch.allclose(defense(x), whole, atol=1e-6)
        assert torch.allclose(defense(x[1:2]), whole[1:2], atol=1e-6)
    xg = x[:1].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(defense(xg).sum(), xg)
    assert g.abs().sum() > 0


def test_foreign_and_oversized_checkpoints_are_refused(tmp_path, official):
    _, model = official
    wrong = write(tmp_path / "rdn.pth", model, {"name": "liif", "args": {"encoder_spec": {"name": "rdn", "args": {}}}})
    with pytest.raises(ConfigError, match="rdn.pth.*encoder"):
        DISCOPurifier(wrong)
    huge = {"name": "liif", "args": {**SPEC["args"], "encoder_spec": {"name": "edsr-baseline",
                                                                      "args": {"n_feats": 10**6}}}}
    with pytest.raises(ConfigError, match="out of bounds"):
        DISCOPurifier(write(tmp_path / "huge.pth", model, huge))
    plain = tmp_path / "plain.pth"
    torch.save(model.state_dict(), plain)
    with pytest.raises(ConfigError, match="plain.pth.*not a DISCO"):
        DISCOPurifier(plain)


def test_a_missing_file_names_it_and_the_release(tmp_path, capsys):
    with pytest.raises(MissingWeightsError, match=FILE) as exc:
        DISCOPurifier(tmp_path / FILE)
    assert URL in str(exc.value)
    code, err = validate_exit(tmp_path, capsys, "disco", tmp_path / FILE)
    assert code == 2 and FILE in err and URL in err and "defenses[0].weights" in err
