"""FACPA: the reference's U-Net, trained on the training split, raises the default model's score on held-out
photographs within eps on the 8-bit grid; its stored generator is reloaded, not retrained."""
from __future__ import annotations

import logging

import pytest
import torch

from benchmark.attacks import facpa as facpa_mod
from benchmark.attacks.facpa import FACPA, UNetGenerator
from benchmark.metrics.default_model import DefaultModel
from benchmark.photos import TEST_PHOTOS, load_photo, square


def held_out(size: int = 64) -> torch.Tensor:
    x = torch.stack([square(load_photo(n), size) for n in TEST_PHOTOS])
    return (x * 255).round() / 255


def test_the_generator_is_the_reference_unet_at_256():
    """Layer for layer the reference's ``UnetGenerator(3, 3, 64, 'instance', 'relu')`` (conv1..8, dconv1..8),
    transcribed from katiashh/FACPA: the same (in, out) channels, 4×4 kernels and 54.4 M weights."""
    convs = [(3, 64), (64, 128), (128, 256), (256, 512)] + [(512, 512)] * 4
    dconvs = [(512, 512), (1024, 512), (1024, 512), (1024, 512), (1024, 256), (512, 128), (256, 64), (128, 3)]
    net = UNetGenerator(depth=8, ngf=64)
    ours = [(m.in_channels, m.out_channels, m.kernel_size, m.stride) for m in net.modules()
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert ours == [(i, o, (4, 4), (2, 2)) for i, o in convs + dconvs]
    assert sum(p.numel() for p in net.parameters()) == sum(i * o * 16 + o for i, o in convs + dconvs)
    with torch.no_grad():
        y = net.eval()(torch.rand(1, 3, 256, 256))
    assert y.shape == (1, 3, 256, 256) and float(y.abs().max()) < 1


def test_facpa_raises_the_score_of_held_out_images_within_eps(tmp_path, monkeypatch, caplog):
    model = DefaultModel().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = held_out()
    attack = FACPA(size=64, epochs=2, batch_size=8, ngf=8, lr=0.003)  # test-sized
    art = tmp_path / "facpa.pt"
    attack.fit(model, generator=torch.Generator().manual_seed(0), artifact=art, provenance={}, progress=False)
    assert art.is_file() and not art.with_suffix(".partial.pt").exists()
    x_adv = attack(model, x, output_8bit=True)
    assert torch.equal(torch.round(x_adv * 255), x_adv * 255)
    assert float((x_adv - x).abs().max()) <= 10 / 255 + 1e-6
    with torch.no_grad():
        g = model(x_adv) - model(x)
        noise = (x + 10 / 255 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)).sign()).clamp(0, 1)
        g_noise = model(noise) - model(x)
    assert float(g.mean()) > 1.0 and float(g.mean()) > float(g_noise.mean())
    # a second instance loads the stored generator (the training set is never built) and attacks alike;
    # any image size works (padded to the generator's multiple, cropped back), amplitude scales the budget
    monkeypatch.setattr("benchmark.training.trainset.uap_images", lambda size: pytest.fail("retrained"))
    again = FACPA(size=64, epochs=2, batch_size=8, ngf=8, lr=0.003, amplitude=0.5)
    with caplog.at_level(logging.INFO, logger="benchmark.attacks.facpa"):
        again.fit(model, generator=torch.Generator(), artifact=art, provenance={}, progress=False)
    assert "loaded the trained generator" in caplog.text
    torch.testing.assert_close(again.generated(again.net, x), attack.generated(attack.net, x))
    odd = torch.rand(2, 3, 70, 90)
    out = again(model, odd)
    assert out.shape == odd.shape and float((out - odd).abs().max()) <= 5 / 255 + 1e-6


def test_facpa_training_resumes_from_its_checkpoint(tmp_path, monkeypatch, caplog):
    model = DefaultModel().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    from benchmark.attacks import uap as uap_mod

    art, original, calls = tmp_path / "f.pt", uap_mod.save_checkpoint, {"n": 0}

    def interrupt_second_save(path, obj):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        original(path, obj)

    monkeypatch.setattr(uap_mod, "save_checkpoint", interrupt_second_save)
    make = lambda: FACPA(size=64, epochs=2, batch_size=64, ngf=4)
    with pytest.raises(KeyboardInterrupt):
        make().fit(model, generator=torch.Generator().manual_seed(0), artifact=art, provenance={}, progress=False)
    assert art.with_suffix(".partial.pt").is_file() and not art.is_file()
    monkeypatch.setattr(uap_mod, "save_checkpoint", original)
    with caplog.at_level(logging.INFO, logger="benchmark.attacks.uap"):
        make().fit(model, generator=torch.Generator().manual_seed(0), artifact=art, provenance={}, progress=False)
    assert "resuming FACPA training at epoch 1" in caplog.text
    assert art.is_file() and not art.with_suffix(".partial.pt").exists()
    assert facpa_mod.FACPA.needs_fit and FACPA().fit_params()["ngf"] == 16
