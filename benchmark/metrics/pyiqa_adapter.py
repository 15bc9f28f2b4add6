"""Any pyiqa metric as a benchmark metric (Chen et al., "TOPIQ"/IQA-PyTorch, https://github.com/chaofengc/IQA-PyTorch).

The metric is created with ``as_loss=True`` (so gradients reach the input) in eval mode; its direction
and score range come from pyiqa's own metadata (``lower_better``, ``score_range``), with a config
override for metrics whose range pyiqa leaves open. ``options`` are passed to ``pyiqa.create_metric``
(e.g. ``pretrained_model_path``). Weights are looked up where pyiqa keeps them (``$TORCH_HOME/hub/pyiqa``
and torch hub's checkpoints folder); when a file is missing and cannot be downloaded, a
:class:`MissingWeightsError` names it and the place to put it, without network retries. pyiqa unpickles
checkpoints with ``torch.load(weights_only=False)``, so every file named in the config is first unpickled
with ``weights_only=True`` (``check_weights_file``; tensors memory-mapped, not read) and refused if it
holds anything but weights.
"""
from __future__ import annotations

import contextlib
import inspect
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import torch

from ..errors import BenchmarkError, ConfigError, MissingWeightsError
from ..params import expect_file, expect_range
from ..registry import METRICS
from ..weights import check_weights_file, offline_requested, weights_guard
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


def pyiqa_config(metric: str, score_range: Any = None) -> tuple[dict, tuple[float, float]]:
    """pyiqa's default configuration of ``metric`` and its closed score range (``score_range`` overrides
    pyiqa's); a ConfigError naming the key for an unknown name or an open range (``validate`` and the
    constructor both check through here)."""
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    if metric not in DEFAULT_CONFIGS:
        import difflib

        close = difflib.get_close_matches(metric, DEFAULT_CONFIGS, n=3)
        raise ConfigError(f"unknown pyiqa metric {metric[:60]!r}" + (f"; did you mean {close}?" if close else "")
                          + " (python -m benchmark list metrics shows them)", key="metric")
    cfg = DEFAULT_CONFIGS[metric]
    lo, hi = parse_score_range(cfg.get("score_range")) if score_range is None else score_range
    if lo is None or hi is None:
        raise ConfigError(f"pyiqa metric '{metric}' has an open score range ({cfg.get('score_range')!r}); "
                          "set score_range = [lo, hi]", key="score_range")
    return cfg, (float(lo), float(hi))


# keywords of pyiqa.create_metric's InferenceModel itself, passed on with the architecture's own
INFERENCE_OPTIONS = ("loss_weight", "seed", "check_input_range", "metric_mode")


def arch_class(cfg: dict) -> type | None:
    """The pyiqa architecture class a metric config builds (its module imported), or None when an optional
    dependency of that architecture is missing (then the metric fails when built, with its own message)."""
    from pyiqa.archs import _lazy_import_arch
    from pyiqa.utils.registry import ARCH_REGISTRY

    arch = cfg["metric_opts"]["type"]
    try:
        if arch not in ARCH_REGISTRY:
            _lazy_import_arch(arch)
        return ARCH_REGISTRY.get(arch)
    except Exception:  # noqa: BLE001 - e.g. a ModuleNotFoundError of the architecture's own dependencies
        return None


def option_names(cfg: dict) -> set[str] | None:
    """The ``options`` keys a metric accepts: its architecture's constructor keywords and the inference model's;
    None when any key is accepted (``**kwargs``) or the architecture cannot be imported here."""
    cls = arch_class(cfg)
    if cls is None:
        return None
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return ({p for p in params if p != "self"} | set(INFERENCE_OPTIONS)) - set(PyIQAMetric.RESERVED_OPTIONS)


def hub_offline_miss(exc: BaseException) -> tuple[str, str] | None:
    """(cache folder, what to do) when ``exc`` is Hugging Face's "offline and not in the cache" (a timm or
    transformers backbone a pyiqa architecture builds on), else None."""
    import re

    chain, seen = [], exc
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    if not any(type(e).__name__ in ("OfflineModeIsEnabled", "LocalEntryNotFoundError") for e in chain):
        return None
    url = next((m for e in chain for m in re.findall(r"https://huggingface\.co/\S+?/resolve/\S+?(?=:|\s|$)", str(e))),
               None)
    repo = re.match(r"https://huggingface\.co/(.+?)/resolve/", url).group(1) if url else None
    from huggingface_hub.constants import HF_HUB_CACHE

    folder = f"{HF_HUB_CACHE}/models--{repo.replace('/', '--')}" if repo else HF_HUB_CACHE
    hint = (f"download {url} (`huggingface-cli download {repo}`) into the Hugging Face cache" if url else
            "download the backbone it builds on into the Hugging Face cache") + " (downloads are off: HF_HUB_OFFLINE)"
    return folder, hint


@METRICS.register("pyiqa")
class PyIQAMetric(Metric):
    """A pyiqa metric by name (``metric = "niqe"``, ``"musiq"``, ``"psnr"``, ...), differentiable via ``as_loss``.

    Parameters: ``metric`` (pyiqa name), ``pretrained_model_path`` (a local weights file; relative to the
    config file), ``options`` (other keywords for ``pyiqa.create_metric``), ``score_range`` (override
    ``[lo, hi]``), ``download`` (try to download missing weights; off when ``HF_HUB_OFFLINE`` or
    ``BENCHMARK_OFFLINE`` is set).
    """

    RESERVED_OPTIONS = ("as_loss", "loss_reduction", "device", "metric_name")  # set by the adapter itself

    @classmethod
    def check_params(cls, params: dict[str, Any], base: Path) -> dict[str, Any]:
        """``validate``: a known pyiqa name, a closed score range, and ``options.pretrained_model_path`` moved
        to ``pretrained_model_path`` (resolved against the config's folder, then checked like it)."""
        metric = params["metric"]
        expect_range(params, "score_range")
        pyiqa_config(metric, params.get("score_range"))
        options = dict(params.get("options") or {})
        for k in cls.RESERVED_OPTIONS:
            if k in options:
                raise ConfigError(f"'{k}' is set by the benchmark; leave it out", key=f"options.{k}")
        accepted = option_names(pyiqa_config(metric, params.get("score_range"))[0]) if options else None
        unknown = sorted(set(options) - accepted) if accepted is not None else []
        if unknown:
            import difflib

            close = difflib.get_close_matches(unknown[0], accepted, n=1)
            raise ConfigError(f"unknown option{'s' if len(unknown) > 1 else ''} {unknown} for pyiqa metric '{metric}'"
                              + (f" (did you mean '{close[0]}'?)" if close else "")
                              + f"; its architecture takes {sorted(accepted)}", key=f"options.{unknown[0]}")
        if "pretrained_model_path" in options:
            if params.get("pretrained_model_path") is not None:
                raise ConfigError("given twice: here and as pretrained_model_path; keep one",
                                  key="options.pretrained_model_path")
            given = options.pop("pretrained_model_path")
            if not isinstance(given, str) or not given or "\0" in given:
                raise ConfigError(f"expected a path (a string), got {given!r:.60}", key="options.pretrained_model_path")
            path = Path(given).expanduser()
            params["pretrained_model_path"] = path = (path if path.is_absolute() else base / path).resolve()
            params["options"] = options or None
            if not path.exists():
                raise MissingWeightsError(f"pyiqa metric '{metric}'", str(path), key="options.pretrained_model_path")
        expect_file(params, "pretrained_model_path")
        path = params.get("pretrained_model_path")
        if path is not None and Path(path).is_file():
            try:
                check_weights_file(Path(path), f"pyiqa metric '{metric}'", full=False)
            except BenchmarkError as exc:
                raise ConfigError(str(exc), key="pretrained_model_path") from None
        return params

    @classmethod
    def check_files(cls, params: dict[str, Any]) -> None:
        """``validate`` (deep): with downloads off (``download = false``, ``HF_HUB_OFFLINE``, ``BENCHMARK_OFFLINE``),
        the weight files pyiqa would fetch are present. The network is built on the meta device with every
        download refused (nothing allocated, nothing fetched): a missing file is a MissingWeightsError with
        pyiqa's URL and the path to put it at. Other failures are left to the run, which reports them."""
        if params.get("download", True) and not offline_requested():
            return  # the run downloads what is missing
        import pyiqa

        metric = params["metric"]
        opts = dict(params.get("options") or {})
        if params.get("pretrained_model_path") is not None:
            opts["pretrained_model_path"] = str(params["pretrained_model_path"])
        with weights_guard(metric, False), warnings.catch_warnings(), torch.device("meta"), \
                contextlib.redirect_stdout(io.StringIO()):  # pyiqa prints "Downloading: ..." before it asks
            warnings.simplefilter("ignore")
            logging.disable(logging.INFO)  # timm announces every backbone it looks up
            try:
                pyiqa.create_metric(metric, as_loss=True, loss_reduction="none", device=torch.device("meta"), **opts)
            except MissingWeightsError as exc:
                raise MissingWeightsError(exc.what, exc.path, exc.hint, key="metric") from None
            except Exception as exc:  # noqa: BLE001 - else not a missing file: the run builds it and says what
                missing = hub_offline_miss(exc)
                if missing is not None:
                    raise MissingWeightsError(f"pyiqa metric '{metric}'", *missing, key="metric") from None
            finally:
                logging.disable(logging.NOTSET)

    def __init__(self, metric: str, pretrained_model_path: Path | None = None, options: dict | None = None,
                 score_range: tuple[float, float] | None = None, download: bool = True):
        super().__init__()
        import pyiqa

        cfg, self.score_range = pyiqa_config(metric, score_range)
        self.metric_name = metric
        self.mode = cfg.get("metric_mode", "NR")
        self.lower_better = bool(cfg.get("lower_better", False))
        opts = dict(options or {})
        if pretrained_model_path is not None:
            opts["pretrained_model_path"] = pretrained_model_path
        if "pretrained_model_path" in opts:
            p = Path(opts["pretrained_model_path"])
            if not p.is_file():
                raise MissingWeightsError(f"pyiqa metric '{metric}'", str(p),
                                          "options.pretrained_model_path points to a missing file")
            opts["pretrained_model_path"] = str(p)
        # pyiqa unpickles checkpoints with weights_only=False: read every file the config names safely first
        for k, v in opts.items():
            named_by = k if k == "pretrained_model_path" and pretrained_model_path is not None else f"options.{k}"
            for item in v if isinstance(v, (list, tuple)) else [v]:
                if isinstance(item, (str, Path)) and Path(item).is_file():
                    check_weights_file(Path(item), f"pyiqa metric '{metric}' ('{named_by}')")
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
