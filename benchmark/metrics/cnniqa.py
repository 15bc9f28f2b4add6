"""CNNIQA (Kang, Ye, Li, Doermann, "Convolutional Neural Networks for No-Reference Image Quality
Assessment", CVPR 2014), as a differentiable torch metric.

The network and pre-processing follow the public implementation (lidq92/CNNIQA, whose ``CNNIQA-LIVE``
state dict, trained on LIVE, this plugin loads: keys ``conv1.*``, ``fc1.*``, ``fc2.*``, ``fc3.*``): grey conversion as PIL ``convert('L')`` (integer weights
19595/38470/7471 with rounding, applied on the 8-bit values; the quantisation is passed straight
through for gradients), non-overlapping 32×32 patches at ``i = 0, 32, …`` while ``i < H - 32``, local
normalisation of each patch with a 3×3 mean filter (symmetric boundary), ``σ = sqrt(max(E[p²]-μ², 0)) + 1``,
then conv 7×7 (50) → global max and min pooling → FC 800 → FC 800 → 1; the image score is the mean of
its patch scores. Trained on LIVE it predicts DMOS: lower is better.

``in_channels=3`` gives the colour variant used by the project's default model (each channel normalised
on its own, no grey quantisation).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MissingWeightsError
from ..params import expect_file, expect_range
from ..registry import METRICS
from .base import Metric, check_images

PATCH = 32


class CNNIQANet(nn.Module):
    def __init__(self, in_channels: int = 1, n_kers: int = 50, n1: int = 800, n2: int = 800, ker: int = 7):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, n_kers, ker)
        self.fc1 = nn.Linear(2 * n_kers, n1)
        self.fc2 = nn.Linear(n1, n2)
        self.fc3 = nn.Linear(n2, 1)
        self.dropout = nn.Dropout()

    def forward(self, patches: torch.Tensor) -> torch.Tensor:  # N×C×32×32 -> N
        h = self.conv1(patches)
        h = torch.cat([h.amax(dim=(-2, -1)), h.amin(dim=(-2, -1))], dim=1)
        h = self.dropout(F.relu(self.fc1(h)))
        h = F.relu(self.fc2(h))
        return self.fc3(h).squeeze(-1)


def pil_grey(x: torch.Tensor) -> torch.Tensor:
    """PIL ``convert('L')`` of 8-bit RGB, exact in the forward pass, identity-like in the backward pass."""
    rgb255 = x * 255.0
    q = torch.round(rgb255).clamp(0, 255)
    exact = torch.floor((q[:, 0] * 19595 + q[:, 1] * 38470 + q[:, 2] * 7471 + 32768) / 65536) / 255.0
    smooth = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])
    return (smooth + (exact - smooth).detach()).unsqueeze(1)


def local_normalise(patches: torch.Tensor) -> torch.Tensor:
    """Per-patch local normalisation of lidq92/CNNIQA (3×3 mean, symmetric boundary, C = 1)."""
    padded = F.pad(patches, (1, 1, 1, 1), mode="replicate")  # 'symm' of a 3×3 filter = edge replicate
    mu = F.avg_pool2d(padded, 3, stride=1)
    mu2 = F.avg_pool2d(padded * padded, 3, stride=1)
    var = mu2 - mu * mu
    # sqrt(max(var, 0)) exactly, without the infinite gradient of sqrt at 0
    sigma = torch.sqrt(torch.clamp(var, min=1e-12)) * (var > 1e-12) + 1.0
    return (patches - mu) / sigma


def extract_patches(img: torch.Tensor) -> torch.Tensor:
    """B×C×H×W -> B×P×C×32×32 non-overlapping patches at i < H-32, j < W-32 (the original's grid)."""
    b, c, h, w = img.shape
    ni, nj = len(range(0, h - PATCH, PATCH)), len(range(0, w - PATCH, PATCH))
    if ni == 0 or nj == 0:
        raise ValueError(f"CNNIQA needs images larger than 32×32 pixels, got {h}×{w}")
    img = img[:, :, : ni * PATCH, : nj * PATCH]
    p = img.unfold(2, PATCH, PATCH).unfold(3, PATCH, PATCH)  # B×C×ni×nj×32×32
    return p.permute(0, 2, 3, 1, 4, 5).reshape(b, ni * nj, c, PATCH, PATCH)


class CNNIQAModel(Metric):
    """Shared implementation of the CNNIQA scoring pipeline; subclasses say where weights come from."""

    def __init__(self, in_channels: int = 1):
        super().__init__()
        self.in_channels = in_channels
        self.net = CNNIQANet(in_channels=in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, type(self).__name__)
        img = pil_grey(x) if self.in_channels == 1 else x
        patches = extract_patches(img)
        b, p = patches.shape[:2]
        flat = local_normalise(patches.reshape(b * p, *patches.shape[2:]))
        return self.net(flat).reshape(b, p).mean(dim=1)


def load_state(path: Path, what: str, hint: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(what, str(path), hint)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MissingWeightsError(what, str(path), f"the file exists but is not a readable state dict ({exc})")


@METRICS.register("cnniqa")
class CNNIQA(CNNIQAModel):
    """CNNIQA (Kang et al., CVPR 2014) from a state-dict file, e.g. lidq92/CNNIQA's ``CNNIQA-LIVE``.

    Defaults follow the LIVE-trained release: DMOS scale, lower is better, score range [0, 100].
    """

    lower_better = True

    @classmethod
    def check_params(cls, params: dict[str, Any], base: Path) -> dict[str, Any]:
        expect_file(params, "weights")
        expect_range(params, "score_range")
        return params

    def __init__(self, weights: Path, lower_better: bool = True, score_range: tuple[float, float] = (0.0, 100.0)):
        expect_range({"score_range": score_range}, "score_range")
        super().__init__(in_channels=1)
        state = load_state(weights, "cnniqa", "Put the CNNIQA state dict (e.g. lidq92/CNNIQA's CNNIQA-LIVE) "
                                               "there or set 'weights' in the config")
        self.net.load_state_dict(state)
        self.lower_better, self.score_range = lower_better, tuple(score_range)
        self.eval()
