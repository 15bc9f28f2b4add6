"""The denoiser training command: inputs (noise, adversarial, both), losses, photographs, checkpoints."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from benchmark.training.denoiser import consistency_loss, make_inputs, ranking_loss
from benchmark.training.trainset import training_photos
from benchmark.metrics.default_model import DefaultModel

from helpers.images import batch, frozen


def test_inputs_noise_adversarial_and_both():
    model = frozen(DefaultModel())
    x = batch(4)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    noisy = make_inputs(x, model, "noise", 0.1, 4 / 255, gen())
    adv = make_inputs(x, model, "adversarial", 0.1, 4 / 255, gen())
    both = make_inputs(x, model, "both", 0.1, 4 / 255, gen())
    assert (noisy - x).abs().max() > 0.2                       # Gaussian noise, sigma 0.1
    assert (adv - x).abs().max() <= 4 / 255 + 1e-6             # a PGD example within its budget
    with torch.no_grad():
        assert (model(adv) > model(x)).all()
    per_image = (both - x).flatten(1).abs().amax(1)
    assert ((per_image <= 4 / 255 + 1e-6) | (per_image > 0.2)).all()


def test_ranking_loss_prefers_the_target_order():
    targets = torch.tensor([1.0, 2.0, 3.0])
    right, wrong = torch.tensor([10.0, 20.0, 30.0]), torch.tensor([30.0, 20.0, 10.0])
    assert ranking_loss(right, targets, sign=1, scale=100.0) < ranking_loss(wrong, targets, sign=1, scale=100.0)
    # a lower-is-better metric should order the other way
    assert ranking_loss(wrong, targets, sign=-1, scale=100.0) < ranking_loss(right, targets, sign=-1, scale=100.0)
    assert float(ranking_loss(torch.ones(3), torch.ones(3), 1, 1.0)) == 0.0


def test_consistency_loss_is_the_spread_between_draws():
    same = torch.tensor([50.0, 60.0, 50.0, 60.0])            # two draws of two images, identical
    assert float(consistency_loss(same, draws=2, scale=100.0)) == 0.0
    apart = torch.tensor([50.0, 60.0, 52.0, 60.0])           # image 0 differs by 2 points between draws
    # unbiased variance per image, (score / r · 100)²: image 0 -> 2, image 1 -> 0, mean 1
    assert abs(float(consistency_loss(apart, draws=2, scale=100.0)) - 1.0) < 1e-6
    assert float(consistency_loss(apart, draws=1, scale=100.0)) == 0.0


def test_training_photos_add_folders_and_refuse_test_photographs(tmp_path):
    from PIL import Image

    good = tmp_path / "refs"
    good.mkdir()
    Image.fromarray(np.full((80, 90, 3), 128, np.uint8)).save(good / "wall.png")
    photos = training_photos([good])
    assert "refs/wall" in photos and photos["refs/wall"].shape == (80, 90, 3)
    assert "camera" in photos and "astronaut" not in photos    # train photographs only
    Image.fromarray(np.zeros((80, 90, 3), np.uint8)).save(good / "astronaut.png")
    with pytest.raises(SystemExit, match="astronaut.png"):
        training_photos([good])
    with pytest.raises(SystemExit, match="no images found"):
        training_photos([tmp_path / "missing"])


def test_training_writes_a_loadable_checkpoint_and_reuses_its_labels(tmp_path, monkeypatch, caplog):
    import benchmark.photos as photos
    from benchmark.defenses.denoiser import load_denoiser
    from benchmark.training.denoiser import main

    monkeypatch.setattr(photos, "TRAIN_PHOTOS", ("camera",))     # one photograph keeps labelling short
    out = tmp_path / "den.pt"
    argv = ["--epochs", "1", "--size", "64", "--crop", "48", "--draws", "2", "--consistency-weight", "0.01",
            "--score-weight", "0.1", "--depth", "3", "--channels", "8", "--out", str(out)]
    assert main(argv) == 0
    model, config = load_denoiser(out)                              # weights_only load: plain types
    assert config["epochs_done"] == 1 and config["draws"] == 2 and config["photos"] == []
    assert (model.depth, model.channels) == (3, 8)
    assert len(list(tmp_path.glob("trainset-*.pt"))) == 1
    caplog.set_level(logging.INFO, logger="benchmark.training")
    assert main(argv[:-1] + [str(tmp_path / "again.pt")]) == 0
    assert "labelled training set from" in caplog.text
    with pytest.raises(SystemExit):
        main(["--consistency-weight", "1", "--out", str(out)])       # needs two draws
