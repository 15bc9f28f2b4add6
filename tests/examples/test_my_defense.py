"""The example defense plugin file, examples/my_defense.py (pixel deflection), loaded as a config's
``plugins = [...]`` loads it: registered, stochastic with the generator, moving only deflected pixels, its
parameters checked. The defense contract runs on it too (tests/contracts/test_contract_defenses.py)."""
from __future__ import annotations

import pytest
import torch

from benchmark.registry import DEFENSES, load_plugin_file

from conftest import ROOT
from helpers.images import batch


def test_example_plugin_file():
    load_plugin_file(ROOT / "examples" / "my_defense.py")
    cls = DEFENSES.get("pixel_deflection")
    d = cls(deflections=300, window=5)
    x = batch(2)
    a = d(x, generator=torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, d(x, generator=torch.Generator().manual_seed(0)))
    changed = (a != x).any(dim=1).flatten(1).sum(1)
    assert (changed > 0).all() and (changed <= 300).all()      # only deflected pixels move
    assert cls.stochastic and not cls.differentiable
    with pytest.raises(ValueError):
        cls(deflections=0)
