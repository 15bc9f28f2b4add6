"""Every registered purifier: shape, range, determinism under a seed, gradients or a BPDA surrogate."""
from __future__ import annotations

import inspect

import pytest
import torch

from benchmark.attacks.adaptive import bpda
from benchmark.registry import DEFENSES, constructor_params, load_builtin_plugins

from test_attacks import batch

load_builtin_plugins()
# built-in purifiers that need no file (dncnn and diffpure have their own tests with trained weights)
PURIFIERS = [n for n in DEFENSES.names() if not getattr(DEFENSES.get(n), "wraps_metric", False)
             and DEFENSES.get(n).__module__.startswith("benchmark.")
             and all(d is not inspect.Parameter.empty for _, _, d in constructor_params(DEFENSES.get(n)))]


def test_the_suite_is_there():
    assert {"jpeg", "resize", "random_crop", "random_rotate", "flip", "gaussian_blur", "median", "bilateral",
            "unsharp", "quantize", "random_noise", "nlm", "tv"} <= set(PURIFIERS)


@pytest.mark.parametrize("name", PURIFIERS)
def test_purifier_contract(name):
    d = DEFENSES.get(name)().eval()
    x = batch(2)
    a = d(x, generator=torch.Generator().manual_seed(5))
    b = d(x, generator=torch.Generator().manual_seed(5))
    assert a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal(a, b)
    xg = x.clone().requires_grad_(True)
    y = d(xg, generator=torch.Generator().manual_seed(5)) if d.differentiable else bpda(d, xg, None)
    y.sum().backward()
    assert torch.isfinite(xg.grad).all()
    if name != "identity":
        assert xg.grad.abs().sum() > 0
        assert not torch.equal(a, x)        # it does something
    if d.stochastic:
        c = d(x, generator=torch.Generator().manual_seed(6))
        assert not torch.equal(a, c)


def test_jpeg_surrogate_is_differentiable_jpeg():
    d = DEFENSES.get("jpeg")(quality=50)
    x = batch(1)
    s = d.surrogate(x)
    assert not torch.equal(s, x) and (s - d(x)).abs().mean() < 0.02   # close to the real codec
