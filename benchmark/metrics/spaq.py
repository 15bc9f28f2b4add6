"""SPAQ baseline (Fang, Zhu, Zeng, Ma, Wang, "Perceptual Quality Assessment of Smartphone Photography",
CVPR 2020): the BL model of the released ``BL_release.pt``, trained on SPAQ; MOS 0–100, higher is better.

Facts from the official code, h4nwei/SPAQ:

- ``BL_demo.py``: ``Baseline`` = ``torchvision.models.resnet50`` with ``fc`` replaced by
  ``nn.Linear(2048, 1, bias=True)``, held as ``self.backbone`` (state-dict keys ``backbone.*``); the
  checkpoint is loaded with ``model.load_state_dict(checkpoint['state_dict'])``. The image score is the
  mean of the model's outputs over the image's patches (``self.model(image).mean()``).
- ``Prepare_image.py``, ``Image_load(size=512, stride=224)``: ``adaptive_resize`` resizes the image so
  that its shorter side is 512 (``transforms.Resize(512, BILINEAR)``, aspect kept) when both sides are at
  least 512, and leaves smaller images as they are; then ``to_tensor`` (values in [0, 1], no mean/std
  normalisation) and ``generate_patches(input_size=224)``: 224×224 patches at stride 224 / 2 = 112 in both
  directions, plus one more row/column of patches aligned to the bottom/right edge when the stride does
  not land on it.

msu-video-group/adversarial-defenses-for-iqa (``metrics/subjects/spaq/src/model.py``, ``MetricModel``), the
wrapper the Guardians and purification studies attacked, takes the same patches but skips the resize:
``resize = false`` reproduces it. The resize here is torch's antialiased bilinear interpolation and the
patches are tensor slices, so the metric is differentiable end to end. Images need both sides ≥ 224.
Release: the SPAQ README (Google Drive file ``1pXjXAIItViTFs7qUBY-b11WY50mzoVM2``, ``BL_release.pt``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..params import expect_file
from ..registry import METRICS
from .base import Metric, check_images
from .checkpoints import expect_sides, freeze, load_checkpoint, load_strict, resize, strip_prefixes, unwrap

RELEASE = ("the SPAQ README (github.com/h4nwei/SPAQ: Google Drive file 1pXjXAIItViTFs7qUBY-b11WY50mzoVM2, "
           "BL_release.pt)")


class Baseline(nn.Module):
    """The official ``Baseline``: ResNet-50 with a 1-output fc; keys ``backbone.*``."""

    def __init__(self):
        super().__init__()
        from torchvision.models import resnet50

        self.backbone = resnet50(weights=None)
        self.backbone.fc = nn.Linear(self.backbone.fc.in_features, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)


def patch_starts(length: int, patch: int) -> list[int]:
    """Official ``generate_patches`` offsets: stride ``patch // 2``, plus the edge-aligned last one."""
    stride = patch // 2
    starts = [i * stride for i in range((length - patch) // stride + 1)]
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


def adaptive_size(h: int, w: int, short: int) -> tuple[int, int]:
    """``adaptive_resize``: shorter side to ``short`` (torchvision's rounding) if both sides ≥ ``short``."""
    if h < short or w < short:
        return h, w
    if h <= w:
        return short, int(short * w / h)
    return int(short * h / w), short


@METRICS.register("spaq")
class SPAQ(Metric):
    """SPAQ baseline (Fang et al., CVPR 2020): ResNet-50 on 224×224 patches, BL release; MOS 0–100, higher better.

    ``weights``: the official ``BL_release.pt`` (``{'state_dict': ...}``; a bare state dict also loads).
    ``resize`` (default true, the official ``adaptive_resize``) brings the shorter side to ``short_side``
    = 512 when both sides are at least that; ``resize = false`` patches the image at its own size, as the
    MSU wrapper used by the purification study does. ``patch`` = 224, stride ``patch // 2``.
    """

    lower_better = False
    score_range = (0.0, 100.0)

    @classmethod
    def check_params(cls, params: dict[str, Any], base: Path) -> dict[str, Any]:
        expect_file(params, "weights")
        expect_sides(params, "patch", 32)
        expect_sides(params, "short_side", 32)
        if params.get("short_side", 512) < params.get("patch", 224):
            raise ConfigError(f"expected short_side >= patch ({params.get('patch', 224)})", key="short_side")
        return params

    def __init__(self, weights: Path, resize: bool = True, short_side: int = 512, patch: int = 224):
        super().__init__()
        self.check_params({"short_side": short_side, "patch": patch}, Path("."))
        self.resize_input, self.short_side, self.patch = resize, short_side, patch
        ckpt = load_checkpoint(weights, "spaq", RELEASE)
        state = strip_prefixes(unwrap(ckpt, weights, "spaq", keys=("state_dict", "model")))
        self.net = Baseline()
        load_strict(self.net, state, weights, "spaq")
        freeze(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, "spaq")
        if self.resize_input:
            x = resize(x, adaptive_size(*x.shape[-2:], self.short_side))
        h, w = x.shape[-2:]
        p = self.patch
        if h < p or w < p:
            raise ValueError(f"spaq: images must be at least {p}×{p} pixels (after resizing), got {h}×{w}")
        patches = torch.stack([x[:, :, i:i + p, j:j + p] for i in patch_starts(h, p) for j in patch_starts(w, p)],
                              dim=1)  # B×P×3×p×p
        b, n = patches.shape[:2]
        return self.net(patches.reshape(b * n, 3, p, p)).reshape(b, n).mean(dim=1)
