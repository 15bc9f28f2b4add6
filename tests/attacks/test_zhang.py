"""Zhang et al. (NeurIPS 2022) perceptual attack: gains both ways on the default model with the SSIM distance,
the perceptual bound kept exactly (also after 8-bit quantisation, also with the real LPIPS architecture), and a
clear MissingWeightsError naming the file when the LPIPS/DISTS weights are absent."""
from __future__ import annotations

import pytest
import torch
from attack_helpers import frozen, photos

import benchmark.perceptual
from benchmark.attacks import zhang as zmod
from benchmark.attacks.zhang import Zhang, distance_fn
from benchmark.errors import MissingWeightsError
from benchmark.metrics.default_model import DefaultModel


@pytest.fixture(scope="module")
def model():
    return frozen(DefaultModel())


def test_ssim_distance_is_one_minus_ssim():
    x = photos(2, 64)
    d = distance_fn("ssim", x.device)
    assert torch.allclose(d(x, x), torch.zeros(2), atol=1e-6)
    # against scikit-image's SSIM (Gaussian 11×11, σ 1.5, per channel, data range 1), on the valid region
    skm = pytest.importorskip("skimage.metrics")
    y = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    ref = skm.structural_similarity(x[0].permute(1, 2, 0).double().numpy(), y[0].permute(1, 2, 0).double().numpy(),
                                    gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    data_range=1.0, channel_axis=2, full=True)[1][5:-5, 5:-5].mean()
    assert float(1 - d(y, x)[0]) == pytest.approx(ref, abs=2e-3)


def test_defaults_raise_and_lower_the_score_within_the_distance_after_quantisation(model):
    x = photos(3, 64)
    with torch.no_grad():
        s = model(x)
    for direction, sign in (("increase", 1), ("decrease", -1)):
        attack = Zhang(distance="ssim", direction=direction)
        x_adv = attack(model, x, output_8bit=True)
        assert torch.equal(x_adv, torch.round(x_adv * 255) / 255)
        assert bool((attack.measured_budget(x_adv, x) <= attack.eps).all())
        with torch.no_grad():
            gain = sign * (model(x_adv) - s)
        assert bool((gain > 5).all()), (direction, gain)


def test_a_binding_bound_is_kept_exactly_and_used(model):
    x = photos(3, 64)
    attack = Zhang(distance="ssim", eps=0.004, lr=0.02, steps=4)
    free = Zhang(distance="ssim", eps=1.0, lr=0.02, steps=4)(model, x)
    assert bool((free.sub(x).abs().amax() > 0) and (attack.measured_budget(free, x) > 0.004).all())
    x_adv = attack(model, x, output_8bit=True)
    d = attack.measured_budget(x_adv, x)
    assert bool((d <= 0.004).all()) and bool((d > 0.002).all())  # pulled back to the bound, not to x
    assert attack.budget_unit == "perceptual" and attack.budget == 0.004


@pytest.mark.slow
def test_lpips_with_its_real_architecture_keeps_the_bound(model, monkeypatch):
    lpips = pytest.importorskip("lpips")
    # the package's linear layers, a random AlexNet (its ImageNet weights are not downloadable here)
    net = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    monkeypatch.setattr(benchmark.perceptual, "lpips_model", lambda device, download=False: net)
    x = photos(2, 64)
    free = Zhang(distance="lpips", eps=1.0, lr=0.02, steps=2)
    eps = 0.5 * float(free.measured_budget(free(model, x), x).min())
    attack = Zhang(distance="lpips", eps=eps, lr=0.02, steps=2)
    x_adv = attack(model, x, output_8bit=True)
    assert bool((attack.measured_budget(x_adv, x) <= eps).all())
    with torch.no_grad():
        assert bool((model(x_adv) > model(x)).all())


@pytest.mark.parametrize("distance", ["lpips", "dists"])
def test_missing_weights_name_the_file(distance, model, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty weights cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    benchmark.perceptual.lpips_model.cache_clear()
    zmod._dists_net.cache_clear()
    with pytest.raises(MissingWeightsError) as err:
        Zhang(distance=distance)(model, photos(1, 64))
    assert str(tmp_path) in str(err.value) and "put it there" in str(err.value)


def test_bad_distance_is_refused():
    with pytest.raises(ValueError, match="distance"):
        Zhang(distance="mse")
