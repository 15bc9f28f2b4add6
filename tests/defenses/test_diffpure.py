"""DiffPure (benchmark/defenses/diffpure.py) through the real diffusers code path, with a tiny diffusion model
trained here on small images."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from benchmark.errors import MissingWeightsError

from helpers.images import batch

diffusers = pytest.importorskip("diffusers", reason="diffusers not installed (pip install -e '.[diffpure]')")


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=32, in_channels=3, out_channels=3, layers_per_block=1,
                       block_out_channels=(16, 32), norm_num_groups=8,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
    sched = DDPMScheduler(num_train_timesteps=1000)
    data = F.interpolate(batch(4, size=96), size=(64, 64), mode="bilinear", antialias=True) * 2 - 1
    opt = torch.optim.Adam(unet.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(120):  # a few seconds: enough to denoise small t*, the code path is what is tested
        top, left = torch.randint(0, 33, (2,), generator=gen).tolist()
        x0 = data[:, :, top:top + 32, left:left + 32]
        t = torch.randint(0, 100, (x0.shape[0],), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        loss = F.mse_loss(unet(sched.add_noise(x0, noise, t), t).sample, noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
    root = tmp_path_factory.mktemp("ddpm")
    unet.save_pretrained(root / "unet")
    sched.save_pretrained(root / "scheduler")
    return root


def test_diffpure_purifies_reproducibly(tiny_model_dir):
    from benchmark.defenses.diffpure import DiffPure

    d = DiffPure(model_dir=tiny_model_dir, t_star=5)
    assert d.stochastic and not d.differentiable
    x = batch(2, size=48)
    a = d(x, generator=torch.Generator().manual_seed(1))
    b = d(x, generator=torch.Generator().manual_seed(1))
    c = d(x, generator=torch.Generator().manual_seed(2))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    # diffusion to t* = 5 of 1000 is a small perturbation: the image stays close to the input
    assert (a - x).abs().mean() < 0.15
    # a larger t* moves further from the input
    far = DiffPure(model_dir=tiny_model_dir, t_star=200)(x, generator=torch.Generator().manual_seed(1))
    assert (far - x).abs().mean() > (a - x).abs().mean()


def test_missing_model_dir_is_named(tmp_path):
    from benchmark.defenses.diffpure import DiffPure

    with pytest.raises(MissingWeightsError, match=str(tmp_path / "absent" / "unet")):
        DiffPure(model_dir=tmp_path / "absent")
