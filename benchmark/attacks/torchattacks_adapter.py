"""Any torchattacks attack (Kim, "Torchattacks: A PyTorch Repository for Adversarial Attacks", 2020)
against an IQA score.

torchattacks expects a classifier. The IQA model is wrapped so that it returns two logits
``[0, z]`` with ``z = L(x)`` the score objective of docs/measures.md#attacks-the-score-objective, and the attack is run untargeted
against label 0: its cross-entropy ``log(1 + e^z)`` increases with ``z``, so its gradient has the sign
of the score gradient and every gradient-sign attack of torchattacks pushes the score the same way the
native attacks do.

Iteration counts in ``options`` (``steps``, ``n_restarts``, ``n_queries``, ...) are within 1..10⁵; ``eps``
is positive and at most the L2 diameter of a [0, 1] image.

torchattacks 3.5 pins ``requests~=2.25.1``, which would downgrade the ``requests`` that pyiqa's
Hugging Face stack needs; install it without its dependencies: ``pip install --no-deps torchattacks``.
"""
from __future__ import annotations

import torch
from torch import nn

from ..params import MAX_L2, MAX_STEPS, within
from ..registry import ATTACKS
from .base import Attack, Direction

# torchattacks keywords that count iterations (checked against MAX_STEPS; the others are passed as given)
ITERATION_OPTIONS = ("steps", "n_restarts", "n_queries", "n_iter", "max_iter", "eot_iter", "n_samples",
                     "search_steps")


class TwoLogits(nn.Module):
    def __init__(self, attack: Attack, model):
        super().__init__()
        self.attack, self.model = attack, model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.attack.objective(self.model, x)
        return torch.stack([torch.zeros_like(z), z], dim=1)


@ATTACKS.register("torchattacks")
class TorchAttacks(Attack):
    """A torchattacks attack by class name (``attack = "PGD"``) with its keywords in ``options``; L∞ ``eps``."""

    threat_model = "linf"

    def __init__(self, attack: str = "PGD", options: dict | None = None, direction: Direction = "increase"):
        super().__init__(direction)
        for k in ITERATION_OPTIONS:
            if k in (options or {}):
                within(f"options.{k}", options[k], 1, MAX_STEPS, integer=True)
        if "eps" in (options or {}):
            within("options.eps", options["eps"], 0, MAX_L2, lo_open=True)
        try:
            import torchattacks
        except ImportError:
            raise ValueError("torchattacks is not installed: pip install --no-deps torchattacks") from None
        if not hasattr(torchattacks, attack):
            raise ValueError(f"torchattacks has no attack {attack!r}")
        self.cls, self.options = getattr(torchattacks, attack), dict(options or {})
        self.eps = float(self.options.get("eps", 8 / 255))
        self.options.setdefault("eps", self.eps)

    def perturb(self, model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        wrapped = TwoLogits(self, model).eval()
        atk = self.cls(wrapped, **self.options)
        labels = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        if generator is not None:  # torchattacks draws from the global RNG: seed it from ours
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
        return atk(x, labels)
