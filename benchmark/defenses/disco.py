"""DISCO as a purifier (Ho, Vasconcelos, "DISCO: Adversarial Defense with Local Implicit Functions",
NeurIPS 2022; official code chiaweiho/DISCO), as the Guardians benchmark runs it
(msu-video-group/adversarial-defenses-for-iqa, ``metrics/defences/disco``: ``inr.INR(device, ['disco_pgd.pth'])``).

DISCO is a local implicit image function (LIIF: Chen, Liu, Wang, "Learning Continuous Image Representation
with Local Implicit Image Function", CVPR 2021, yinboc/liif) trained to map adversarial images to clean ones.
Facts from the official code (DISCO's ``models/liif.py``, ``edsr.py``, ``mlp.py`` and
``robustbench/model_zoo/defense/inr.py``, as copied into Guardians):

- The checkpoint is ``{'model': {'name': 'liif', 'args': {...}, 'sd': state_dict}, ...}`` and the network is
  built from its own spec (``models.make(ckpt['model'], load_sd=True)``). Defaults (LIIF's
  ``train_edsr-baseline-liif.yaml``, kept by DISCO): encoder ``edsr-baseline`` (16 residual blocks, 64
  features, ``res_scale`` 1, ``no_upsampling: true``; the mean-shift convolutions exist in the state dict but
  are never called), implicit function ``mlp`` with ``hidden_list [256, 256, 256, 256]`` and ``out_dim 3``,
  ``local_ensemble``, ``feat_unfold`` (3×3 neighbourhood, DISCO's ``feat_unfold_kernel``: 3, 5 or 7) and
  ``cell_decode`` all true.
- A query at coordinate ``c`` (pixel centres in [-1, 1]², ``make_coord``) takes, for each of the four nearest
  feature cells (``grid_sample`` nearest, shifted by ±1 cell and 1e-6), the unfolded feature, the offset to
  that cell's centre and the cell size, all scaled to feature-pixel units; the MLP's four predictions are
  blended by the areas of the opposite rectangles.
- ``INR.forward``: input ``(x − 0.5) / 0.5``; the image is queried at every pixel centre of the output grid
  with cell ``2/H × 2/W`` (queries in chunks of 90 000); output ``pred · 0.5 + 0.5`` clamped to [0, 1].
  Guardians fixes the output grid to 299×299; here it is the input's own size (the defense keeps the size).

Release: ``disco_pgd.pth`` (ImageNet, PGD-trained pairs), from the DISCO README or the Guardians mirror
:data:`URL`. Parameter: ``weights`` (required). Differentiable (gradients reach the input through the encoder),
deterministic with one checkpoint, batch inference on the input's device. The architecture read from a
checkpoint is bounded, so a crafted file cannot make loading allocate without limit.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..metrics.checkpoints import freeze, load_strict, unwrap
from ..registry import DEFENSES
from ..weights import CheckpointError, load_checkpoint
from .base import CheckpointDefense

FILE = "disco_pgd.pth"
URL = "https://titan.gml-team.ru:5003/fsdownload/zBJ7GXlz0/disco_pgd.pth"
QUERIES = 90_000  # queries per chunk for one image (inr.py's bsize)
ENCODERS = {"edsr-baseline": {"n_resblocks": 16, "n_feats": 64, "res_scale": 1, "scale": 2,
                              "no_upsampling": False, "rgb_range": 1},
            "edsr": {"n_resblocks": 32, "n_feats": 256, "res_scale": 0.1, "scale": 2, "no_upsampling": False,
                     "rgb_range": 1}}


class MeanShift(nn.Conv2d):
    """EDSR's mean-shift 1×1 convolution: in the state dict, never called by LIIF's encoder."""

    def __init__(self, rgb_range: float, sign: int):
        super().__init__(3, 3, 1)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1)
        self.bias.data = sign * rgb_range * torch.tensor([0.4488, 0.4371, 0.4040])


class ResBlock(nn.Module):
    def __init__(self, n: int, res_scale: float):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n, n, 3, padding=1), nn.ReLU(), nn.Conv2d(n, n, 3, padding=1))
        self.res_scale = res_scale

    def forward(self, x):
        return self.body(x) * self.res_scale + x


class EDSR(nn.Module):
    """LIIF's EDSR encoder: head conv, residual blocks + conv with a long skip, optional pixel-shuffle tail."""

    def __init__(self, n_resblocks: int, n_feats: int, res_scale: float, scale: int, no_upsampling: bool,
                 rgb_range: float):
        super().__init__()
        self.sub_mean, self.add_mean = MeanShift(rgb_range, -1), MeanShift(rgb_range, 1)
        self.head = nn.Sequential(nn.Conv2d(3, n_feats, 3, padding=1))
        self.body = nn.Sequential(*[ResBlock(n_feats, res_scale) for _ in range(n_resblocks)],
                                  nn.Conv2d(n_feats, n_feats, 3, padding=1))
        self.out_dim = n_feats if no_upsampling else 3
        if not no_upsampling:
            if scale not in (2, 3, 4, 8):
                raise ValueError(f"encoder scale {scale} is not one of 2, 3, 4, 8")
            steps = [(9, 3)] if scale == 3 else [(4, 2)] * {2: 1, 4: 2, 8: 3}[scale]
            up = []
            for mult, r in steps:
                up += [nn.Conv2d(n_feats, mult * n_feats, 3, padding=1), nn.PixelShuffle(r)]
            self.tail = nn.Sequential(nn.Sequential(*up), nn.Conv2d(n_feats, 3, 3, padding=1))

    def forward(self, x):
        x = self.head(x)
        x = self.body(x) + x
        return self.tail(x) if hasattr(self, "tail") else x


class MLP(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hidden_list: list[int]):
        super().__init__()
        layers, last = [], in_dim
        for h in hidden_list:
            layers += [nn.Linear(last, h), nn.ReLU()]
            last = h
        self.layers = nn.Sequential(*layers, nn.Linear(last, out_dim))

    def forward(self, x):
        return self.layers(x)


def make_coord(shape: tuple[int, ...], device=None) -> torch.Tensor:
    """Pixel-centre coordinates in [-1, 1] of a grid, ``(*shape, len(shape))`` (LIIF's ``make_coord``)."""
    seqs = [-1 + 1 / n + (2 / n) * torch.arange(n, device=device, dtype=torch.float32) for n in shape]
    return torch.stack(torch.meshgrid(*seqs, indexing="ij"), dim=-1)


class LIIF(nn.Module):
    """The local implicit image function of DISCO (LIIF with ``feat_unfold_kernel``)."""

    def __init__(self, encoder: dict, imnet: dict | None, local_ensemble: bool = True, feat_unfold: bool = True,
                 cell_decode: bool = True, feat_unfold_kernel: int | None = None):
        super().__init__()
        self.local_ensemble, self.feat_unfold, self.cell_decode = local_ensemble, feat_unfold, cell_decode
        self.kernel = 3 if feat_unfold_kernel is None else int(feat_unfold_kernel)
        if self.kernel not in (3, 5, 7):
            raise ValueError(f"feat_unfold_kernel {self.kernel} is not 3, 5 or 7")
        self.encoder = EDSR(**encoder)
        self.imnet = None
        if imnet is not None:
            dim = self.encoder.out_dim * (self.kernel ** 2 if feat_unfold else 1) + 2 + (2 if cell_decode else 0)
            self.imnet = MLP(dim, **imnet)

    def query(self, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """RGB at ``coord`` (B×Q×2) from the feature map ``feat`` (B×C×h×w): B×Q×3."""
        sample = lambda f, c: F.grid_sample(f, c.flip(-1).unsqueeze(1), mode="nearest",
                                            align_corners=False)[:, :, 0, :].permute(0, 2, 1)
        if self.imnet is None:
            return sample(feat, coord)
        h, w = feat.shape[-2:]
        if self.feat_unfold:
            feat = F.unfold(feat, self.kernel, padding=self.kernel // 2).view(feat.shape[0], -1, h, w)
        shifts, eps = ([-1, 1], 1e-6) if self.local_ensemble else ([0], 0.0)
        feat_coord = make_coord((h, w), feat.device).to(feat.dtype).permute(2, 0, 1).unsqueeze(0)
        feat_coord = feat_coord.expand(feat.shape[0], 2, h, w)
        scale = torch.tensor([h, w], device=feat.device, dtype=feat.dtype)
        preds, areas = [], []
        for vx in shifts:
            for vy in shifts:
                offset = torch.tensor([vx / h + eps, vy / w + eps], device=feat.device, dtype=coord.dtype)
                shifted = (coord + offset).clamp(-1 + 1e-6, 1 - 1e-6)
                rel = (coord - sample(feat_coord, shifted)) * scale
                inp = [sample(feat, shifted), rel] + ([cell * scale] if self.cell_decode else [])
                preds.append(self.imnet(torch.cat(inp, dim=-1)))
                areas.append((rel[..., 0] * rel[..., 1]).abs() + 1e-9)
        total = torch.stack(areas).sum(dim=0)
        if self.local_ensemble:  # each prediction is weighted by the area of the diagonally opposite rectangle
            areas = areas[::-1]
        return sum(p * (a / total).unsqueeze(-1) for p, a in zip(preds, areas))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The image re-rendered at its own size: in and out in the network's [-1, 1] range, B×3×H×W."""
        b, _, h, w = x.shape
        feat = self.encoder(x)
        coord = make_coord((h, w), x.device).to(x.dtype).view(1, -1, 2).expand(b, -1, -1)
        cell = torch.tensor([2 / h, 2 / w], device=x.device, dtype=x.dtype).expand_as(coord)
        step = max(1, QUERIES // b)
        out = torch.cat([self.query(feat, coord[:, i:i + step], cell[:, i:i + step])
                         for i in range(0, coord.shape[1], step)], dim=1)
        return out.view(b, h, w, -1).permute(0, 3, 1, 2)


def bounded(spec: dict, path: Path) -> LIIF:
    """A LIIF built from a checkpoint's ``model`` spec, its sizes bounded; a foreign spec is a CheckpointError."""
    def refuse(why: str) -> CheckpointError:
        return CheckpointError(f"disco: {path} is not a DISCO (LIIF) checkpoint: {why}")

    if not isinstance(spec, dict) or spec.get("name") != "liif" or not isinstance(spec.get("args"), dict):
        raise refuse(f"expected ckpt['model'] = {{'name': 'liif', 'args', 'sd'}}, got {str(spec)[:80]}")
    args = dict(spec["args"])
    enc, imnet = args.pop("encoder_spec", None), args.pop("imnet_spec", None)
    if not isinstance(enc, dict) or enc.get("name") not in ENCODERS:
        raise refuse(f"encoder {str(enc)[:80]} is not one of {sorted(ENCODERS)}")
    enc_args = {**ENCODERS[enc["name"]], **enc.get("args", {})}
    if imnet is not None:
        if not isinstance(imnet, dict) or imnet.get("name") != "mlp":
            raise refuse(f"implicit function {str(imnet)[:80]} is not an 'mlp'")
        imnet = {k: v for k, v in imnet.get("args", {}).items() if k != "in_dim"}
    hidden = (imnet or {}).get("hidden_list", [])
    hidden = list(hidden) if isinstance(hidden, (list, tuple)) else [hidden]
    sizes = [(enc_args.get("n_resblocks"), 0, 256), (enc_args.get("n_feats"), 1, 1024), (len(hidden), 0, 32),
             *((h, 1, 8192) for h in hidden), ((imnet or {}).get("out_dim", 3), 1, 16)]
    if not all(isinstance(v, int) and lo <= v <= hi for v, lo, hi in sizes):
        raise refuse(f"architecture out of bounds (blocks, features, MLP depth and widths: {[v for v, *_ in sizes]})")
    try:
        return LIIF(enc_args, imnet, **args)
    except (TypeError, ValueError) as exc:
        raise refuse(str(exc)) from None


@DEFENSES.register("disco")
class DISCOPurifier(CheckpointDefense):
    """DISCO (Ho & Vasconcelos, NeurIPS 2022): a local implicit function re-renders the image at its own size."""

    def __init__(self, weights: Path):
        super().__init__()
        weights = Path(weights)
        hint = (f"download {FILE} from {URL} (the Guardians mirror; the release is listed in the README of "
                f"github.com/chiaweiho/DISCO) and put it at {weights}")
        try:
            ck = load_checkpoint(weights, "disco", hint=hint, key="weights")
            spec = ck.get("model") if isinstance(ck, dict) else None
            self.net = bounded(spec, weights)
            load_strict(self.net, unwrap(spec.get("sd"), weights, "disco", keys=()), weights, "disco")
        except CheckpointError as exc:
            raise ConfigError(str(exc), key="weights") from None
        freeze(self.net)

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return (self.net((x - 0.5) / 0.5) * 0.5 + 0.5).clamp(0, 1)
