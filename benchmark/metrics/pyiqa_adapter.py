"""Any pyiqa metric as a benchmark metric (Chen et al., "TOPIQ"/IQA-PyTorch, https://github.com/chaofengc/IQA-PyTorch).

The metric is created with ``as_loss=True`` (so gradients reach the input) in eval mode; its direction
and score range come from pyiqa's own metadata (``lower_better``, ``score_range``), with a config
override for metrics whose range pyiqa leaves open. ``options`` are passed to ``pyiqa.create_metric``
(e.g. ``pretrained_model_path``). Weights are looked up where pyiqa keeps them (``$TORCH_HOME/hub/pyiqa``
and torch hub's checkpoints folder); when a file is missing and cannot be downloaded, a
:class:`MissingWeightsError` names it and the place to put it, without network retries.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

import torch

from ..errors import ConfigError, MissingWeightsError
from ..registry import METRICS
from .base import Metric, check_images


def parse_score_range(text: Any) -> tuple[float | None, float | None]:
    """pyiqa's ``score_range`` strings (``"0, 1"``, ``"~0, ~100"``, ``"0, ~"``) as numbers (None if open)."""
    if text is None:
        return (None, None)
    part = str(text).split(";")[0]
    if ":" in part:
        part = part.split(":", 1)[1]
    bounds = [b.strip().lstrip("~").strip() for b in part.split(",")]
    if len(bounds) != 2:
        return (None, None)
    return tuple(float(b) if b else None for b in bounds)  # type: ignore[return-value]


def offline_requested() -> bool:
    return any(os.environ.get(v, "") not in ("", "0") for v in ("BENCHMARK_OFFLINE", "HF_HUB_OFFLINE"))


@contextlib.contextmanager
def weights_guard(metric: str, download: bool) -> Iterator[None]:
    """Turn every weights download pyiqa or torchvision attempts into a clear MissingWeightsError.

    Patches the two low-level downloaders (pyiqa's and torch hub's), which both receive the destination
    file: exactly the path the user has to fill. Hugging Face is switched offline when downloads are off.
    """
    import pyiqa.utils.download_util as pyiqa_dl
    import torch.hub as hub

    originals = (pyiqa_dl.download_url_to_file, hub.download_url_to_file)

    def wrap(orig):
        def fetch(url, dst, *args, **kwargs):
            hint = f"download {url} and put it there (or pass options.pretrained_model_path)"
            if not download:
                raise MissingWeightsError(f"pyiqa metric '{metric}'", str(dst), hint)
            try:
                return orig(url, dst, *args, **kwargs)
            except Exception as exc:
                raise MissingWeightsError(f"pyiqa metric '{metric}'", str(dst),
                                          f"download failed ({type(exc).__name__}); {hint}") from None
        return fetch

    pyiqa_dl.download_url_to_file, hub.download_url_to_file = wrap(originals[0]), wrap(originals[1])
    old_env = os.environ.get("HF_HUB_OFFLINE")
    if not download:
        os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        pyiqa_dl.download_url_to_file, hub.download_url_to_file = originals
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env


@METRICS.register("pyiqa")
class PyIQAMetric(Metric):
    """A pyiqa metric by name (``metric = "niqe"``, ``"musiq"``, ``"psnr"``, ...), differentiable via ``as_loss``.

    Parameters: ``metric`` (pyiqa name), ``pretrained_model_path`` (a local weights file; relative to the
    config file), ``options`` (other keywords for ``pyiqa.create_metric``), ``score_range`` (override
    ``[lo, hi]``), ``download`` (try to download missing weights; off when ``HF_HUB_OFFLINE`` or
    ``BENCHMARK_OFFLINE`` is set).
    """

    def __init__(self, metric: str, pretrained_model_path: Path | None = None, options: dict | None = None,
                 score_range: tuple[float, float] | None = None, download: bool = True):
        super().__init__()
        import pyiqa
        from pyiqa.default_model_configs import DEFAULT_CONFIGS

        if metric not in DEFAULT_CONFIGS:
            import difflib
            close = difflib.get_close_matches(metric, DEFAULT_CONFIGS, n=3)
            raise ConfigError(f"unknown pyiqa metric '{metric}'" + (f"; did you mean {close}?" if close else ""))
        cfg = DEFAULT_CONFIGS[metric]
        self.metric_name = metric
        self.mode = cfg.get("metric_mode", "NR")
        self.lower_better = bool(cfg.get("lower_better", False))
        lo, hi = parse_score_range(cfg.get("score_range"))
        if score_range is not None:
            lo, hi = score_range
        if lo is None or hi is None:
            raise ConfigError(f"pyiqa metric '{metric}' has an open score range ({cfg.get('score_range')!r}); "
                              "set score_range = [lo, hi] for it")
        self.score_range = (float(lo), float(hi))
        opts = dict(options or {})
        if pretrained_model_path is not None:
            opts["pretrained_model_path"] = pretrained_model_path
        if "pretrained_model_path" in opts:
            p = Path(opts["pretrained_model_path"])
            if not p.is_file():
                raise MissingWeightsError(f"pyiqa metric '{metric}'", str(p),
                                          "options.pretrained_model_path points to a missing file")
            opts["pretrained_model_path"] = str(p)
        with weights_guard(metric, download and not offline_requested()):
            self.inner = pyiqa.create_metric(metric, as_loss=True, loss_reduction="none",
                                            device=torch.device("cpu"), **opts)
        self.inner.eval()
        for p in self.inner.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        check_images(x, f"pyiqa:{self.metric_name}")
        out = self.inner(x, ref) if self.mode == "FR" else self.inner(x)
        return out.reshape(x.shape[0], -1).mean(dim=1).to(x.dtype)  # some pyiqa metrics compute in float64
