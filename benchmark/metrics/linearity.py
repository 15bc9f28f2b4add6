"""LinearityIQA (Li, Jiang, Jiang, "Norm-in-Norm Loss with Faster Convergence and Better Performance for
Image Quality Assessment", ACM MM 2020) from its released KonIQ-10k checkpoint ``p1q2.pth``.

Facts from the official code, lidq92/LinearityIQA:

- ``IQAmodel.py``: ``IQAModel(arch='resnext101_32x8d', pool='avg', use_bn_end=False, P6=1, P7=1)``. The
  backbone is torchvision's ResNeXt-101 32x8d without its last two children (avgpool, fc), kept as
  ``features`` (an ``nn.Sequential``: conv1, bn1, relu, maxpool, layer1..layer4). The outputs of
  ``features[6]`` (layer3, 1024 channels) and ``features[7]`` (layer4, 2048) are average-pooled (``SPSP``
  with P = 1 is a global mean) and reduced by ``dr6``/``dr7`` = Linear(c, 1024) → BN → Linear(1024, 256)
  → BN → Linear(256, 64) → BN → ReLU; ``regr6``/``regr7`` = Linear(64, 1) give the two side outputs and
  ``regression`` = Linear(128, 1) on their concatenation the final one (``forward`` returns
  ``[pq6, pq7, s]``).
- ``main.py`` saves ``{'model': state_dict, 'optimizer', 'amp', 'k': [k0, k1, k2], 'b': [b0, b1, b2]}``;
  ``test_demo.py`` loads ``checkpoint['model']`` and reports ``y[-1] * k[0] + b[0]`` (the linear mapping
  fitted on the training set, ``IQAPerformance.py``): the KonIQ-10k MOS scale, about 0–100 (the test MOS
  of ``results_in_the_paper/npy/KonIQ-10k-Norm-in-Norm.npy`` spans 4.2–88.2). Higher is better.
- Pre-processing (``test_demo.py``, ``IQAdataset.py``): with ``--resize`` (used for every KonIQ-10k result
  in the README) the image is resized to 498×664 (h×w, ``--resize_size_h/w`` defaults, PIL bilinear), then
  ``to_tensor`` and ImageNet normalisation. Without ``--resize`` it runs at the native size, which is what
  the attack studies do: AleksandrGushchin/adversarial_purification (``model.py``, ``MetricModel``) and
  msu-video-group/adversarial-defenses-for-iqa (``metrics/subjects/linearity``) call the network on the
  image as given, with the same normalisation and ``[-1] * k[0] + b[0]``: set ``resize = false`` to match.

Here the resize is torch's antialiased bilinear interpolation (differentiable), so the metric is
differentiable end to end. Release: the README's Google Drive / Baidu links (``checkpoints/p1q2.pth``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..params import expect_file
from ..registry import METRICS
from .base import Metric, check_images
from .checkpoints import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CheckpointError,
    Normalise,
    expect_sides,
    freeze,
    load_checkpoint,
    load_strict,
    resize,
    unwrap,
)

RELEASE = ("the LinearityIQA README (github.com/lidq92/LinearityIQA: Google Drive folder "
           "1H79ptqjcR4NH6HP4wLsEmqwhNqNNqXwh, file p1q2.pth)")
RESAVE = ("c = torch.load(SRC, weights_only=False); torch.save({'model': c['model'], "
          "'k': [float(v) for v in c['k']], 'b': [float(v) for v in c['b']]}, DST)")


def reducer(in_features: int) -> nn.Sequential:
    """``dr6``/``dr7`` of the official IQAModel (pool='avg', P = 1)."""
    return nn.Sequential(nn.Linear(in_features, 1024), nn.BatchNorm1d(1024), nn.Linear(1024, 256),
                         nn.BatchNorm1d(256), nn.Linear(256, 64), nn.BatchNorm1d(64), nn.ReLU())


class LinearityNet(nn.Module):
    """The official ``IQAModel`` for the released configuration; keys match ``checkpoint['model']``."""

    def __init__(self):
        super().__init__()
        from torchvision.models import resnext101_32x8d

        self.features = nn.Sequential(*list(resnext101_32x8d(weights=None).children())[:-2])
        self.dr6, self.dr7 = reducer(1024), reducer(2048)
        self.regr6, self.regr7 = nn.Linear(64, 1), nn.Linear(64, 1)
        self.regression = nn.Linear(128, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f6 = f7 = None
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i == 6:
                f6 = self.dr6(x.mean(dim=(-2, -1)))
            elif i == 7:
                f7 = self.dr7(x.mean(dim=(-2, -1)))
        return [self.regr6(f6), self.regr7(f7), self.regression(torch.cat([f6, f7], dim=1))]


@METRICS.register("linearity")
class Linearity(Metric):
    """LinearityIQA (Li et al., ACM MM 2020): ResNeXt-101 32x8d, the KonIQ-10k release; MOS 0–100, higher better.

    ``weights``: the official ``p1q2.pth`` (``{'model', 'k', 'b', ...}``). ``resize`` (default true, the
    official ``--resize``) brings images to ``input_size`` = 498×664 (h×w); ``resize = false`` scores them
    at their own size, as the purification and Guardians studies did.
    """

    lower_better = False
    score_range = (0.0, 100.0)

    @classmethod
    def check_params(cls, params: dict[str, Any], base: Path) -> dict[str, Any]:
        expect_file(params, "weights")
        expect_sides(params, "input_size", 32)
        return params

    def __init__(self, weights: Path, resize: bool = True, input_size: tuple[int, int] = (498, 664)):
        super().__init__()
        self.check_params({"input_size": input_size}, Path("."))
        self.resize_input, self.input_size = resize, tuple(input_size)
        ckpt = load_checkpoint(weights, "linearity", RELEASE, RESAVE)
        if not isinstance(ckpt, dict) or "model" not in ckpt or "k" not in ckpt or "b" not in ckpt:
            keys = sorted(ckpt)[:6] if isinstance(ckpt, dict) else type(ckpt).__name__
            raise CheckpointError(f"linearity: {weights} is not a LinearityIQA checkpoint: expected a dict with "
                                  f"'model', 'k' and 'b' (as main.py saves it), got {keys}")
        try:
            self.k, self.b = float(ckpt["k"][0]), float(ckpt["b"][0])
        except (TypeError, ValueError, IndexError) as exc:
            raise CheckpointError(f"linearity: {weights}: 'k'/'b' must be lists of numbers ({exc})") from None
        self.normalise = Normalise(IMAGENET_MEAN, IMAGENET_STD)
        self.net = LinearityNet()
        load_strict(self.net, unwrap(ckpt["model"], weights, "linearity"), weights, "linearity")
        freeze(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, "linearity")
        if self.resize_input:
            x = resize(x, self.input_size)
        return self.net(self.normalise(x))[-1].reshape(-1) * self.k + self.b
