"""The call observer's image fingerprints (benchmark/attacks/observe.py): equal images agree wherever they sit in a
batch and however the batch is chunked; one 8-bit level anywhere changes both fingerprints."""
from __future__ import annotations

import torch

from benchmark.attacks import observe


def test_fingerprints_identify_images_exactly(monkeypatch):
    x = torch.round(torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 255) / 255
    fp = observe.fingerprints(x)
    assert fp.shape == (5, 2) and fp.dtype == torch.int64
    assert torch.equal(observe.fingerprints(x.flip(0)), fp.flip(0))                    # position in the batch
    assert torch.equal(torch.cat([observe.fingerprints(x[i:i + 1]) for i in range(5)]), fp)
    monkeypatch.setattr(observe, "_CHUNK", 3 * 16 * 16 * 2)                           # two images per chunk
    assert torch.equal(observe.fingerprints(x), fp)
    y = x.clone()
    y[2, 1, 7, 9] += 1 / 255
    changed = observe.fingerprints(y) != fp
    assert changed[2].all() and not changed[[0, 1, 3, 4]].any()
    assert len({tuple(r) for r in fp.tolist()}) == 5
