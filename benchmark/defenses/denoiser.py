"""A DnCNN-style convolutional denoiser (Zhang, Zuo, Chen, Meng, Zhang, "Beyond a Gaussian Denoiser:
Residual Learning of Deep CNN for Image Denoising", IEEE TIP 2017): conv–ReLU, (conv–BN–ReLU)×(depth−2),
conv, predicting the noise (residual learning); the last layer starts at zero, so an untrained
network is the identity. Small by default (depth 8, 48 channels) so it trains on
a CPU; checkpoints hold the architecture and the training configuration beside the weights.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import MissingWeightsError


class DnCNN(nn.Module):
    def __init__(self, depth: int = 8, channels: int = 48):
        super().__init__()
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
    from ..store import atomic_write_bytes
    import io

    buf = io.BytesIO()
    state = {k: v.cpu() for k, v in model.state_dict().items()}  # loadable without the training device
    torch.save({"arch": {"depth": model.depth, "channels": model.channels}, "state_dict": state, "config": config},
               buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_denoiser(path: Path) -> tuple[DnCNN, dict]:
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError("denoiser", str(path), "train one with `python -m benchmark.defenses.train_denoiser "
                                                       f"--out {path}` or point 'denoiser' at a checkpoint")
    ck = torch.load(path, map_location="cpu", weights_only=True)
    model = DnCNN(**ck["arch"])
    model.load_state_dict(ck["state_dict"])
    return model.eval(), ck.get("config", {})
