"""Shared pieces of the attack tests: small real photographs, the default model frozen (its forward and backward
passes counted where a test needs it), and the quality-direction gain of an attack."""
from __future__ import annotations

import pytest
import torch
from helpers.images import batch, frozen

from benchmark import passes
from benchmark.metrics.default_model import DefaultModel


def photos(n: int = 4, size: int = 64) -> torch.Tensor:
    """``n`` small real photographs (:func:`helpers.images.batch`), 64 px by default."""
    return batch(n, size)


def counted_model():
    """The real default model, frozen, its forward and backward passes counted (benchmark.passes)."""
    return passes.instrument(frozen(DefaultModel()))


def score_gain(model, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    """Per image, how much ``x_adv`` moved the score in the quality direction (positive: judged better)."""
    with torch.no_grad():
        return model.sign * (model(x_adv) - model(x))


def linf(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).flatten(1).abs().amax(1)


@pytest.fixture
def one_thread():
    """Attacks that score small batches one after another run with one torch thread (no contention on shared
    cores); the thread count is restored afterwards. Import it into a test module to use it."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
