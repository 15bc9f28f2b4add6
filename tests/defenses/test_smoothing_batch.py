"""Median smoothing's forward batch (fixed or automatic) does not change its noise draws or certificates
(the automatic batch's rule and exact records: tests/defenses/test_median_smoothing_batch.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.certify import median_certificate
from benchmark.defenses import median_smoothing as msm
from benchmark.defenses.median_smoothing import MedianSmoothing


class TinyMetric(torch.nn.Module):
    """A small non-linear score, so every noise draw shows in the output."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        torch.nn.init.normal_(self.conv.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, x):
        return torch.tanh(self.conv(x)).mean(dim=(1, 2, 3)) * 50 + 50


@torch.no_grad()
def former_samples(ms: MedianSmoothing, metric, x, generator, batch: int = 50, per_sample: bool = False):
    """The samples of the code before batch tuning: ``batch`` noisy copies per forward pass, their noise one
    draw of ``batch`` copies (``per_sample``: one draw of the image's shape per copy, as now)."""
    out = []
    for img in x:
        ys = []
        for start in range(0, ms.n, batch):
            k = min(batch, ms.n - start)
            if per_sample:
                eps = torch.stack([torch.randn(img.shape, generator=generator) for _ in range(k)])
            else:
                eps = torch.randn((k, *img.shape), generator=generator)
            ys.append(metric((img + ms.sigma * eps).clamp(0, 1)).float())
        out.append(torch.cat(ys))
    return torch.stack(out)


def probe(x):
    """A batch-size-invariant 'metric' (no reduction kernels): exposes the noise draws bit for bit."""
    return x[:, 0, 0, 0] * 1000 + x[:, 1, -1, 2] + x[:, 2, 3, -1] * 1e-3


@pytest.mark.parametrize("size", [24, 17])  # 3·17² is not a multiple of 16: torch's randn is then chunk-dependent
def test_scores_do_not_depend_on_the_forward_batch(size):
    metric = TinyMetric().eval()
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    draws = former_samples(MedianSmoothing(n=120), probe, x, torch.Generator().manual_seed(5), per_sample=True)
    want = former_samples(MedianSmoothing(n=120), metric, x, torch.Generator().manual_seed(5), per_sample=True)
    for batch in (None, 1, 7, 50, 64, 120):
        ms = MedianSmoothing(n=120, sample_batch=batch)
        # the noise is the same, bit for bit, whatever the batch ...
        assert torch.equal(ms.samples(probe, x, torch.Generator().manual_seed(5)), draws), batch
        # ... and a CNN's scores differ only by the rounding of its batched kernels
        got = ms.samples(metric, x, torch.Generator().manual_seed(5))
        torch.testing.assert_close(got, want, rtol=0, atol=1e-4)
        if batch == 50:
            assert torch.equal(got, want)
    # where the image's size is a multiple of 16, the draws are those of the former blocks of 50 copies: the
    # records of the code before per-copy draws, unchanged
    former = former_samples(MedianSmoothing(n=120), metric, x, torch.Generator().manual_seed(5))
    assert torch.equal(former, want) == (3 * size * size % 16 == 0)
    ms = MedianSmoothing(n=120, sample_batch=50)
    scores, certs = ms.score(metric, x, generator=torch.Generator().manual_seed(5))
    ref = [median_certificate(y, ms.radius, ms.sigma, ms.confidence) for y in want.numpy()]
    assert certs == ref and np.allclose(scores.numpy(), [c["smoothed"] for c in ref])


@pytest.mark.parametrize("per_copy", [True, False])  # the CPU's draws per copy, the GPU's blocks (here on the CPU)
def test_noise_stream_gives_a_chunk_back_and_noisy_keeps_its_gradient(per_copy):
    img = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))  # 192 values: either way the same draws
    g = torch.Generator().manual_seed(3)
    ref_g = torch.Generator().manual_seed(3)
    ref = torch.stack([torch.randn(img.shape, generator=ref_g) for _ in range(5)])
    stream = msm.NoiseStream(MedianSmoothing().draw_gaussian, img, 5, g)
    stream.cpu = per_copy
    assert torch.equal(stream.take(2), ref[:2])
    stream.take(3).fill_(7.0)  # the caller may overwrite a chunk ...
    stream.unread_last()  # ... and give it back: drawn again, the same numbers
    assert torch.equal(stream.take(1), ref[2:3]) and torch.equal(stream.take(2), ref[3:])
    with pytest.raises(RuntimeError, match="more noisy samples"):
        stream.take(1)
    # clip01(x + σ ε) in the noise's memory: the numbers and the gradient of the out-of-place formula
    x = torch.rand(4, 3, 8, 8, requires_grad=True)
    ms = MedianSmoothing(sigma=0.5)
    y = ms(x, generator=torch.Generator().manual_seed(1))
    ref = (x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert torch.equal(y, ref) and 0 < (y == 1).sum() and 0 < (y == 0).sum()
    (gy,), (gr,) = torch.autograd.grad(y.square().sum(), x), torch.autograd.grad(ref.square().sum(), x)
    assert torch.equal(gy, gr)
