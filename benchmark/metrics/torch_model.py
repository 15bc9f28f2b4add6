"""Any torch model as a metric: a TorchScript file, or a module class named ``"package.module:Class"``
(imported like an entry point) with a state-dict file. The model must map B×3×H×W images in [0,1] to
B scores (any trailing singleton dimensions are squeezed); the metadata the harness needs is given in
the config: ``lower_better`` and ``score_range``.

    [[metrics]]
    name = "torchscript"
    path = "models/my_iqa.pt"
    score_range = [0, 100]

    [[metrics]]
    name = "torch_module"
    factory = "my_package.models:MyIQA"
    weights = "models/my_iqa_state.pt"
    kwargs = {width = 64}
    lower_better = false
    score_range = [0, 1]
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, MissingWeightsError
from ..params import expect_file, expect_range
from ..registry import METRICS
from .base import Metric, check_images

_FACTORY = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")


class _Wrapped(Metric):
    @classmethod
    def check_params(cls, params: dict[str, Any], base: Path) -> dict[str, Any]:
        for key in ("path", "weights"):
            expect_file(params, key)
        expect_range(params, "score_range")
        factory = params.get("factory")
        if factory is not None and not _FACTORY.fullmatch(factory):
            raise ConfigError(f"expected 'package.module:Class', got {factory[:80]!r}", key="factory")
        return params

    def __init__(self, net: torch.nn.Module, lower_better: bool, score_range: tuple[float, float]):
        expect_range({"score_range": score_range}, "score_range")
        if not isinstance(net, torch.nn.Module):
            raise ConfigError(f"the model must be a torch.nn.Module (its factory or file gave a {type(net).__name__})",
                              key="factory")
        super().__init__()
        self.net = net.eval()
        self.lower_better, self.score_range = lower_better, tuple(score_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, type(self).__name__)
        out = self.net(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.reshape(x.shape[0], -1).mean(dim=1)


@METRICS.register("torchscript")
class TorchScriptMetric(_Wrapped):
    """A TorchScript model file (torch.jit.save) as an NR metric, with its direction and score range."""

    def __init__(self, path: Path, score_range: tuple[float, float], lower_better: bool = False):
        if not Path(path).is_file():
            raise MissingWeightsError("torchscript metric", str(path), "point 'path' at a torch.jit.save file")
        try:
            net = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as exc:
            raise ConfigError(f"{path} is not a TorchScript file: {exc}") from None
        super().__init__(net, lower_better, score_range)


@METRICS.register("torch_module")
class TorchModuleMetric(_Wrapped):
    """A torch module ``"package.module:Class"`` built with ``kwargs`` and loaded from a state-dict file."""

    def __init__(self, factory: str, score_range: tuple[float, float], weights: Path | None = None,
                 kwargs: dict | None = None, lower_better: bool = False):
        mod_name, _, attr = factory.partition(":")
        if not mod_name or not attr:
            raise ConfigError(f"factory must look like 'package.module:Class', got {factory!r}")
        try:
            cls = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"cannot import {factory}: {exc}") from None
        net = cls(**(kwargs or {}))
        if weights is not None:
            if not Path(weights).is_file():
                raise MissingWeightsError(f"torch module {factory}", str(weights), "point 'weights' at its state dict")
            state = torch.load(weights, map_location="cpu", weights_only=True)
            net.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
        super().__init__(net, lower_better, score_range)
