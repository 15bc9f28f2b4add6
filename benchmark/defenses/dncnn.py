"""A learned denoiser as a purifier: the DnCNN-style network of :mod:`benchmark.defenses.denoiser`
(Zhang et al., IEEE TIP 2017) loaded from a checkpoint written by
``python -m benchmark.training.denoiser`` (noisy and/or adversarial inputs, clean targets).
Differentiable, so adaptive attacks go straight through it. Parameter: ``weights`` (checkpoint path).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import BenchmarkError, ConfigError, MissingWeightsError
from ..params import expect_file
from ..registry import DEFENSES
from .base import Defense
from .denoiser import CheckpointError, load_denoiser


@DEFENSES.register("dncnn")
class DnCNNPurifier(Defense):
    """DnCNN-style learned denoiser (Zhang et al., TIP 2017) from a checkpoint of benchmark.training.denoiser."""

    @classmethod
    def check_params(cls, params: dict[str, Any], base: Path) -> dict[str, Any]:
        expect_file(params, "weights")
        return params

    def __init__(self, weights: Path):
        super().__init__()
        weights = Path(weights)
        if not weights.is_file():
            raise MissingWeightsError("dncnn defense", str(weights), "train one with `python -m "
                                      f"benchmark.training.denoiser --out {weights}`, or point 'weights' at "
                                      "a checkpoint it wrote")
        try:
            self.net, self.train_config = load_denoiser(weights)
        except BenchmarkError:
            raise
        except CheckpointError as exc:  # it names the file and what is wrong
            raise ConfigError(str(exc), key="weights") from None
        except Exception as exc:  # not a torch file, not a dict, other keys, other shapes: not our checkpoint
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            detail = next((ln for ln in lines if "nsupported" in ln), lines[0] if lines else "")[:200]
            raise ConfigError(f"{weights} is not a denoiser checkpoint written by benchmark.training.denoiser "
                              f"({type(exc).__name__}: {detail})", key="weights") from None
        for p in self.net.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.net(x)
