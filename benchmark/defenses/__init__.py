"""Defense plugins: ``forward(x, *, generator) -> x_purified`` with capability attributes."""
from . import (  # noqa: F401  (registration)
    bilateral, classic_denoise, cohen_smoothing, denoised_smoothing, flip, gaussian_blur, identity, jpeg, median,
    median_smoothing, quantize, random_crop, random_noise, random_rotate, resize, unsharp)
from . import diffpure, diffusion_smoothing, dncnn  # noqa: F401  (registration)
from . import diffjpeg, robust_metric  # noqa: F401  (registration)
from . import disco, fcn, mprnet, realesrgan  # noqa: F401  (registration)
from .base import Defense

__all__ = ["Defense"]
