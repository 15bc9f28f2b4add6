"""Shared pieces of the family contract tests: which built-in plugins exist, how to build one small enough
for a test, and small real inputs."""
from __future__ import annotations

import inspect

import pytest
import torch

from benchmark.registry import REGISTRIES, load_builtin_plugins
from conftest import tiny_images

# Keywords that set how much work a plugin does: the contract tests pass these small values when the
# plugin takes them, so that every plugin runs in about a second. Building from the defaults is checked
# separately (test_builds_from_defaults).
SMALL = {"steps": 2, "queries": 40, "iters": 2, "epochs": 1, "popsize": 8, "n": 20, "n0": 10, "samples": 4,
         "max_iters": 1, "size": 64, "batch_size": 4, "block_batch": 8, "restarts": 1, "train_images": 8,
         "images": 8, "limit": 8}


def builtin(family: str) -> list[str]:
    """The names of the plugins this package registers in ``family`` (not third-party entry points)."""
    load_builtin_plugins()
    reg = REGISTRIES[family]
    return [n for n in reg.names() if reg.get(n).__module__.startswith("benchmark.")]


def required(family: str, name: str) -> list[str]:
    return [p["name"] for p in REGISTRIES[family].describe(name)["params"] if p["required"]]


def small_kwargs(family: str, name: str) -> dict:
    names = {p["name"] for p in REGISTRIES[family].describe(name)["params"]}
    return {k: v for k, v in SMALL.items() if k in names}


def build(family: str, name: str, **kwargs):
    """The plugin built with ``kwargs``; skipped, with the reason, when it needs a file the caller did not give."""
    missing = [p for p in required(family, name) if p not in kwargs]
    if missing:
        pytest.skip(f"{family[:-1]} {name} needs {missing} (a weights file or data folder): its own tests cover it")
    return REGISTRIES[family].get(name)(**kwargs)


def images(n: int = 2, size: int = 64) -> torch.Tensor:
    """``n`` real photographs with graded noise, B×3×size×size in [0, 1]."""
    return torch.stack([torch.from_numpy(a).permute(2, 0, 1).float() / 255 for _, a, _ in tiny_images(n, size)])


def default_metric():
    from benchmark.metrics.default_model import DefaultModel

    m = DefaultModel().eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def takes(cls: type, keyword: str) -> bool:
    return keyword in inspect.signature(cls.__init__).parameters
