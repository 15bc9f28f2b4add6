"""The pyiqa model zoo as the benchmark sees it: every metric with its mode, direction, score range,
weights status and (optionally probed) gradient flow, offline.

Weights status reads pyiqa's own metadata ("none listed": pyiqa names no weight file for it, which is
true of the classical metrics; a few others, e.g. brisque's SVM model or arniqa, still fetch files when
built, and ``--probe`` finds out by building them offline): the architecture's ``default_model_urls`` and the metric's
``pretrained``/``pretrained_model_path`` options give the file pyiqa would download, looked up in
pyiqa's cache (``$TORCH_HOME/hub/pyiqa``). Backbone weights that torchvision, timm or Hugging Face fetch
for an architecture are not listed by pyiqa and are not checked here; a missing one is reported when
the metric is built (:func:`benchmark.weights.weights_guard`).
"""
from __future__ import annotations

import inspect
import logging
import os
import sys
from dataclasses import asdict, dataclass
from urllib.parse import urlparse

import torch

from .pyiqa_adapter import parse_score_range

log = logging.getLogger(__name__)


@dataclass
class ZooEntry:
    name: str
    mode: str
    lower_better: bool
    score_range: str
    weights: str          # "none listed", "present", "missing", "unknown"
    weight_file: str | None
    gradient: str         # "yes", "no", "untested", or why the probe failed

    def as_dict(self) -> dict:
        return asdict(self)


def cache_dir() -> str:
    from pyiqa.utils.download_util import DEFAULT_CACHE_DIR

    return DEFAULT_CACHE_DIR


def weight_file(cfg: dict) -> tuple[str, str | None]:
    """(status, expected path) of the pretrained weights pyiqa would load for this metric config."""
    opts = dict(cfg["metric_opts"])
    if opts.get("pretrained_model_path"):
        url = opts["pretrained_model_path"]
    else:
        try:
            from pyiqa.archs import _lazy_import_arch
            from pyiqa.utils.registry import ARCH_REGISTRY

            if opts["type"] not in ARCH_REGISTRY:
                _lazy_import_arch(opts["type"])
            cls = ARCH_REGISTRY.get(opts["type"])
        except Exception as exc:  # an optional dependency of that architecture is missing
            return f"unknown ({type(exc).__name__})", None
        urls = getattr(sys.modules[cls.__module__], "default_model_urls", None)
        params = inspect.signature(cls.__init__).parameters
        default = params["pretrained"].default if "pretrained" in params else None
        key = opts.get("pretrained", default)
        if not urls or key in (False, None) or "pretrained" not in params:
            return "none listed", None
        url = urls.get(key) if isinstance(key, str) else (next(iter(urls.values())) if len(urls) == 1 else None)
        if url is None:  # the variant picks its file by another option: pyiqa decides at build time
            return "unknown", None
    path = url if os.path.isabs(url) else os.path.join(cache_dir(), os.path.basename(urlparse(url).path))
    return ("present" if os.path.isfile(path) else "missing"), path


def probe_gradient(name: str, mode: str) -> str:
    """Build the metric offline and check that a finite, non-zero gradient reaches a 64×64 input."""
    from .pyiqa_adapter import PyIQAMetric

    try:
        m = PyIQAMetric(name, score_range=(0.0, 1.0), download=False)
        x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
        ref = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
        out = m(x, ref) if mode == "FR" else m(x)
        out.sum().backward()
        g = x.grad
        return "yes" if g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 else "no"
    except Exception as exc:
        return f"untested ({type(exc).__name__})"


def zoo(probe: bool = False) -> list[ZooEntry]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    out = []
    for name in sorted(DEFAULT_CONFIGS):
        cfg = DEFAULT_CONFIGS[name]
        mode = cfg.get("metric_mode") or "?"
        lo, hi = parse_score_range(cfg.get("score_range"))
        rng = f"[{lo}, {hi}]" if lo is not None and hi is not None else f"open ({cfg.get('score_range')})"
        status, path = weight_file(cfg)
        grad = "untested"
        if probe and status in ("none listed", "present"):
            grad = probe_gradient(name, mode)
        out.append(ZooEntry(name, mode, bool(cfg.get("lower_better", False)), rng, status, path, grad))
    return out
