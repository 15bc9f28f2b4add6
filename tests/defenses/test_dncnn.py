"""The dncnn defense (benchmark/defenses/dncnn.py) from a checkpoint of the denoiser trainer: a gradient reaches
the input, the training configuration is kept, a missing file says how to train one. Its checkpoint errors are in
test_denoiser.py."""
from __future__ import annotations

import pytest

from benchmark.errors import MissingWeightsError

from helpers.images import batch


def test_dncnn_purifier_from_a_trained_checkpoint(tmp_path):
    from benchmark.defenses.denoiser import DnCNN, save_denoiser
    from benchmark.defenses.dncnn import DnCNNPurifier

    net = DnCNN(depth=3, channels=8)
    save_denoiser(net, tmp_path / "d.pt", {"sigma": 0.1})
    d = DnCNNPurifier(weights=tmp_path / "d.pt")
    x = batch(1).requires_grad_(True)
    d(x).sum().backward()
    assert d.train_config["sigma"] == 0.1 and x.grad.abs().sum() > 0
    with pytest.raises(MissingWeightsError, match="benchmark.training.denoiser"):
        DnCNNPurifier(weights=tmp_path / "nope.pt")
