"""A DnCNN-style convolutional denoiser (Zhang, Zuo, Chen, Meng, Zhang, "Beyond a Gaussian Denoiser:
Residual Learning of Deep CNN for Image Denoising", IEEE TIP 2017): conv–ReLU, (conv–BN–ReLU)×(depth−2),
conv, predicting the noise (residual learning); the last layer starts at zero, so an untrained
network is the identity. Small by default (depth 8, 48 channels) so it trains on
a CPU; checkpoints hold the architecture and the training configuration beside the weights. The
architecture is bounded (depth within 2..64, channels within 1..512), also when read from a checkpoint,
so a crafted file cannot make loading allocate without limit.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import MissingWeightsError
from ..params import within
from ..weights import save_checkpoint

MAX_DEPTH, MAX_CHANNELS = 64, 512  # bounds of the architecture, also when read from a checkpoint


class CheckpointError(ValueError):
    """A denoiser checkpoint whose architecture is not one this module builds; the message names the file."""


class DnCNN(nn.Module):
    def __init__(self, depth: int = 8, channels: int = 48):
        super().__init__()
        within("depth", depth, 2, MAX_DEPTH, integer=True)
        within("channels", channels, 1, MAX_CHANNELS, integer=True)
        layers = [nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                       nn.ReLU(inplace=True)]
        last = nn.Conv2d(channels, 3, 3, padding=1)
        nn.init.zeros_(last.weight)  # start as the identity (no noise predicted): training only improves on it
        nn.init.zeros_(last.bias)
        layers.append(last)
        self.body = nn.Sequential(*layers)
        self.depth, self.channels = depth, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.body(x)).clamp(0, 1)


def save_denoiser(model: DnCNN, path: Path, config: dict) -> None:
    state = {k: v.cpu() for k, v in model.state_dict().items()}  # loadable without the training device
    save_checkpoint(path, {"arch": {"depth": model.depth, "channels": model.channels}, "state_dict": state,
                           "config": config})


def load_denoiser(path: Path) -> tuple[DnCNN, dict]:
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError("denoiser", str(path), "train one with `python -m benchmark.training.denoiser "
                                                       f"--out {path}` or point 'denoiser' at a checkpoint")
    ck = torch.load(path, map_location="cpu", weights_only=True)
    arch = ck["arch"]
    if not isinstance(arch, dict) or set(arch) - {"depth", "channels"}:
        raise CheckpointError(f"{path}: its 'arch' is not a table of depth and channels: {arch!r:.80}")
    try:
        model = DnCNN(**arch)
    except ValueError as exc:  # depth or channels out of bounds
        raise CheckpointError(f"{path}: its architecture is out of bounds: {exc}") from None
    model.load_state_dict(ck["state_dict"])
    return model.eval(), ck.get("config", {})
