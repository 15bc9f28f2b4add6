"""Real-ESRGAN x4plus as a purifier (Wang, Xie, Dong, Shan, "Real-ESRGAN: Training Real-World Blind
Super-Resolution with Pure Synthetic Data", ICCVW 2021; official code xinntao/Real-ESRGAN, network
``RRDBNet`` of XPixelGroup/BasicSR ``basicsr/archs/rrdbnet_arch.py``), used as the purification study uses
it (AleksandrGushchin/adversarial_purification, ``defenses/transforms/realesrgan.py``).

Facts from the official code:

- ``RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32, scale=4)`` (the
  ``RealESRGAN_x4plus`` entry of ``inference_realesrgan.py``): ``conv_first``; ``body`` = 23 RRDBs, each three
  residual dense blocks (five 3×3 convolutions, growth 32, LeakyReLU 0.2, residual ×0.2) with residual ×0.2;
  ``conv_body``; two nearest ×2 upsamplings each followed by a conv and LeakyReLU; ``conv_hr``, LeakyReLU,
  ``conv_last``. Input RGB in [0, 1], no normalisation.
- Release ``RealESRGAN_x4plus.pth`` (:data:`URL`), a dict whose ``params_ema`` (else ``params``) holds the
  state dict (``RealESRGANer``: ``loadnet['params_ema']``).
- The study calls ``RealESRGANer(...).enhance(img, outscale=1)``: super-resolve ×4 (no pre-padding:
  ``pre_pad=0``), clamp to [0, 1], then ``cv2.resize(..., (w, h), interpolation=cv2.INTER_LANCZOS4)`` back to
  the input size. It does *not* downscale first. Here that resize is OpenCV's Lanczos-4 written in torch
  (:func:`lanczos4_resize`: the same 8-tap kernel at the same sample positions, edge pixels replicated), so
  it is differentiable. Two steps of the study are left out so gradients pass: the rounding of the ×4 image
  to 8 bits before the resize, and ``enhance``'s BGR→RGB conversion of what was already RGB (the study's
  network saw channel-swapped images). The studies (this one and Guardians) ran the compact
  ``realesr-general-x4v3`` network (SRVGGNetCompact, denoise strength 0.2); this plugin runs x4plus.

``downscale_first = true`` runs the other common use of a super-resolver as a purifier instead: downscale by 4
(antialiased bicubic), super-resolve ×4, and Lanczos-resize to the input size if the side was not a multiple
of 4. Parameter: ``weights`` (required). Differentiable, deterministic, batch inference on the input's device;
the ×4 image costs 16× the memory of the input.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..metrics.checkpoints import freeze, load_strict, strip_prefixes, unwrap
from ..registry import DEFENSES
from ..weights import CheckpointError, load_checkpoint
from .base import CheckpointDefense

FILE = "RealESRGAN_x4plus.pth"
URL = "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth"
SCALE = 4


class ResidualDenseBlock(nn.Module):
    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32):
        super().__init__()
        for i in range(1, 6):
            cout = num_feat if i == 5 else num_grow_ch
            setattr(self, f"conv{i}", nn.Conv2d(num_feat + (i - 1) * num_grow_ch, cout, 3, 1, 1))
        self.lrelu = nn.LeakyReLU(0.2)

    def forward(self, x):
        feats = [x]
        for i in range(1, 5):
            feats.append(self.lrelu(getattr(self, f"conv{i}")(torch.cat(feats, 1))))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, num_feat: int, num_grow_ch: int = 32):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = (ResidualDenseBlock(num_feat, num_grow_ch) for _ in range(3))

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """The official ×4 RRDBNet (keys as ``params_ema`` of RealESRGAN_x4plus.pth)."""

    def __init__(self, num_feat: int = 64, num_block: int = 23, num_grow_ch: int = 32):
        super().__init__()
        self.conv_first = nn.Conv2d(3, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


def lanczos4_weights(src: int, dst: int) -> torch.Tensor:
    """The dst×src matrix of OpenCV's ``INTER_LANCZOS4`` along one axis: sample position
    ``(i + 0.5)·src/dst − 0.5``, 8 taps from ``floor − 3``, weights ``sin(πd)·sin(πd/4)/d²`` normalised to sum 1
    (the identity tap at integer positions), indices clamped to the edge."""
    fx = (torch.arange(dst, dtype=torch.float64) + 0.5) * (src / dst) - 0.5
    sx = torch.floor(fx)
    frac = fx - sx
    d = frac[:, None] + 3 - torch.arange(8, dtype=torch.float64)[None]
    w = torch.sin(math.pi * d) * torch.sin(math.pi * d / 4) / (d * d).clamp_min(1e-30)
    exact = frac < torch.finfo(torch.float32).eps
    w[exact] = torch.nn.functional.one_hot(torch.tensor(3), 8).double()
    w = w / w.sum(dim=1, keepdim=True)
    idx = (sx[:, None].long() - 3 + torch.arange(8)[None]).clamp(0, src - 1)
    return torch.zeros(dst, src, dtype=torch.float64).scatter_add_(1, idx, w)


def lanczos4_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``cv2.resize(x, (w, h), interpolation=cv2.INTER_LANCZOS4)`` of a B×C×H×W batch, differentiable."""
    (h, w), (sh, sw) = size, x.shape[-2:]
    if (h, w) == (sh, sw):
        return x
    wh = lanczos4_weights(sh, h).to(x.device, x.dtype)
    ww = lanczos4_weights(sw, w).to(x.device, x.dtype)
    return torch.einsum("hi,bcij,wj->bchw", wh, x, ww)


@DEFENSES.register("realesrgan")
class RealESRGANPurifier(CheckpointDefense):
    """Real-ESRGAN x4plus (Wang et al., ICCVW 2021): super-resolve ×4, Lanczos-4 back to the input size."""

    def __init__(self, weights: Path, downscale_first: bool = False):
        super().__init__()
        weights = Path(weights)
        self.downscale_first = bool(downscale_first)
        hint = f"download {FILE} from {URL} (xinntao/Real-ESRGAN release v0.1.0) and put it at {weights}"
        try:
            ck = load_checkpoint(weights, "realesrgan", hint=hint, key="weights")
            keys = ("params_ema", "params") if isinstance(ck, dict) and "params_ema" in ck else ("params",)
            self.net = RRDBNet()
            load_strict(self.net, strip_prefixes(unwrap(ck, weights, "realesrgan", keys=keys)), weights, "realesrgan")
        except CheckpointError as exc:
            raise ConfigError(str(exc), key="weights") from None
        freeze(self.net)

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        size = tuple(x.shape[-2:])
        if self.downscale_first:
            small = (max(1, size[0] // SCALE), max(1, size[1] // SCALE))
            x = F.interpolate(x, size=small, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        return lanczos4_resize(self.net(x).clamp(0, 1), size).clamp(0, 1)
