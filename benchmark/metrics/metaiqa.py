"""MetaIQA (Zhu, Li, Wu, Dong, Shi, "MetaIQA: Deep Meta-Learning for No-Reference Image Quality Assessment",
CVPR 2020) through pyiqa's own ``metaiqa`` architecture, loaded from a local checkpoint the user names.

Facts from the public code:

- zhuhancheng/MetaIQA (``MetaIQA_FineTune_WILDLIVE.py``): ``Net(resnet_layer=resnet18 with its 1000-way fc,
  net=BaselineModel1(1, 0.5, 1000))``; ``BaselineModel1`` = fc1 (1000→1024) → bn1 → PReLU → dropout → fc2
  (1024→512) → bn2 → PReLU → dropout → fc3 (512→1) → sigmoid; MOS / 100 as the target, so scores lie in
  [0, 1], higher is better. Test images are resized to 224×224 and ImageNet-normalised. That script saves
  whole pickled modules (``torch.save(model)``), which are refused here (see ``checkpoints.py``).
- chaofengc/IQA-PyTorch (``pyiqa/archs/metaiqa_arch.py``, ``default_model_configs.py``): the same network
  as ``MetaIQA`` with the head renamed ``head``; ``preprocess`` resizes to 224×224 (bilinear) and
  normalises; score range ``0, 1``; its own weights loader maps ``net.`` → ``head.`` and strips
  ``net_g.``/``module.``. pyiqa loads a ``pretrained_model_path`` with ``weights_only=False`` and
  ``strict=False`` (a file with the official ``net.*`` keys would leave the head silently random), so this
  metric builds pyiqa's architecture with ``pretrained=False`` (nothing is downloaded) and loads the
  checkpoint itself: ``weights_only=True``, the same key mapping, every key checked.
- msu-video-group/adversarial-defenses-for-iqa (``metrics/subjects/meta-iqa/src/model.py``) and
  katiashh/certified-iqa-defenses load ``metaiqa.pth``, a bare state dict with ``resnet_layer.*`` and
  ``net.*`` keys, and score the image at its own size (ImageNet normalisation, no resize; the ResNet's
  adaptive pooling takes any size): ``resize = false`` reproduces that wrapper, the one the purification
  study attacked. The default (``resize = true``) is pyiqa's and the original 224×224 pre-processing.

Release: ``metaiqa.pth`` from the certified-iqa-defenses README (Google Drive file
``19U_gHdK3Ld9uI23MABC14Pin9Vfw8AQM``); pyiqa's ``Metaiqa_livec.pth`` (its GitHub release assets) also loads.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import MissingWeightsError
from ..params import expect_file
from ..registry import METRICS
from .base import Metric, check_images
from .checkpoints import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Normalise,
    freeze,
    load_checkpoint,
    load_strict,
    strip_prefixes,
    unwrap,
)

RELEASE = ("the certified-iqa-defenses README (github.com/katiashh/certified-iqa-defenses: Google Drive file "
           "19U_gHdK3Ld9uI23MABC14Pin9Vfw8AQM, metaiqa.pth) or pyiqa's Metaiqa_livec.pth release asset")


def pyiqa_metaiqa() -> torch.nn.Module:
    """pyiqa's ``metaiqa`` network from its own config, without pretrained weights (no download)."""
    try:
        from pyiqa.archs import build_network
        from pyiqa.default_model_configs import DEFAULT_CONFIGS

        opts = dict(DEFAULT_CONFIGS["metaiqa"]["metric_opts"], pretrained=False)
        return build_network(opts)
    except (ImportError, KeyError) as exc:
        import importlib.metadata as md

        try:
            version = md.version("pyiqa")
        except md.PackageNotFoundError:
            version = "not installed"
        raise MissingWeightsError("metaiqa", f"pyiqa's metaiqa architecture (pyiqa {version})",
                                  f"install a pyiqa version that has 'metaiqa' ({type(exc).__name__}: {exc})") from None


def to_pyiqa_keys(state: dict) -> dict:
    """Official / MSU keys (``resnet_layer.*``, ``net.*``) and pyiqa keys (``head.*``) to pyiqa's layout."""
    state = strip_prefixes(state, ("module.", "net_g."))
    return {("head." + k[4:] if k.startswith("net.") else k): v for k, v in state.items()}


@METRICS.register("metaiqa")
class MetaIQA(Metric):
    """MetaIQA (Zhu et al., CVPR 2020) via pyiqa's architecture, local checkpoint; score 0–1, higher better.

    ``weights``: e.g. ``metaiqa.pth`` (``resnet_layer.*``/``net.*``) or pyiqa's ``Metaiqa_livec.pth``.
    ``resize`` (default true: pyiqa's and the original 224×224 resize) or false (the image at its own
    size, as the MSU wrapper of the purification study).
    """

    lower_better = False
    score_range = (0.0, 1.0)

    @classmethod
    def check_params(cls, params: dict[str, Any], base: Path) -> dict[str, Any]:
        expect_file(params, "weights")
        return params

    def __init__(self, weights: Path, resize: bool = True):
        super().__init__()
        self.resize_input = resize
        ckpt = load_checkpoint(weights, "metaiqa", RELEASE)
        state = to_pyiqa_keys(unwrap(ckpt, weights, "metaiqa", keys=("params", "params_ema", "state_dict", "model")))
        self.net = pyiqa_metaiqa()
        load_strict(self.net, state, weights, "metaiqa", ignore_missing=("mean", "std"))
        self.normalise = Normalise(IMAGENET_MEAN, IMAGENET_STD)
        freeze(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, "metaiqa")
        if self.resize_input:
            return self.net(x).reshape(-1)  # pyiqa's preprocess: 224×224 bilinear, ImageNet normalisation
        return self.net.head(self.net.resnet_layer(self.normalise(x))).reshape(-1)
