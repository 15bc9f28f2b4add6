"""A DnCNN-style convolutional denoiser (Zhang, Zuo, Chen, Meng, Zhang, "Beyond a Gaussian Denoiser:
Residual Learning of Deep CNN for Image Denoising", IEEE TIP 2017): conv–ReLU, (conv–BN–ReLU)×(depth−2),
conv, predicting the noise (residual learning); the last layer starts at zero, so an untrained
network is the identity. Small by default (depth 8, 48 channels) so it trains on
a CPU; checkpoints hold the architecture and the training configuration beside the weights. The
architecture is bounded (depth within 2..64, channels within 1..512), also when read from a checkpoint,
so a crafted file cannot make loading allocate without limit.

Checkpoints are read by :func:`benchmark.weights.load_checkpoint` (``weights_only``); a missing, corrupt
or foreign file is one error naming it and how to get a good one (:func:`load_denoiser`), a ConfigError
naming the parameter for the defenses that take one (:func:`load_frozen_denoiser`: dncnn,
denoised_smoothing).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError
from ..params import within
from ..weights import CheckpointError, load_checkpoint, save_checkpoint

MAX_DEPTH, MAX_CHANNELS = 64, 512  # bounds of the architecture, also when read from a checkpoint
TRAINER = "benchmark.training.denoiser"


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


def load_denoiser(path: Path, key: str = "denoiser") -> tuple[DnCNN, dict]:
    """The network and training configuration of a checkpoint written by :func:`save_denoiser`.

    A missing file is a MissingWeightsError, a corrupt or foreign one a CheckpointError; both name the
    file and say how to get a good one (``key``: the parameter that names it, quoted in the advice).
    """
    path = Path(path)
    todo = f"train one with `python -m {TRAINER} --out {path}`, or point '{key}' at a checkpoint it wrote"
    ck = load_checkpoint(path, "denoiser", hint=todo, key=key)

    def refuse(why: str) -> CheckpointError:
        return CheckpointError(f"{path} is not a denoiser checkpoint written by {TRAINER}: {why}; {todo}")

    if not isinstance(ck, dict) or not {"arch", "state_dict"} <= set(ck):
        got = sorted(map(str, ck))[:6] if isinstance(ck, dict) else type(ck).__name__
        raise refuse(f"expected a dict with 'arch' and 'state_dict', got {got}")
    arch, config = ck["arch"], ck.get("config", {})
    if not isinstance(arch, dict) or set(arch) - {"depth", "channels"}:
        raise refuse(f"its 'arch' is not a table of depth and channels: {arch!r:.80}")
    if not isinstance(config, dict):
        raise refuse(f"its 'config' is not a table: {config!r:.80}")
    try:
        model = DnCNN(**arch)
    except (TypeError, ValueError) as exc:  # depth or channels out of bounds, or not integers
        raise refuse(f"its architecture is out of bounds: {exc}") from None
    try:
        model.load_state_dict(ck["state_dict"])
    except Exception as exc:  # noqa: BLE001 - missing/unexpected keys, other shapes, not tensors
        lines = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
        raise refuse(f"its weights do not fit a DnCNN(depth={model.depth}, channels={model.channels}) "
                     f"({type(exc).__name__}: {lines[:200]})") from None
    return model.eval(), config


def load_frozen_denoiser(path: Path, key: str) -> tuple[DnCNN, dict]:
    """:func:`load_denoiser` for a defense's parameter ``key``, its weights frozen. A bad file is a
    ConfigError naming ``key`` (``validate`` reports ``defenses[i].<key>``), a missing one a
    MissingWeightsError naming the file."""
    try:
        model, config = load_denoiser(path, key)
    except CheckpointError as exc:
        raise ConfigError(str(exc), key=key) from None
    for p in model.parameters():
        p.requires_grad_(False)
    return model, config
