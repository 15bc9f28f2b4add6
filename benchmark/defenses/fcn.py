"""The FCN filter of the purification study (Gushchin, Chistyakova et al., "Adversarial purification for
no-reference image-quality metrics", AleksandrGushchin/adversarial_purification, ``defenses/conv_filter``),
also run by the Guardians benchmark (msu-video-group/adversarial-defenses-for-iqa, ``metrics/defences/fcn``).

Facts from the official code (``fcn.py``, ``defense.py``, ``train.py``):

- ``FCN(3, 3, 64, norm_type='instance', act_type='relu')``: ``conv1`` Conv2d(3, 64, 3, 1, 1) → LeakyReLU(0.2)
  → ``conv2`` Conv2d(64, 16, 3, 1, 1) → ``norm2`` = InstanceNorm2d(8) (no affine parameters, so it
  normalises each of the 16 channels whatever its declared size) → LeakyReLU(0.2) → ``conv3``
  Conv2d(16, 3, 3, 1, 1) → tanh. The modules ``norm``, ``act`` and ``dropout`` exist but are never called;
  with instance norm the state dict holds only the three convolutions' weights and biases.
- The defense clamps the output to [0, 1]; training (``train.py``) takes MSE between the raw output on an
  attacked image and the clean image (Adam, lr 1e-3, batch 4, 200 epochs, AdvCF-attacked images) and saves
  ``{'model': state_dict, 'epoch': epoch}`` (``best_fcn.pth``; the released file is ``fcn_mse.pth``).

Release: ``fcn_mse.pth`` from the study's README (Google Drive folder
1c6hC5cSfeNfi5-jMHwsyZqoH_QXURmB_) or the Guardians mirror (:data:`URL`). Or train one here, on the
registry's training photographs, with ``python -m benchmark.training.denoiser --arch fcn --inputs adversarial
--rank-weight 0 --batch 4 --out fcn.pt`` (same checkpoint layout). Parameter: ``weights`` (required).
Differentiable, deterministic, any input size, batch inference on the input's device.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError
from ..metrics.checkpoints import freeze, load_strict, unwrap
from ..registry import DEFENSES
from ..weights import CheckpointError, load_checkpoint, save_checkpoint
from .base import CheckpointDefense

FILE = "fcn_mse.pth"
URL = "https://titan.gml-team.ru:5003/fsdownload/vbKqFGe3o/fcn_mse.pth"
TRAINER = "benchmark.training.denoiser --arch fcn"


class FCN(nn.Module):
    """The official ``FCN(3, 3, 64, norm_type='instance', act_type='relu')``; returns tanh(...), unclamped."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1)
        self.conv2 = nn.Conv2d(64, 16, 3, 1, 1)
        self.conv3 = nn.Conv2d(16, 3, 3, 1, 1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e2 = nn.functional.instance_norm(self.conv2(self.act(self.conv1(x))))  # InstanceNorm2d, affine=False
        return torch.tanh(self.conv3(self.act(e2)))


def save_fcn(model: FCN, path: Path, epoch: int, config: dict) -> None:
    """The official layout ``{'model', 'epoch'}`` plus this trainer's ``config`` (plain types)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_checkpoint(path, {"model": state, "epoch": epoch, "config": config})


def load_fcn(path: Path, key: str = "weights") -> tuple[FCN, dict]:
    """The network of an FCN checkpoint (``{'model': state_dict, ...}`` or a bare state dict) and the
    trainer's config, if any. Missing: MissingWeightsError naming the file and where the release lives;
    foreign or corrupt: CheckpointError naming it."""
    path = Path(path)
    hint = (f"download {FILE} from {URL} (the study's README: Google Drive folder 1c6hC5cSfeNfi5-jMHwsyZqoH_QXURmB_) "
            f"and put it at {path}, or train one with `python -m {TRAINER} --out {path}`")
    ck = load_checkpoint(path, "fcn", hint=hint, key=key)
    model = FCN()
    load_strict(model, unwrap(ck, path, "fcn", keys=("model", "state_dict")), path, "fcn")
    config = ck.get("config", {}) if isinstance(ck, dict) else {}
    return model, config if isinstance(config, dict) else {}


@DEFENSES.register("fcn")
class FCNFilter(CheckpointDefense):
    """The purification study's FCN filter (3 convolutions, instance norm, tanh) from ``fcn_mse.pth``."""

    def __init__(self, weights: Path):
        super().__init__()
        try:
            net, self.train_config = load_fcn(weights)
        except CheckpointError as exc:
            raise ConfigError(str(exc), key="weights") from None
        self.net = freeze(net)

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.net(x).clamp(0, 1)
