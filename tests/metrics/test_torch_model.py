"""A user's own torch model as a metric: TorchScript and module+weights, attacked through the harness."""
from __future__ import annotations

import sys

import pytest
import torch

from benchmark.attacks.pgd import PGD
from benchmark.errors import ConfigError, MissingWeightsError
from benchmark.metrics.torch_model import TorchModuleMetric, TorchScriptMetric

from helpers.images import batch


class TinyIQA(torch.nn.Module):
    def __init__(self, width: int = 8):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, width, 3)
        self.head = torch.nn.Linear(width, 1)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))  # B×1


def test_torchscript_and_module_metrics_agree_and_can_be_attacked(tmp_path, monkeypatch):
    torch.manual_seed(0)
    net = TinyIQA(width=8)
    torch.jit.save(torch.jit.script(net), tmp_path / "tiny.pt")
    torch.save(net.state_dict(), tmp_path / "tiny_state.pt")
    monkeypatch.setitem(sys.modules, "user_models", sys.modules[__name__])
    ts = TorchScriptMetric(path=tmp_path / "tiny.pt", score_range=(-1.0, 1.0))
    mod = TorchModuleMetric(factory="user_models:TinyIQA", kwargs={"width": 8}, weights=tmp_path / "tiny_state.pt",
                            score_range=(-1.0, 1.0))
    x = batch(2)
    with torch.no_grad():
        assert torch.allclose(ts(x), mod(x)) and ts(x).shape == (2,)
    for p in mod.parameters():
        p.requires_grad_(False)
    x_adv = PGD(eps=4 / 255, steps=3)(mod, x, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (mod(x_adv) > mod(x)).all()


def test_errors_name_the_file_or_factory(tmp_path):
    with pytest.raises(MissingWeightsError, match="absent.pt"):
        TorchScriptMetric(path=tmp_path / "absent.pt", score_range=(0.0, 1.0))
    with pytest.raises(ConfigError, match="package.module:Class"):
        TorchModuleMetric(factory="nocolon", score_range=(0.0, 1.0))
    with pytest.raises(ConfigError, match="cannot import"):
        TorchModuleMetric(factory="no_such_pkg.x:Y", score_range=(0.0, 1.0))
