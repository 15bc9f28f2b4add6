"""Reading images and bringing them to the run's size policy.

Conversion rules (documented in the README): grey -> RGB by repetition; RGBA/LA -> RGB composited on
white; 16-bit -> 8-bit by rounding value/257; palette images through PIL's RGB conversion. Rejected
with a :class:`DataError` naming the file: undecodable or truncated files, images smaller than 32×32,
and images over PIL's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``, about 179 megapixels).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from .errors import DataError

MIN_SIDE = 32


def read_image(path: Path) -> np.ndarray:
    """H×W×3 uint8 RGB array of an image file, or DataError naming the file."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            return to_rgb8(im, str(path))
    except FileNotFoundError:
        raise DataError(f"image file not found: {path}") from None
    except Image.DecompressionBombError as exc:
        raise DataError(f"image {path} is too large to decode safely ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None


def to_rgb8(im: Image.Image, name: str) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        scale = 257.0 if arr.max() > 255 or im.mode.startswith("I;16") else 1.0
        arr = np.clip(np.round(arr / scale), 0, 255).astype(np.uint8)
        im = Image.fromarray(arr, mode="L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, rgba)
    arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    if min(arr.shape[:2]) < MIN_SIDE:
        raise DataError(f"image {name} is {arr.shape[1]}×{arr.shape[0]} pixels; at least {MIN_SIDE}×{MIN_SIDE} needed")
    return arr


def to_tensor(arr: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 -> 3×H×W float in [0,1]."""
    return torch.from_numpy(np.array(arr, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div(255.0)


def apply_size_policy(x: torch.Tensor, size: tuple[int, int] | None, policy: str) -> torch.Tensor:
    """3×H×W -> 3×h×w following the run's ``image_size`` and ``size_policy`` (resize, center_crop, keep)."""
    if size is None or policy == "keep":
        return x
    h, w = size
    if policy == "resize":
        out = F.interpolate(x[None], size=(h, w), mode="bilinear", antialias=True, align_corners=False)[0]
    elif policy == "center_crop":
        H, W = x.shape[-2:]
        scale = max(h / H, w / W)
        nh, nw = max(h, round(H * scale)), max(w, round(W * scale))
        out = F.interpolate(x[None], size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)[0]
        top, left = (nh - h) // 2, (nw - w) // 2
        out = out[:, top: top + h, left: left + w]
    else:
        raise ValueError(f"unknown size policy {policy!r}")
    # Quantise to 8 bits so the prepared image is a real image file's content.
    return torch.round(out.clamp(0, 1) * 255) / 255


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur (kornia) with a kernel covering ±3σ, reflect border: shared by the blur defense,
    unsharp masking and the synthetic blur distortion."""
    import kornia

    k = 2 * max(1, round(3 * sigma)) + 1
    return kornia.filters.gaussian_blur2d(x, (k, k), (sigma, sigma), border_type="reflect")


def resize_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Resize a defense output back to the input size before full-reference comparison (formulas.md §3)."""
    if x.shape[-2:] == like.shape[-2:]:
        return x
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", antialias=True, align_corners=False)
