"""The flip defense (benchmark/defenses/flip.py): with ``p < 1`` it is stochastic, draws from the generator,
and passes the defense contract as well as the always-flipping default does (tests/contracts/)."""
from __future__ import annotations

import torch

from benchmark.defenses.flip import Flip

from helpers.contracts import DefenseContract
from helpers.images import batch


def test_stochastic_flip_uses_the_generator():
    x = batch(4)
    outs = {tuple(bool(torch.equal(o, xi)) for o, xi in zip(Flip(p=0.5)(x, generator=torch.Generator().manual_seed(s)), x))
            for s in range(8)}
    assert len(outs) > 1 and Flip(p=0.5).stochastic and not Flip().stochastic


class TestFlipHalf(DefenseContract):
    """The defense contract on a flip of probability 0.5 (the registry-wide run checks the default, p = 1)."""

    plugin = "flip"
    params = {"p": 0.5}
