"""Classical denoisers as purifiers, through scikit-image (non-differentiable; BPDA uses the identity):

- ``nlm``: non-local means (Buades, Coll, Morel, CVPR 2005), ``h = 0.8 · σ̂`` with σ̂ estimated per image
  by ``skimage.restoration.estimate_sigma``, 5×5 patches, 6-pixel search distance (scikit-image's example).
- ``tv``: total-variation denoising (Rudin, Osher, Fatemi 1992; Chambolle 2004), ``weight = 0.05``;
  a purifier of Guo et al., ICLR 2018. Computed in float32, which scikit-image keeps (it promotes only
  float16): about twice as fast as float64 and within float32 rounding of it
  (``tests/defenses/test_tv_float32.py``).

Ranges: ``h_factor`` in (0, 100], ``patch_size`` and ``patch_distance`` within 1..31 pixels,
``weight`` in (0, 100].
"""
from __future__ import annotations

import numpy as np
import torch

from ..params import within
from ..registry import DEFENSES
from .base import Defense


def _per_image(x: torch.Tensor, fn, dtype=np.float64) -> torch.Tensor:
    out = []
    for img in x.detach().cpu():
        arr = img.permute(1, 2, 0).numpy().astype(dtype)
        out.append(torch.from_numpy(np.clip(fn(arr), 0, 1)).permute(2, 0, 1).float())
    return torch.stack(out).to(x.device)


@DEFENSES.register("nlm")
class NonLocalMeans(Defense):
    """Non-local means (Buades et al., CVPR 2005) via scikit-image; h = h_factor · estimated σ, default 0.8."""

    differentiable = False

    def __init__(self, h_factor: float = 0.8, patch_size: int = 5, patch_distance: int = 6):
        super().__init__()
        within("h_factor", h_factor, 0, 100.0, lo_open=True)
        within("patch_size", patch_size, 1, 31, integer=True)
        within("patch_distance", patch_distance, 1, 31, integer=True)
        self.h_factor, self.patch_size, self.patch_distance = h_factor, patch_size, patch_distance

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        from skimage.restoration import denoise_nl_means, estimate_sigma

        def nlm(a):
            sigma = float(np.mean(estimate_sigma(a, channel_axis=-1)))
            return denoise_nl_means(a, h=self.h_factor * max(sigma, 1e-3), sigma=sigma, fast_mode=True,
                                    patch_size=self.patch_size, patch_distance=self.patch_distance, channel_axis=-1)
        return _per_image(x, nlm)


@DEFENSES.register("tv")
class TotalVariation(Defense):
    """Total-variation denoising (Chambolle 2004) via scikit-image; weight 0.05 (Guo et al., ICLR 2018)."""

    differentiable = False

    def __init__(self, weight: float = 0.05):
        super().__init__()
        within("weight", weight, 0, 100.0, lo_open=True)
        self.weight = weight

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        from skimage.restoration import denoise_tv_chambolle

        return _per_image(x, lambda a: denoise_tv_chambolle(a, weight=self.weight, channel_axis=-1), np.float32)
