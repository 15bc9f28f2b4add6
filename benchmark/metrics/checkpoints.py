"""Shared helpers of the metrics that load an official released checkpoint (linearity, spaq, koncept512,
metaiqa): safe checkpoint loading (:func:`benchmark.weights.load_checkpoint`, re-exported here), state-dict
unwrapping and strict loading with a readable error, and the differentiable pre-processing steps (resize,
normalisation) the official test scripts apply with PIL.

Checkpoints are read with ``torch.load(weights_only=True, map_location="cpu")``: tensors, numbers, strings
and containers only, never arbitrary pickled objects. A release that pickles whole modules (e.g. the
original MetaIQA scripts' ``torch.save(model)``) is refused with a one-line conversion command.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..params import MAX_IMAGE_SIDE
from ..weights import GENERIC_RESAVE, CheckpointError, load_checkpoint  # noqa: F401  (moved to benchmark.weights)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def unwrap(obj: Any, path: Path, what: str, keys: Iterable[str] = ("state_dict", "model", "params")) -> dict:
    """The tensor state dict inside a checkpoint: ``obj`` itself or ``obj[k]`` for the first wrapper key found."""
    if isinstance(obj, Mapping):
        for k in keys:
            if isinstance(obj.get(k), Mapping):
                obj = obj[k]
                break
    if not isinstance(obj, Mapping) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        got = type(obj).__name__ if not isinstance(obj, Mapping) else f"a dict with keys {sorted(obj)[:6]}"
        raise CheckpointError(f"{what}: {path} does not hold a state dict of tensors (got {got})")
    return dict(obj)


def strip_prefixes(state: Mapping[str, torch.Tensor], prefixes: Iterable[str] = ("module.",)) -> dict:
    """Remove DataParallel-style prefixes (``module.``) from every key that has them."""
    out = {}
    for k, v in state.items():
        for p in prefixes:
            k = k.removeprefix(p)
        out[k] = v
    return out


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], path: Path, what: str,
                ignore_missing: Iterable[str] = ()) -> None:
    """``load_state_dict`` that reports missing/unexpected keys and shape mismatches as a CheckpointError."""
    own = module.state_dict()
    skip = set(ignore_missing)
    # BatchNorm's ``num_batches_tracked`` (absent from pre-0.4.1 checkpoints) plays no part in eval mode.
    missing = [k for k in own if k not in state and k not in skip and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
             if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = [f"{label} {items[:3]}{' ...' if len(items) > 3 else ''} ({len(items)})"
                 for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                      ("shape mismatches", wrong)) if items]
        raise CheckpointError(f"{what}: {path} does not match the official architecture: " + "; ".join(parts))
    module.load_state_dict(state, strict=False)


def expect_sides(params: dict[str, Any], key: str, lo: int, hi: int = MAX_IMAGE_SIDE) -> None:
    """``params[key]`` (an int or an ``(h, w)`` pair) lies within ``lo..hi`` pixels (``validate`` reports the key)."""
    value = params.get(key)
    sides = value if isinstance(value, (tuple, list)) else [value]
    if value is not None and not all(isinstance(v, int) and lo <= v <= hi for v in sides):
        raise ConfigError(f"expected sides within {lo}..{hi} pixels, got {value!r}", key=key)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize to ``size = (h, w)`` with antialiasing (as PIL's bilinear), differentiable; no-op if equal."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)


class Normalise(nn.Module):
    """``(x - mean) / std`` per channel (torchvision ``normalize``), with non-persistent buffers."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode and no parameter gradients (gradients still flow to the input)."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module
