"""Shared pieces of the attack tests: small real photographs and the default model with its passes counted."""
from __future__ import annotations

import pytest
import torch
from conftest import tiny_images

from benchmark import passes
from benchmark.metrics.default_model import DefaultModel


def photos(n: int = 4, size: int = 64) -> torch.Tensor:
    return torch.stack([torch.from_numpy(a).permute(2, 0, 1).float() / 255 for _, a, _ in tiny_images(n, size)])


def counted_model():
    """The real default model, frozen, its forward and backward passes counted (benchmark.passes)."""
    model = DefaultModel().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return passes.instrument(model)


@pytest.fixture
def one_thread():
    """Attacks that score small batches one after another run with one torch thread (no contention on shared
    cores); the thread count is restored afterwards. Import it into a test module to use it."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

