"""Full-reference quality between image pairs, through pyiqa's calibrated weight-free metrics.

PSNR and SSIM are pyiqa's ``psnr`` and ``ssim`` (MATLAB-calibrated; SSIM on the Y channel), so numbers
are comparable with the papers that use them. The built-in dataset's reference score uses ``ms_ssim``
and ``fsim`` the same way.
"""
from __future__ import annotations

import functools
import logging

import torch

log = logging.getLogger(__name__)


MS_SSIM_MIN_SIDE = 176  # five scales of an 11×11 window


@functools.lru_cache(maxsize=None)
def fr_metric(name: str, device: str = "cpu"):
    import pyiqa

    from .metrics.pyiqa_adapter import offline_requested, weights_guard

    with weights_guard(name, download=not offline_requested()):
        return pyiqa.create_metric(name, as_loss=False, device=torch.device(device))


@torch.no_grad()
def fr_scores(name: str, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """B scores of the full-reference metric ``name`` for B×3×H×W ``dist`` against ``ref`` (both in [0,1])."""
    m = fr_metric(name, str(dist.device))
    out = m(dist.clamp(0, 1).float(), ref.clamp(0, 1).float())
    return out.reshape(dist.shape[0], -1).mean(dim=1).cpu()


def pair_quality(dist: torch.Tensor, ref: torch.Tensor, lpips: bool = False, dists: bool = False
                 ) -> dict[str, torch.Tensor]:
    """PSNR, SSIM and MS-SSIM of ``dist`` against ``ref`` (every attack/defense record; MS-SSIM is NaN
    below 176 pixels, its five-scale minimum), and LPIPS / DISTS if asked for (their weights must be here)."""
    psnr = fr_scores("psnr", dist, ref)
    # pyiqa returns inf-like values for identical images; cap at 100 dB so means stay finite.
    out = {"psnr": torch.clamp(psnr, max=100.0), "ssim": fr_scores("ssim", dist, ref)}
    if min(dist.shape[-2:]) >= MS_SSIM_MIN_SIDE:
        out["ms_ssim"] = fr_scores("ms_ssim", dist, ref)
    else:
        out["ms_ssim"] = torch.full((dist.shape[0],), float("nan"))
    if dists:
        out["dists"] = fr_scores("dists", dist, ref)
    if lpips:
        from .perceptual import lpips_distance

        out["lpips"] = lpips_distance(dist.clamp(0, 1), ref.clamp(0, 1))
    return out


def reference_score(dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """The built-in dataset's quality score: ``100 · (MS-SSIM + FSIM) / 2`` against the pristine image."""
    return 50.0 * (fr_scores("ms_ssim", dist, ref) + fr_scores("fsim", dist, ref))
