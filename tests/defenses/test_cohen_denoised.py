"""cohen_smoothing with a denoiser (denoised smoothing over score bins): the denoiser runs between the noise and
the metric, an identity denoiser changes nothing, and a missing checkpoint is an error naming the file."""
from __future__ import annotations

import logging

import pytest
import torch
from conftest import folder_config

from benchmark.config import load_config
from benchmark.defenses.cohen_smoothing import CohenSmoothing
from benchmark.defenses.denoiser import DnCNN, save_denoiser
from benchmark.errors import ConfigError, MissingWeightsError
from benchmark.metrics.default_model import DefaultModel

SMALL = {"sigma": 0.12, "bins": 10, "n0": 4, "n": 12, "sample_batch": 8}


def frozen(model):
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def samples(defense, metric, x, seed=0):
    return defense.samples(metric, x, torch.Generator().manual_seed(seed))


def test_an_identity_denoiser_gives_plain_cohen_smoothing(tmp_path):
    path = tmp_path / "den.pt"
    save_denoiser(DnCNN(depth=3, channels=8), path, {"sigma": 0.12})   # untrained: the identity
    metric = frozen(DefaultModel())
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    plain, denoised = CohenSmoothing(**SMALL), CohenSmoothing(**SMALL, denoiser=path)
    assert torch.equal(samples(plain, metric, x), samples(denoised, metric, x))
    s1, c1 = plain.score(metric, x, generator=torch.Generator().manual_seed(0))
    s2, c2 = denoised.score(metric, x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s1, s2) and c1 == c2


def test_the_denoiser_runs_between_the_noise_and_the_metric(tmp_path):
    den = DnCNN(depth=3, channels=8)
    with torch.no_grad():
        den.body[-1].bias.fill_(0.05)   # subtracts 0.05 from every pixel: Den(x) = clip01(x - 0.05)
    path = tmp_path / "den.pt"
    save_denoiser(den, path, {"sigma": 0.12})
    metric = frozen(DefaultModel())
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    defense = CohenSmoothing(**SMALL, denoiser=path)
    ys = samples(defense, metric, x)
    # the same noise, through the denoiser by hand
    gen = torch.Generator().manual_seed(0)
    noisy = torch.stack([(x[0] + 0.12 * torch.randn(x[0].shape, generator=gen)).clamp(0, 1) for _ in range(16)])
    with torch.no_grad():
        expected = metric((noisy - 0.05).clamp(0, 1))
    assert torch.allclose(ys[0], expected, atol=1e-4)
    assert not torch.allclose(ys, samples(CohenSmoothing(**SMALL), metric, x), atol=1e-2)


def test_sigma_mismatch_warns_and_missing_file_is_named(tmp_path, caplog):
    path = tmp_path / "den.pt"
    save_denoiser(DnCNN(depth=3, channels=8), path, {"sigma": 0.25})
    with caplog.at_level(logging.WARNING):
        CohenSmoothing(**SMALL, denoiser=path)
    assert "trained at sigma=0.25" in caplog.text
    with pytest.raises(MissingWeightsError, match="absent.pt"):
        CohenSmoothing(**SMALL, denoiser=tmp_path / "absent.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    with pytest.raises(ConfigError, match="bad.pt"):
        CohenSmoothing(**SMALL, denoiser=bad)


def test_validate_names_the_key_of_a_missing_denoiser(tmp_path, image_folder):
    cfg = folder_config(tmp_path, "cohen", image_folder, f"""
[[metrics]]
name = "default"
[[attacks]]
name = "fgsm"
[[defenses]]
name = "cohen_smoothing"
denoiser = "{tmp_path / 'absent.pt'}"
""")
    with pytest.raises(ConfigError) as exc:
        load_config(cfg)
    assert "defenses[0].denoiser" in str(exc.value) and "absent.pt" in str(exc.value)
