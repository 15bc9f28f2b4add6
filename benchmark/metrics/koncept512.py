"""KonCept512 (Hosu, Lin, Sziranyi, Saupe, "KonIQ-10k: An Ecologically Valid Database for Deep Learning of
Blind Image Quality Assessment", IEEE TIP 2020), the PyTorch ``KonCept512.pth`` that the certified study
attacked; KonIQ-10k MOS, about 0–100, higher is better.

Facts from the public code:

- subpic/koniq (``koncept512_train_test_py3.ipynb``): the original Keras model, an ImageNet
  InceptionResNetV2 with a head ``fc_sizes = [2048, 1024, 256, 1]``, ``dropout_rates = [0.25, 0.25, 0.5, 0]``
  and batch norm, trained on the 512×384 (w×h) KonIQ-10k images, ``input_shape = (384, 512, 3)``,
  InceptionResNetV2 pre-processing (``x / 127.5 - 1``).
- The PyTorch port whose ``KonCept512.pth`` katiashh/certified-iqa-defenses and
  msu-video-group/adversarial-defenses-for-iqa load (``ccrf/calc_nms_koncept.py``;
  ``metrics/subjects/koncept/src/model.py``): ``model_qa`` = ``base``, an ``nn.Sequential`` of the children of
  Cadene's ``pretrainedmodels`` InceptionResNetV2 without ``last_linear`` (conv2d_1a … conv2d_7b, then
  ``avgpool_1a = AvgPool2d(8, count_include_pad=False)``: a fixed 8×8 window, not a global pool, so on a
  384×512 input only the top-left 8×8 of the 10×14 feature map is averaged), then ``fc`` = Linear(1536,
  2048) → ReLU → BN → Dropout(0.25) → Linear(2048, 1024) → ReLU → BN → Dropout(0.25) → Linear(1024, 256) →
  ReLU → BN → Dropout(0.5) → Linear(256, 1). ``KonCept512.pth`` is that module's bare state dict (keys
  ``base.0.conv.weight`` … ``fc.12.bias``). Its training script (the port's ``train.py``) feeds 384×512
  (h×w) images normalised with mean = std = 0.5 and regresses the ``MOS`` column of
  ``koniq10k_distributions_sets.csv`` (range 3.9–88.4).
- The certified study's wrapper applies ``transforms.Resize([512, 384])`` (h×w: 512 high, 384 wide) and
  the 0.5/0.5 normalisation to every image: set ``input_size = [512, 384]`` to reproduce it exactly; the
  default here is the port's training size, 384×512 (h×w).

The backbone is timm's ``inception_resnet_v2`` (a dependency of pyiqa, built without pretrained weights),
whose layers carry the same names and shapes as Cadene's; the resize is torch's antialiased bilinear
interpolation, so the metric is differentiable end to end. Release: the certified-iqa-defenses README
(Google Drive file ``1fzFjWMQw4x_6lv3ZOxaqx3qI6I-q3Lrk``); the ImageNet backbone file it also lists is not
needed (the checkpoint holds the whole network).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import MissingWeightsError
from ..params import expect_file
from ..registry import METRICS
from .base import Metric, check_images
from .checkpoints import Normalise, expect_sides, freeze, load_checkpoint, load_strict, resize, strip_prefixes, unwrap

RELEASE = ("the certified-iqa-defenses README (github.com/katiashh/certified-iqa-defenses: Google Drive file "
           "1fzFjWMQw4x_6lv3ZOxaqx3qI6I-q3Lrk, KonCept512.pth)")
LAYERS = ("conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a", "maxpool_5a", "mixed_5b",
          "repeat", "mixed_6a", "repeat_1", "mixed_7a", "repeat_2", "block8", "conv2d_7b")
MIN_SIDE, MAX_SIDE = 299, 554  # input sides whose final feature map is 8..15 (one 8×8 avgpool_1a window)


def _down(n: int) -> int:
    return (n - 3) // 2 + 1  # a 3×3 convolution or pool, stride 2, no padding


def feature_side(n: int) -> int:
    """Side of InceptionResNetV2's last feature map for an input side ``n`` (valid convs and pools)."""
    n = _down(n) - 2  # conv2d_1a, conv2d_2a (conv2d_2b keeps the size)
    n = _down(n) - 2  # maxpool_3a, conv2d_4a (conv2d_3b is 1×1)
    return _down(_down(_down(n)))  # maxpool_5a, mixed_6a, mixed_7a


class KonCeptNet(nn.Module):
    """The port's ``model_qa``: keys ``base.<i>.*`` and ``fc.<i>.*`` as in ``KonCept512.pth``."""

    def __init__(self):
        super().__init__()
        try:
            import timm
        except ImportError:
            raise MissingWeightsError("koncept512", "the timm package",
                                      "pip install timm (a dependency of pyiqa)") from None
        backbone = timm.create_model("inception_resnet_v2", pretrained=False, num_classes=0)
        self.base = nn.Sequential(*[getattr(backbone, n) for n in LAYERS], nn.AvgPool2d(8, count_include_pad=False))
        self.fc = nn.Sequential(
            nn.Linear(1536, 2048), nn.ReLU(inplace=True), nn.BatchNorm1d(2048), nn.Dropout(p=0.25),
            nn.Linear(2048, 1024), nn.ReLU(inplace=True), nn.BatchNorm1d(1024), nn.Dropout(p=0.25),
            nn.Linear(1024, 256), nn.ReLU(inplace=True), nn.BatchNorm1d(256), nn.Dropout(p=0.5),
            nn.Linear(256, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.base(x).flatten(1))


@METRICS.register("koncept512")
class KonCept512(Metric):
    """KonCept512 (Hosu et al., TIP 2020): InceptionResNetV2, the certified study's port; MOS 0–100, higher better.

    ``weights``: ``KonCept512.pth`` (a bare state dict of the PyTorch port). Images are resized to
    ``input_size`` (h×w, default 384×512, the training size; the certified study used [512, 384]) and
    normalised with mean = std = 0.5.
    """

    lower_better = False
    score_range = (0.0, 100.0)

    @classmethod
    def check_params(cls, params: dict[str, Any], base: Path) -> dict[str, Any]:
        expect_file(params, "weights")
        expect_sides(params, "input_size", MIN_SIDE, MAX_SIDE)  # avgpool_1a must see one 8×8 window
        return params

    def __init__(self, weights: Path, input_size: tuple[int, int] = (384, 512)):
        super().__init__()
        self.check_params({"input_size": input_size}, Path("."))
        self.input_size = tuple(input_size)
        state = strip_prefixes(unwrap(load_checkpoint(weights, "koncept512", RELEASE), weights, "koncept512"))
        self.normalise = Normalise((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        self.net = KonCeptNet()
        load_strict(self.net, state, weights, "koncept512")
        freeze(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, "koncept512")
        return self.net(self.normalise(resize(x, self.input_size))).reshape(-1)
