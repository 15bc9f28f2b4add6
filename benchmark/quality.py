"""Full-reference quality between image pairs: PSNR, SSIM and MS-SSIM in float32, to pyiqa's definitions.

PSNR, SSIM and MS-SSIM follow pyiqa's ``psnr``, ``ssim`` and ``ms_ssim`` exactly (MATLAB-calibrated):

- PSNR on the RGB channels, ``10·log10(1 / (MSE + 1e-8))`` (pyiqa's ``psnr``, ``test_y_channel=False``);
- SSIM (Wang et al., IEEE TIP 2004) on the Y channel of YIQ at 0–255, rounded to integers as MATLAB's
  ``uint8`` images are; 11×11 Gaussian window with σ = 1.5 (``fspecial``), "valid" filtering,
  ``C1 = (0.01·255)²``, ``C2 = (0.03·255)²``, the contrast-structure map clipped at 0 (ReLU), no
  down-sampling (pyiqa's default ``downsample=False``);
- MS-SSIM (Wang, Simoncelli & Bovik, Asilomar 2003) on the same Y channel: five scales, 2×2 average
  pooling between them with zero padding of an odd side (``padding = side % 2``, padded zeros counted),
  weights 0.0448, 0.2856, 0.3001, 0.2363, 0.1333, product form ``∏ cs_j^w_j · ssim_5^w_5``.

pyiqa computes SSIM and MS-SSIM in float64, which on a CPU is 8–120× slower than float32. Here they run in
float32 with a separable window and mean-centred second moments (so ``E[x²] − E[x]²`` loses no digits),
means accumulated in float64; ``tests/test_quality_fp32.py`` holds them to pyiqa's float64 values within
1e-4 on the TID2013 calibration images and on random images. TF32 is switched off for these convolutions.
FSIM (the synthetic dataset's label) and DISTS stay pyiqa's (FSIM already runs in the input's float32).
"""
from __future__ import annotations

import functools
import logging
import math

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


MS_SSIM_MIN_SIDE = 176  # five scales of an 11×11 window
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW, WINDOW_SIGMA = 11, 1.5
PSNR_EPS = 1e-8
PSNR_CAP = 100.0  # dB; identical images would give 80 dB (the 1e-8 floor); capped so means stay finite

# pyiqa's rgb2yiq matrix, applied the same way (float32 matmul), so the rounded Y values are identical.
_YIQ = ((0.299, 0.587, 0.114), (0.5959, -0.2746, -0.3213), (0.2115, -0.5227, 0.3112))


@functools.cache
def fr_metric(name: str, device: str = "cpu"):
    """A pyiqa full-reference metric (DISTS, FSIM), created once per (name, device)."""
    import pyiqa

    from .weights import offline_requested, weights_guard

    with weights_guard(name, download=not offline_requested()):
        return pyiqa.create_metric(name, as_loss=False, device=torch.device(device))


@torch.no_grad()
def fr_scores(name: str, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """B scores of the full-reference metric ``name`` for B×3×H×W ``dist`` against ``ref`` (both in [0,1]).

    ``psnr``, ``ssim`` and ``ms_ssim`` are this module's float32 versions; other names go to pyiqa."""
    own = {"psnr": psnr, "ssim": ssim, "ms_ssim": ms_ssim}
    if name in own:
        return own[name](dist.clamp(0, 1).float(), ref.clamp(0, 1).float()).cpu()
    m = fr_metric(name, str(dist.device))
    out = m(dist.clamp(0, 1).float(), ref.clamp(0, 1).float())
    return out.reshape(dist.shape[0], -1).mean(dim=1).cpu()


def _check(dist: torch.Tensor, ref: torch.Tensor) -> None:
    if dist.shape != ref.shape or dist.dim() != 4 or dist.shape[1] not in (1, 3):
        raise ValueError(f"need two B×C×H×W images of one shape with C = 1 or 3, got {tuple(dist.shape)} "
                         f"and {tuple(ref.shape)}")


def psnr(dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """pyiqa's PSNR (RGB, data range 1, ``+1e-8`` in the denominator) in dB, float64, per image."""
    _check(dist, ref)
    d = dist.float() - ref.float()
    mse = (d * d).mean(dim=(1, 2, 3), dtype=torch.float64)
    return 10 * torch.log10(1.0 / (mse + PSNR_EPS))


def luma255(x: torch.Tensor) -> torch.Tensor:
    """pyiqa's ``to_y_channel(x, 255, "yiq")``: the Y of YIQ at 0–255, rounded (B×1×H×W, float32)."""
    if x.shape[1] == 1:
        return (x.float() * 255).round()
    w = torch.tensor(_YIQ, dtype=torch.float32, device=x.device).t()
    y = torch.matmul(x.float().permute(0, 2, 3, 1), w).permute(0, 3, 1, 2)[:, :1] * 255
    return y.round()


@functools.cache
def _gauss1d(size: int, sigma: float) -> torch.Tensor:
    # fspecial's window is the outer product of this normalised 1-D Gaussian with itself (no tap falls
    # below eps·max for 11 taps at σ = 1.5, so MATLAB's zeroing of tiny taps does not apply).
    k = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(k * k) / (2 * sigma * sigma))
    return (g / g.sum()).float()


def _filter_valid(maps: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filtering of every channel of B×C×H×W ``maps``."""
    c = maps.shape[1]
    g = _gauss1d(WINDOW, WINDOW_SIGMA).to(maps.device)
    out = F.conv2d(maps, g.view(1, 1, 1, -1).expand(c, 1, 1, WINDOW), groups=c)
    return F.conv2d(out, g.view(1, 1, -1, 1).expand(c, 1, WINDOW, 1), groups=c)


def _ssim_cs(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure term (float64, per image) of B×1×H×W images at 0–255."""
    if min(x.shape[-2:]) < WINDOW:
        raise ValueError(f"SSIM needs images of at least {WINDOW}×{WINDOW} pixels, got {tuple(x.shape[-2:])}")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    # Second moments of mean-centred images: shift-invariant, and float32 keeps their digits.
    m = 0.5 * (x.mean(dim=(1, 2, 3), keepdim=True) + y.mean(dim=(1, 2, 3), keepdim=True))
    xc, yc = x - m, y - m
    f = _filter_valid(torch.cat([xc, yc, xc * xc, yc * yc, xc * yc], dim=1))
    mx, my = f[:, 0:1], f[:, 1:2]
    sxx, syy, sxy = f[:, 2:3] - mx * mx, f[:, 3:4] - my * my, f[:, 4:5] - mx * my
    mx, my = mx + m, my + m
    cs = torch.relu((2 * sxy + c2) / (sxx + syy + c2))
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    return (lum * cs).mean(dim=(1, 2, 3), dtype=torch.float64), cs.mean(dim=(1, 2, 3), dtype=torch.float64)


def _no_tf32(device: torch.device):
    if device.type == "cuda":
        return torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=False, allow_tf32=False)
    import contextlib

    return contextlib.nullcontext()


def ssim(dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """pyiqa's SSIM (Y channel, 0–255, 11×11 σ = 1.5 window, valid, no down-sampling), float64 per image."""
    _check(dist, ref)
    with _no_tf32(dist.device):
        return _ssim_cs(luma255(dist), luma255(ref))[0]


def ms_ssim(dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """pyiqa's MS-SSIM (Y channel, five scales, product form), float64 per image; needs sides ≥ 176."""
    _check(dist, ref)
    if min(dist.shape[-2:]) < MS_SSIM_MIN_SIDE:
        raise ValueError(f"MS-SSIM needs sides of at least {MS_SSIM_MIN_SIDE} pixels (five scales of an "
                         f"{WINDOW}×{WINDOW} window), got {tuple(dist.shape[-2:])}")
    x, y = luma255(dist), luma255(ref)
    mcs = []
    with _no_tf32(dist.device):
        for _ in MS_SSIM_WEIGHTS:
            ssim_val, cs = _ssim_cs(x, y)
            mcs.append(cs)
            padding = (x.shape[2] % 2, x.shape[3] % 2)
            x, y = F.avg_pool2d(x, 2, padding=padding), F.avg_pool2d(y, 2, padding=padding)
    # pyiqa's weights are a FloatTensor: their float32 values, as float64
    w = torch.tensor(MS_SSIM_WEIGHTS, dtype=torch.float32).double().to(ssim_val.device)
    mcs = torch.stack(mcs[:-1])
    return torch.prod(mcs ** w[:-1, None], dim=0) * ssim_val ** w[-1]


def quality_keys(lpips: bool = False, dists: bool = False) -> tuple[str, ...]:
    """The names :func:`pair_quality` returns, in its order."""
    return ("psnr", "ssim", "ms_ssim") + (("dists",) if dists else ()) + (("lpips",) if lpips else ())


@torch.no_grad()
def pair_quality(dist: torch.Tensor, ref: torch.Tensor, lpips: bool = False, dists: bool = False
                 ) -> dict[str, torch.Tensor]:
    """PSNR, SSIM and MS-SSIM of ``dist`` against ``ref`` (every attack/defense record; MS-SSIM is NaN
    below 176 pixels, its five-scale minimum), and LPIPS / DISTS if asked for (their weights must be here)."""
    dist, ref = dist.clamp(0, 1).float(), ref.clamp(0, 1).float()
    out = {"psnr": torch.clamp(psnr(dist, ref), max=PSNR_CAP).cpu(), "ssim": ssim(dist, ref).cpu()}
    if min(dist.shape[-2:]) >= MS_SSIM_MIN_SIDE:
        out["ms_ssim"] = ms_ssim(dist, ref).cpu()
    else:
        out["ms_ssim"] = torch.full((dist.shape[0],), float("nan"), dtype=torch.float64)
    if dists:
        out["dists"] = fr_scores("dists", dist, ref)
    if lpips:
        from .perceptual import lpips_distance

        out["lpips"] = lpips_distance(dist, ref)
    return out


def identical_quality(n: int, side: int, lpips: bool = False, dists: bool = False) -> dict[str, torch.Tensor]:
    """What :func:`pair_quality` gives for ``n`` pairs of identical images (smallest side ``side``), without
    computing it: PSNR at zero error (``10·log10(1/1e-8)`` = 80 dB), SSIM and MS-SSIM 1 (NaN below 176 px,
    as measured), LPIPS and DISTS 0. ``tests/test_known_pairs.py`` holds it to the measured values."""
    full = lambda v: torch.full((n,), v, dtype=torch.float64)  # noqa: E731
    out = {"psnr": full(min(10 * math.log10(1 / PSNR_EPS), PSNR_CAP)), "ssim": full(1.0),
           "ms_ssim": full(1.0 if side >= MS_SSIM_MIN_SIDE else float("nan"))}
    if dists:
        out["dists"] = full(0.0)
    if lpips:
        out["lpips"] = full(0.0)
    return out


def reference_score(dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """The built-in dataset's quality score: ``100 · (MS-SSIM + FSIM) / 2`` against the pristine image."""
    return 50.0 * (fr_scores("ms_ssim", dist, ref) + fr_scores("fsim", dist, ref))
