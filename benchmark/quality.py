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
means accumulated in float64; ``tests/measures/test_quality_fp32.py`` holds them to pyiqa's float64 values within
1e-4 on the TID2013 calibration images and on random images. TF32 is switched off for these convolutions.
FSIM (the synthetic dataset's label) and DISTS stay pyiqa's (FSIM already runs in the input's float32).

The published studies score purified images with scikit-image instead (the purification study's
``test.py`` and the Guardians benchmark's ``metrics/defences/utils/metrics.py``:
``structural_similarity(a, b, channel_axis=2, data_range=1)`` and ``peak_signal_noise_ratio(a, b,
data_range=1)``); :func:`ssim_skimage` and :func:`psnr_skimage` are those two in float32 torch:

- SSIM per RGB channel, averaged over the channels: a 7×7 uniform window (``uniform_filter``), sample
  covariances (× 49/48), ``C1 = 0.01²``, ``C2 = 0.03²``, the SSIM map averaged after cropping the 3-pixel
  border (so only "valid" windows count), no clipping;
- PSNR ``10·log10(1 / MSE)`` over all channels, with no floor: ``inf`` for identical images.

``tests/measures/test_published_quality.py`` holds them to scikit-image within 1e-4. The columns named
after a study (``purified_quality``, ``similarity``, ...) are made of these; the project's own measures
use the pyiqa versions above (docs/measures.md, "Published conventions").
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

# scikit-image's structural_similarity defaults (win_size 7, K1, K2, use_sample_covariance) at data_range 1
SK_WINDOW, SK_K1, SK_K2 = 7, 0.01, 0.03
# The version of what pair_quality returns: a content-key field of the stages that store it after the attack
# (def_clean, def_adv, def_quality), so a change recomputes those and keeps the stored attacked images.
QUALITY_VERSION = 2  # 2: the published-convention columns psnr_skimage, ssim_skimage

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

    ``psnr``, ``ssim``, ``ms_ssim`` and the scikit-image ``psnr_skimage``, ``ssim_skimage`` are this
    module's float32 versions; other names go to pyiqa."""
    own = {"psnr": psnr, "ssim": ssim, "ms_ssim": ms_ssim, "psnr_skimage": psnr_skimage, "ssim_skimage": ssim_skimage}
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
    return ssim_ms_ssim(dist, ref)[1]


def ssim_ms_ssim(dist: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`ssim` and :func:`ms_ssim` (float64, per image; sides ≥ 176) in one pass: MS-SSIM's first
    scale is SSIM itself (same Y images, window and constants), so its value is returned rather than
    computed a second time, bit-identical to :func:`ssim` (``tests/measures/test_ssim_once.py``)."""
    _check(dist, ref)
    if min(dist.shape[-2:]) < MS_SSIM_MIN_SIDE:
        raise ValueError(f"MS-SSIM needs sides of at least {MS_SSIM_MIN_SIDE} pixels (five scales of an "
                         f"{WINDOW}×{WINDOW} window), got {tuple(dist.shape[-2:])}")
    x, y = luma255(dist), luma255(ref)
    mcs = []
    with _no_tf32(dist.device):
        for j, _ in enumerate(MS_SSIM_WEIGHTS):
            ssim_val, cs = _ssim_cs(x, y)
            if j == 0:
                first = ssim_val
            mcs.append(cs)
            padding = (x.shape[2] % 2, x.shape[3] % 2)
            x, y = F.avg_pool2d(x, 2, padding=padding), F.avg_pool2d(y, 2, padding=padding)
    # pyiqa's weights are a FloatTensor: their float32 values, as float64
    w = torch.tensor(MS_SSIM_WEIGHTS, dtype=torch.float32).double().to(ssim_val.device)
    mcs = torch.stack(mcs[:-1])
    return first, torch.prod(mcs ** w[:-1, None], dim=0) * ssim_val ** w[-1]


def psnr_skimage(dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """scikit-image's ``peak_signal_noise_ratio(ref, dist, data_range=1)`` per image (float64, dB): the MSE
    over every channel and pixel, no floor, so identical images give ``inf``."""
    _check(dist, ref)
    d = dist.float() - ref.float()
    mse = (d * d).mean(dim=(1, 2, 3), dtype=torch.float64)  # as scikit-image: float32 squares, float64 mean
    return 10 * torch.log10(1.0 / mse)  # 1/0 = inf in torch, without numpy's warning


def ssim_skimage(dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """scikit-image's ``structural_similarity(ref, dist, channel_axis=2, data_range=1)`` per image (float64).

    Per channel: 7×7 uniform means ``u``, sample (co)variances ``v = 49/48 · (u(ab) − u(a)·u(b))``, the map
    ``(2·ux·uy + C1)(2·vxy + C2) / ((ux² + uy² + C1)(vx + vy + C2))`` with ``C1 = 0.01²``, ``C2 = 0.03²``,
    averaged over the pixels whose window lies inside the image (scikit-image crops a 3-pixel border after
    reflect-padded filtering: the same pixels); the image's value is the mean over its channels."""
    _check(dist, ref)
    if min(dist.shape[-2:]) < SK_WINDOW:
        raise ValueError(f"scikit-image SSIM needs images of at least {SK_WINDOW}×{SK_WINDOW} pixels, got "
                         f"{tuple(dist.shape[-2:])}")
    c1, c2 = SK_K1 ** 2, SK_K2 ** 2
    cov_norm = SK_WINDOW ** 2 / (SK_WINDOW ** 2 - 1)
    per_channel = []
    for ch in range(dist.shape[1]):  # one channel at a time: the memory of the project's Y-channel SSIM
        x, y = ref[:, ch:ch + 1].float(), dist[:, ch:ch + 1].float()
        # second moments of mean-centred images: shift-invariant, and float32 keeps their digits
        m = 0.5 * (x.mean(dim=(2, 3), keepdim=True) + y.mean(dim=(2, 3), keepdim=True))
        xc, yc = x - m, y - m
        f = torch.cat([xc, yc, xc * xc, yc * yc, xc * yc], dim=1)
        f = F.avg_pool2d(F.avg_pool2d(f, (1, SK_WINDOW), stride=1), (SK_WINDOW, 1), stride=1)  # separable box
        ux, uy = f[:, 0:1], f[:, 1:2]
        vx, vy, vxy = (cov_norm * (f[:, 2:3] - ux * ux), cov_norm * (f[:, 3:4] - uy * uy),
                       cov_norm * (f[:, 4:5] - ux * uy))
        ux, uy = ux + m, uy + m
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        per_channel.append(s.mean(dim=(1, 2, 3), dtype=torch.float64))
    return torch.stack(per_channel, dim=1).mean(dim=1)


PUBLISHED_KEYS = ("psnr_skimage", "ssim_skimage")


def quality_keys(lpips: bool = False, dists: bool = False) -> tuple[str, ...]:
    """The names :func:`pair_quality` returns, in its order."""
    return (("psnr", "ssim", "ms_ssim") + PUBLISHED_KEYS + (("dists",) if dists else ())
            + (("lpips",) if lpips else ()))


@torch.no_grad()
def pair_quality(dist: torch.Tensor, ref: torch.Tensor, lpips: bool = False, dists: bool = False
                 ) -> dict[str, torch.Tensor]:
    """PSNR, SSIM and MS-SSIM of ``dist`` against ``ref`` (every attack/defense record; MS-SSIM is NaN
    below 176 pixels, its five-scale minimum), the published studies' scikit-image PSNR and SSIM
    (``psnr_skimage``: ``inf`` for identical images; ``ssim_skimage``), and LPIPS / DISTS if asked for
    (their weights must be here)."""
    dist, ref = dist.clamp(0, 1).float(), ref.clamp(0, 1).float()
    out = {"psnr": torch.clamp(psnr(dist, ref), max=PSNR_CAP).cpu()}
    if min(dist.shape[-2:]) >= MS_SSIM_MIN_SIDE:  # SSIM is MS-SSIM's first scale: computed once for both
        out["ssim"], out["ms_ssim"] = (v.cpu() for v in ssim_ms_ssim(dist, ref))
    else:
        out["ssim"] = ssim(dist, ref).cpu()
        out["ms_ssim"] = torch.full((dist.shape[0],), float("nan"), dtype=torch.float64)
    out["psnr_skimage"], out["ssim_skimage"] = psnr_skimage(dist, ref).cpu(), ssim_skimage(dist, ref).cpu()
    if dists:
        out["dists"] = fr_scores("dists", dist, ref)
    if lpips:
        from .perceptual import lpips_distance

        out["lpips"] = lpips_distance(dist, ref)
    return out


def identical_quality(n: int, side: int, lpips: bool = False, dists: bool = False) -> dict[str, torch.Tensor]:
    """What :func:`pair_quality` gives for ``n`` pairs of identical images (smallest side ``side``), without
    computing it: PSNR at zero error (``10·log10(1/1e-8)`` = 80 dB), SSIM and MS-SSIM 1 (NaN below 176 px,
    as measured), scikit-image's PSNR ``inf`` and SSIM 1 (the studies' values), LPIPS and DISTS 0.
    ``tests/measures/test_known_pairs.py`` holds it to the measured values."""
    full = lambda v: torch.full((n,), v, dtype=torch.float64)  # noqa: E731
    out = {"psnr": full(min(10 * math.log10(1 / PSNR_EPS), PSNR_CAP)), "ssim": full(1.0),
           "ms_ssim": full(1.0 if side >= MS_SSIM_MIN_SIDE else float("nan")),
           "psnr_skimage": full(math.inf), "ssim_skimage": full(1.0)}
    if dists:
        out["dists"] = full(0.0)
    if lpips:
        out["lpips"] = full(0.0)
    return out


def reference_score(dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """The built-in dataset's quality score: ``100 · (MS-SSIM + FSIM) / 2`` against the pristine image."""
    return 50.0 * (fr_scores("ms_ssim", dist, ref) + fr_scores("fsim", dist, ref))
