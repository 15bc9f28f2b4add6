"""Diffusion-denoised smoothing (Carlini et al. 2023): timestep and scaling with a true-noise predictor, the
median-smoothing certificate, DensePure-style reverse samples, and a run through the matrix with a tiny
random-weight diffusers UNet (benchmark/defenses/diffusion_smoothing.py). The guided-diffusion (ADM) checkpoint
converter is tested in tests/tools/test_convert_adm.py."""
from __future__ import annotations

import math
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.certify import median_certificate, order_statistics
from benchmark.cli import main
from benchmark.errors import MissingWeightsError

from conftest import folder_config
from helpers.images import batch
from helpers.weights import save_tiny_ddpm

diffusers = pytest.importorskip("diffusers", reason="diffusers not installed (pip install -e '.[diffpure]')")


@pytest.fixture(scope="module")
def tiny_ddpm(tmp_path_factory):
    return save_tiny_ddpm(tmp_path_factory.mktemp("ddpm"))


def grid_scheduler():
    """A DDPM schedule whose noise levels √((1-ᾱ_t)/ᾱ_t) are 0.002 (t + 1): 2σ = 0.24, 0.5 and 1 are hit exactly."""
    from diffusers import DDPMScheduler

    level = 0.002 * np.arange(1, 1001, dtype=np.float64)
    abar = 1 / (1 + level ** 2)
    betas = 1 - abar / np.concatenate([[1.0], abar[:-1]])
    return DDPMScheduler(num_train_timesteps=1000, trained_betas=betas.tolist(), variance_type="learned_range")


class NoisePredictor(torch.nn.Module):
    """A stand-in for the UNet returning a given noise (plus 3 variance channels, ignored), recording its t."""

    def __init__(self, noise_of):
        super().__init__()
        self.noise_of, self.calls = noise_of, []

    def forward(self, z, t):
        self.calls.append(int(t[0]))
        eps = self.noise_of(z, int(t[0]))
        return SimpleNamespace(sample=torch.cat([eps, torch.full_like(eps, 7.0)], dim=1))


def mean_metric(x):
    return x.mean(dim=(1, 2, 3))


# -- timestep and scaling ------------------------------------------------------------------------------
@pytest.mark.parametrize("sigma", [0.12, 0.25, 0.5])
def test_the_true_noise_denoises_to_the_clean_image_in_one_step(tmp_path, sigma):
    """x + σε scaled to t* is √ᾱ(2x - 1) + √(1-ᾱ) ε exactly when √((1-ᾱ)/ᾱ) = 2σ: the unit noise ε is then the
    true noise of x_t*, and one denoising step with it returns x. A wrong t*, a wrong scaling, clipping of
    x + σε or a wrong mapping back to [0, 1] all leave a residual of order σ|ε|."""
    from benchmark.defenses.diffusion_smoothing import DiffusionSmoothing

    d = DiffusionSmoothing(model=save_tiny_ddpm(tmp_path, grid_scheduler()), sigma=sigma, n=8)
    assert d.t_star == round(2 * sigma / 0.002) - 1
    x = batch(2, size=32)
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    d.unet = NoisePredictor(lambda z, t: eps)
    out = d.denoise(x + sigma * eps)
    assert d.unet.calls == [d.t_star]
    assert (out - x).abs().max() < 2e-5
    # the same through forward: the noise is the generator's first standard normal draw
    out = d(x, generator=torch.Generator().manual_seed(3))
    assert (out - x).abs().max() < 2e-5
    # one step off the matching timestep leaves a visible residual
    d.t_star += 1
    d.alpha_bar = float(d.scheduler.alphas_cumprod[d.t_star])
    assert (d.denoise(x + sigma * eps) - x).abs().max() > 1e-3


@pytest.mark.parametrize("sigma", [0.12, 0.25, 0.5])
def test_true_noise_on_the_linear_schedule(tiny_ddpm, sigma):
    """On the usual linear 1000-step schedule: a predictor returning the noise really present in x_t*
    (x_t* - √ᾱ(2x - 1))/√(1-ᾱ) recovers x to float precision, at t* only."""
    from benchmark.defenses.diffusion_smoothing import DiffusionSmoothing

    d = DiffusionSmoothing(model=tiny_ddpm, sigma=sigma, n=8)
    x = batch(2, size=32)
    a = d.scheduler.alphas_cumprod.double()
    d.unet = NoisePredictor(lambda z, t: ((z - a[t].sqrt() * (2 * x - 1)) / (1 - a[t]).sqrt()).float())
    out = d(x, generator=torch.Generator().manual_seed(0))
    assert d.unet.calls == [d.t_star] and (out - x).abs().max() < 2e-5


@pytest.mark.parametrize("sigma", [0.05, 0.12, 0.25, 0.5, 1.0])
def test_timestep_matches_twice_sigma_to_the_schedules_resolution(tiny_ddpm, sigma):
    from benchmark.defenses.diffusion_smoothing import DiffusionSmoothing, matching_timestep

    a = diffusers.DDPMScheduler(num_train_timesteps=1000).alphas_cumprod.double()
    level = ((1 - a) / a).sqrt()
    t = matching_timestep(a.float(), sigma)
    gap = (level[t] - 2 * sigma).abs()
    assert gap == (level - 2 * sigma).abs().min()
    assert gap <= (level[t + 1] - level[t - 1]) / 2
    assert DiffusionSmoothing(model=tiny_ddpm, sigma=sigma, n=8).t_star == t
    if sigma == 0.12:  # the certified IQA study's t* (first t with level >= 0.24 on the same schedule)
        assert t == 70


def test_sigma_beyond_the_schedule_and_missing_model(tiny_ddpm, tmp_path, capsys):
    from benchmark.defenses.diffusion_smoothing import DiffusionSmoothing

    with pytest.raises(ValueError, match="beyond"):  # the grid schedule's largest noise level is sigma 1
        DiffusionSmoothing(model=save_tiny_ddpm(tmp_path / "grid", grid_scheduler()), sigma=5.0)
    with pytest.raises(ValueError, match=r"sigma must be a number within \(0, 10\]"):
        DiffusionSmoothing(model=tiny_ddpm, sigma=500.0)
    with pytest.raises(MissingWeightsError, match=re.escape(str(tmp_path / "absent" / "unet"))):
        DiffusionSmoothing(model=tmp_path / "absent")
    cfg = folder_config(tmp_path, "missing", tmp_path, """
[[metrics]]
name = "default"
[[attacks]]
name = "fgsm"
[[defenses]]
name = "diffusion_smoothing"
model = "absent"
""")
    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "absent") in err and "defenses[0].model" in err
    (tmp_path / "absent").mkdir()  # a folder that is not a diffusers model directory
    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "absent" / "unet") in err and "defenses[0].model" in err


# -- certificate ---------------------------------------------------------------------------------------
def test_certificate_uses_the_median_smoothing_order_statistics(tiny_ddpm):
    from benchmark.defenses.diffusion_smoothing import DiffusionSmoothing
    from benchmark.defenses.median_smoothing import MedianSmoothing

    assert DiffusionSmoothing.score is MedianSmoothing.score  # the same certificate code, not a copy
    n, sigma, radius, conf = 60, 0.25, 0.1, 0.99
    q = order_statistics(n, radius, sigma, conf)
    assert (q.q_lower, q.q_upper) == (12, 49)
    x = batch(2, size=32)
    for d in (DiffusionSmoothing(model=tiny_ddpm, sigma=sigma, radius=radius, n=n, confidence=conf, sample_batch=25),
              MedianSmoothing(sigma=sigma, radius=radius, n=n, confidence=conf, sample_batch=25)):
        scores, certs = d.score(mean_metric, x, generator=torch.Generator().manual_seed(5))
        ys = np.sort(d.samples(mean_metric, x, torch.Generator().manual_seed(5)).numpy(), axis=1)
        for y, c, s in zip(ys, certs, scores.tolist()):
            assert (c["cert_lo"], c["cert_hi"]) == (y[q.q_lower - 1], y[q.q_upper - 1])
            assert c == median_certificate(y, radius, sigma, conf) and s == pytest.approx(np.median(y))
            assert c["cert_lo"] < s < c["cert_hi"]


def test_one_step_is_differentiable_and_reproducible(tiny_ddpm):
    from benchmark.defenses.diffusion_smoothing import DiffusionSmoothing

    d = DiffusionSmoothing(model=tiny_ddpm, n=8)
    assert d.stochastic and d.differentiable and d.wraps_metric
    x = batch(2, size=48).requires_grad_(True)  # 48 px: padded to the UNet's multiple and cropped back
    out = d(x, generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    out.mean().backward()
    assert x.grad.abs().sum() > 0
    again = d(x.detach(), generator=torch.Generator().manual_seed(1))
    assert torch.equal(out.detach(), again)


def test_reverse_samples_score_is_the_median_over_reverse_chains(tiny_ddpm):
    from benchmark.defenses.diffusion_smoothing import DiffusionSmoothing

    d = DiffusionSmoothing(model=tiny_ddpm, sigma=0.02, n=4, sample_batch=4, reverse_samples=3)
    assert not d.differentiable and d.t_star < 20
    x = batch(1, size=32)
    a = d.score(mean_metric, x, generator=torch.Generator().manual_seed(2))
    b = d.score(mean_metric, x, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a[0], b[0]) and math.isfinite(a[0].item())
    # the score of one noisy draw is the median over its k reverse outputs (mean of the middle two for even k)
    d.reverse_samples = 4
    levels = iter([0.9, 0.1, 0.5, 0.3])
    d.denoise = lambda noisy, generator=None: torch.full_like(noisy, next(levels))
    assert d.batch_scores(mean_metric, x, None).item() == pytest.approx(0.4)


# -- through the matrix --------------------------------------------------------------------------------
def test_diffusion_smoothing_in_the_matrix_has_certificate_columns(tmp_path, image_folder, tiny_ddpm):
    cfg = folder_config(tmp_path, "dds", image_folder, f"""
[[metrics]]
name = "default"
[[attacks]]
name = "fgsm"
eps = "2/255"
adaptive = false
[[defenses]]
name = "diffusion_smoothing"
model = "{tiny_ddpm}"
n = 50
sample_batch = 50
[[defenses]]
name = "median_smoothing"
n = 50
sample_batch = 50
""", limit=2)
    assert main(["run", str(cfg), "--no-progress"]) == 0
    s = pd.read_csv(tmp_path / "runs" / "dds" / "summary.csv")
    (dds,) = s[s["defense"].str.startswith("diffusion_smoothing")].to_dict("records")
    assert dds["abstain_rate"] == 0 and dds["cert_width"] > 0 and 0 <= dds["adv_within_cert"] <= 1
    rec = pd.read_csv(tmp_path / "runs" / "dds" / "records.csv")
    rec = rec[rec["defense"] == dds["defense"]]
    assert len(rec) == 2 and (rec["cert_lo_clean"] <= rec["score_def"]).all()
    assert (rec["score_def"] <= rec["cert_hi_clean"]).all()
