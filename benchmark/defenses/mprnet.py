"""MPRNet denoising as a purifier (Zamir, Arora, Khan, Hayat, Khan, Yang, Shao, "Multi-Stage Progressive Image
Restoration", CVPR 2021; official code swz30/MPRNet, ``Denoising/MPRNet.py``), as the purification study
(AleksandrGushchin/adversarial_purification, ``defenses/transforms/mprnet.py``) and Guardians
(``metrics/defences/mprnet``) run it.

Facts from the official code:

- ``MPRNet(in_c=3, out_c=3, n_feat=80, scale_unetfeats=48, scale_orsnetfeats=32, num_cab=8, kernel_size=3,
  reduction=4, bias=False)`` (the denoising defaults). One ``nn.PReLU()`` is shared by every channel-attention
  block (CAB), so its single weight appears under every CAB's ``body.1.weight`` key.
- Stage 1 runs a U-Net encoder/decoder on the four quadrants, stage 2 on the two halves (with cross-stage
  feature fusion), each followed by a supervised attention module; stage 3 is the original-resolution
  subnetwork (three ORBs of ``num_cab`` CABs). ``forward`` returns ``[stage3 + x, stage2, stage1]``; the
  restored image is the first, clamped to [0, 1].
- Pre-processing (the study and Guardians): reflect-pad the bottom/right to a multiple of 8, restore, crop
  back. Inputs are RGB in [0, 1], no normalisation.
- Checkpoint: ``{'state_dict': ..., ...}`` (``Denoising/utils/model_utils.py``: a ``module.`` prefix from
  DataParallel is stripped when present). The release is ``model_denoising.pth`` (Denoising/pretrained_models/
  README.md, :data:`URL`); the studies' copy of it is named ``mprnet_denoise.pth``.

Parameter: ``weights`` (required). Differentiable, deterministic, batch inference on the input's device.
The official file is under the MPRNet Academic Public License (non-commercial, same licence), so the test
compares this module with outputs recorded from it, not with a copy of it (tests/defenses/test_mprnet.py).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..metrics.checkpoints import freeze, load_strict, strip_prefixes, unwrap
from ..registry import DEFENSES
from ..weights import CheckpointError, load_checkpoint
from .base import CheckpointDefense

FILE = "model_denoising.pth"
URL = "https://drive.google.com/file/d/1LODPt9kYmxwU98g96UrRA0_Eh5HYcsRw/view"
MULTIPLE = 8


def conv(cin: int, cout: int, k: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)


class CALayer(nn.Module):
    def __init__(self, c: int, reduction: int, bias: bool):
        super().__init__()
        self.conv_du = nn.Sequential(nn.Conv2d(c, c // reduction, 1, bias=bias), nn.ReLU(),
                                     nn.Conv2d(c // reduction, c, 1, bias=bias), nn.Sigmoid())

    def forward(self, x):
        return x * self.conv_du(x.mean(dim=(2, 3), keepdim=True))


class CAB(nn.Module):
    def __init__(self, c: int, k: int, reduction: int, bias: bool, act: nn.Module):
        super().__init__()
        self.body = nn.Sequential(conv(c, c, k, bias), act, conv(c, c, k, bias))
        self.CA = CALayer(c, reduction, bias)

    def forward(self, x):
        return self.CA(self.body(x)) + x


class SAM(nn.Module):
    def __init__(self, c: int, bias: bool):
        super().__init__()
        self.conv1, self.conv2, self.conv3 = conv(c, c, 1, bias), conv(c, 3, 1, bias), conv(3, c, 1, bias)

    def forward(self, x, x_img):
        img = self.conv2(x) + x_img
        return self.conv1(x) * torch.sigmoid(self.conv3(img)) + x, img


class Down(nn.Module):
    """``DownSample``: bilinear ×0.5, then a 1×1 conv c → c+s (the official ``down`` Sequential)."""

    def __init__(self, c: int, s: int):
        super().__init__()
        self.down = nn.Sequential(nn.Upsample(scale_factor=0.5, mode="bilinear", align_corners=False),
                                  nn.Conv2d(c, c + s, 1, bias=False))

    def forward(self, x):
        return self.down(x)


class Up(nn.Module):
    """``UpSample``/``SkipUpSample``: bilinear ×2, a 1×1 conv c+s → c, plus the skip when given."""

    def __init__(self, c: int, s: int):
        super().__init__()
        self.up = nn.Sequential(nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False),
                                nn.Conv2d(c + s, c, 1, bias=False))

    def forward(self, x, skip=None):
        x = self.up(x)
        return x if skip is None else x + skip


def cabs(n: int, c: int, k: int, reduction: int, bias: bool, act: nn.Module) -> nn.Sequential:
    return nn.Sequential(*[CAB(c, k, reduction, bias, act) for _ in range(n)])


class Encoder(nn.Module):
    def __init__(self, n: int, k: int, red: int, act: nn.Module, bias: bool, s: int, csff: bool):
        super().__init__()
        widths = [n, n + s, n + 2 * s]
        for i, c in enumerate(widths, 1):
            setattr(self, f"encoder_level{i}", cabs(2, c, k, red, bias, act))
        self.down12, self.down23 = Down(n, s), Down(n + s, s)
        if csff:
            for i, c in enumerate(widths, 1):
                setattr(self, f"csff_enc{i}", nn.Conv2d(c, c, 1, bias=bias))
                setattr(self, f"csff_dec{i}", nn.Conv2d(c, c, 1, bias=bias))

    def forward(self, x, enc=None, dec=None):
        outs = []
        for i in (1, 2, 3):
            if i > 1:
                x = (self.down12 if i == 2 else self.down23)(x)
            x = getattr(self, f"encoder_level{i}")(x)
            if enc is not None and dec is not None:
                x = x + getattr(self, f"csff_enc{i}")(enc[i - 1]) + getattr(self, f"csff_dec{i}")(dec[i - 1])
            outs.append(x)
        return outs


class Decoder(nn.Module):
    def __init__(self, n: int, k: int, red: int, act: nn.Module, bias: bool, s: int):
        super().__init__()
        for i, c in enumerate([n, n + s, n + 2 * s], 1):
            setattr(self, f"decoder_level{i}", cabs(2, c, k, red, bias, act))
        self.skip_attn1, self.skip_attn2 = CAB(n, k, red, bias, act), CAB(n + s, k, red, bias, act)
        self.up21, self.up32 = Up(n, s), Up(n + s, s)

    def forward(self, outs):
        enc1, enc2, enc3 = outs
        dec3 = self.decoder_level3(enc3)
        dec2 = self.decoder_level2(self.up32(dec3, self.skip_attn2(enc2)))
        dec1 = self.decoder_level1(self.up21(dec2, self.skip_attn1(enc1)))
        return [dec1, dec2, dec3]


class ORB(nn.Module):
    def __init__(self, c: int, k: int, red: int, act: nn.Module, bias: bool, num_cab: int):
        super().__init__()
        self.body = nn.Sequential(*[CAB(c, k, red, bias, act) for _ in range(num_cab)], conv(c, c, k))

    def forward(self, x):
        return self.body(x) + x


class ORSNet(nn.Module):
    def __init__(self, n: int, so: int, k: int, red: int, act: nn.Module, bias: bool, s: int, num_cab: int):
        super().__init__()
        self.orb1, self.orb2, self.orb3 = (ORB(n + so, k, red, act, bias, num_cab) for _ in range(3))
        self.up_enc1, self.up_dec1 = Up(n, s), Up(n, s)
        self.up_enc2 = nn.Sequential(Up(n + s, s), Up(n, s))
        self.up_dec2 = nn.Sequential(Up(n + s, s), Up(n, s))
        for name in ("enc", "dec"):
            for i in (1, 2, 3):
                setattr(self, f"conv_{name}{i}", nn.Conv2d(n, n + so, 1, bias=bias))

    def forward(self, x, enc, dec):
        x = self.orb1(x) + self.conv_enc1(enc[0]) + self.conv_dec1(dec[0])
        x = self.orb2(x) + self.conv_enc2(self.up_enc1(enc[1])) + self.conv_dec2(self.up_dec1(dec[1]))
        return self.orb3(x) + self.conv_enc3(self.up_enc2(enc[2])) + self.conv_dec3(self.up_dec2(dec[2]))


class MPRNet(nn.Module):
    """The official multi-stage network; ``forward`` returns the stage-3 restoration (``[0]`` of the official)."""

    def __init__(self, n_feat: int = 80, scale_unetfeats: int = 48, scale_orsnetfeats: int = 32, num_cab: int = 8,
                 kernel_size: int = 3, reduction: int = 4, bias: bool = False):
        super().__init__()
        n, s, so, k, red = n_feat, scale_unetfeats, scale_orsnetfeats, kernel_size, reduction
        act = nn.PReLU()  # one module shared by every CAB, as in the official code
        for i in (1, 2, 3):
            setattr(self, f"shallow_feat{i}", nn.Sequential(conv(3, n, k, bias), CAB(n, k, red, bias, act)))
        self.stage1_encoder = Encoder(n, k, red, act, bias, s, csff=False)
        self.stage1_decoder = Decoder(n, k, red, act, bias, s)
        self.stage2_encoder = Encoder(n, k, red, act, bias, s, csff=True)
        self.stage2_decoder = Decoder(n, k, red, act, bias, s)
        self.stage3_orsnet = ORSNet(n, so, k, red, act, bias, s, num_cab)
        self.sam12, self.sam23 = SAM(n, bias), SAM(n, bias)
        self.concat12 = conv(2 * n, n, k, bias)
        self.concat23 = conv(2 * n, n + so, k, bias)
        self.tail = conv(n + so, 3, k, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        halves = [x[:, :, : h // 2], x[:, :, h // 2:]]
        feats1, decs1, sams = [], [], []
        for half in halves:  # stage 1: the four quadrants, encoded, joined left|right per half, decoded
            quads = [self.stage1_encoder(self.shallow_feat1(q)) for q in (half[..., : w // 2], half[..., w // 2:])]
            feat = [torch.cat(pair, 3) for pair in zip(*quads)]
            dec = self.stage1_decoder(feat)
            feats1.append(feat)
            decs1.append(dec)
            sams.append(self.sam12(dec[0], half)[0])
        feats2 = [self.stage2_encoder(self.concat12(torch.cat([self.shallow_feat2(half), sam], 1)), f, d)
                  for half, sam, f, d in zip(halves, sams, feats1, decs1)]
        feat2 = [torch.cat(pair, 2) for pair in zip(*feats2)]
        res2 = self.stage2_decoder(feat2)
        sam3 = self.sam23(res2[0], x)[0]
        x3 = self.concat23(torch.cat([self.shallow_feat3(x), sam3], 1))
        return self.tail(self.stage3_orsnet(x3, feat2, res2)) + x


def restore(net: nn.Module, x: torch.Tensor, multiple: int = MULTIPLE) -> torch.Tensor:
    """The studies' call: reflect-pad bottom/right to a multiple of 8, restore, clamp, crop back."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    padded = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else x
    return net(padded).clamp(0, 1)[..., :h, :w]


@DEFENSES.register("mprnet")
class MPRNetPurifier(CheckpointDefense):
    """MPRNet denoising (Zamir et al., CVPR 2021), released ``model_denoising.pth``; pads to a multiple of 8."""

    def __init__(self, weights: Path):
        super().__init__()
        weights = Path(weights)
        hint = (f"download the official MPRNet denoising weights {FILE} from {URL} (swz30/MPRNet, "
                f"Denoising/pretrained_models/README.md) and put it at {weights}")
        try:
            ck = load_checkpoint(weights, "mprnet", hint=hint, key="weights")
            self.net = MPRNet()
            load_strict(self.net, strip_prefixes(unwrap(ck, weights, "mprnet", keys=("state_dict",))), weights,
                        "mprnet")
        except CheckpointError as exc:
            raise ConfigError(str(exc), key="weights") from None
        freeze(self.net)

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return restore(self.net, x)
