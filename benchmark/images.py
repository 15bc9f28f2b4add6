"""Reading images and bringing them to the run's size policy; the image operations datasets and defenses
share (Gaussian blur, a real-codec JPEG round trip, resizing back); grouping images into batches of one size
(the stages and the report's recomputed images batch them alike).

Conversion rules (documented in the README): grey -> RGB by repetition; RGBA/LA -> RGB composited on
white; 16-bit -> 8-bit by rounding value/257 (grey through Pillow's I;16, colour through OpenCV, since
Pillow truncates 16-bit colour to its high byte); palette images through PIL's RGB conversion. Rejected
with a :class:`DataError` naming the file: undecodable or truncated files, images smaller than 32×32,
and images over PIL's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``, about 179 megapixels).
"""
from __future__ import annotations

import io
import math
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
            if sixteen_bit_colour(im):  # Pillow would keep only the high byte of each sample
                return to_rgb8(read_16bit_colour(path), str(path))
            im.load()
            return to_rgb8(im, str(path))
    except FileNotFoundError:
        raise DataError(f"image file not found: {path}") from None
    except Image.DecompressionBombError as exc:
        raise DataError(f"image {path} is too large to decode safely ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None


def sixteen_bit_colour(im: Image.Image) -> bool:
    """A 16-bit colour or grey+alpha file (RGB;16B, RGBA;16B, LA;16B, RGB;16N, ...), read from the decoder's
    raw mode before decoding: Pillow has no 16-bit colour mode and would truncate it to the high byte."""
    if im.mode.startswith("I"):  # 16-bit grey is decoded to I;16 with every bit kept
        return False
    for tile in im.tile or []:
        args = tile[3] if len(tile) > 3 else None
        raw = args if isinstance(args, str) else args[0] if isinstance(args, tuple) and args else None
        if isinstance(raw, str) and ";16" in raw:
            return True
    return False


def read_16bit_colour(path: Path) -> Image.Image:
    """A 16-bit colour file through OpenCV (which keeps 16 bits), as an 8-bit Pillow image: round(value/257)."""
    try:
        import cv2
    except ImportError:
        raise DataError(f"image {path} has 16 bits per channel; reading it needs OpenCV "
                        "(pip install opencv-python-headless, a dependency of pyiqa)") from None
    arr = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise DataError(f"cannot read image {path}: OpenCV could not decode it")
    if arr.dtype == np.uint16:
        arr = np.clip(np.round(arr / 257.0), 0, 255).astype(np.uint8)
    arr = np.ascontiguousarray(arr.astype(np.uint8))
    if arr.ndim == 2:
        return Image.fromarray(arr, mode="L")
    channels = arr.shape[2]
    if channels == 2:
        return Image.fromarray(arr, mode="LA")
    if channels == 3:
        return Image.fromarray(np.ascontiguousarray(arr[..., ::-1]), mode="RGB")      # OpenCV is BGR
    return Image.fromarray(np.ascontiguousarray(arr[..., [2, 1, 0, 3]]), mode="RGBA")


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


def batches(items: list, batch_size: int, shape=lambda it: it[1].shape) -> list[list]:
    """Consecutive runs of same-sized images, at most ``batch_size`` long (``items``: by default tuples whose
    second element is the 3×H×W image; ``shape`` gives an item's image shape otherwise)."""
    out: list[list] = []
    for it in items:
        if out and len(out[-1]) < batch_size and shape(out[-1][0]) == shape(it):
            out[-1].append(it)
        else:
            out.append([it])
    return out


def quantize_8bit(x_adv: torch.Tensor, x: torch.Tensor, linf_budget: float | None = None) -> torch.Tensor:
    """``x'`` on the 8-bit grid, as an 8-bit PNG file holds it (``x`` is on the grid: every prepared image is).

    Each pixel is rounded to the nearest of the 256 levels; with an L∞ budget ε, the perturbation is then
    kept within ``floor(255·ε)`` levels of ``x``, so the budget still holds after quantisation (ε = 4/255
    keeps 4 levels; ε = 0.01 keeps 2). Idempotent: a quantised image is returned unchanged.
    """
    q = torch.round(x_adv.clamp(0, 1) * 255)
    if linf_budget is not None:
        k = math.floor(linf_budget * 255 + 1e-4)  # 1e-4 levels: float rounding of a budget given as k/255
        base = torch.round(x * 255)
        q = torch.min(torch.max(q, base - k), base + k)
    return q / 255


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur (kornia) with a kernel covering ±3σ, reflect border: shared by the blur defense,
    unsharp masking and the synthetic blur distortion."""
    import kornia

    k = 2 * max(1, round(3 * sigma)) + 1
    return kornia.filters.gaussian_blur2d(x, (k, k), (sigma, sigma), border_type="reflect")


def resize_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Resize a defense output back to the input size before full-reference comparison (docs/measures.md#defense)."""
    if x.shape[-2:] == like.shape[-2:]:
        return x
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", antialias=True, align_corners=False)


def jpeg_roundtrip(img: torch.Tensor, quality: int) -> torch.Tensor:
    """3×H×W in [0,1] through the real JPEG codec (PIL/libjpeg) at ``quality``."""
    arr = (img.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    out = np.asarray(Image.open(buf).convert("RGB"))
    return torch.from_numpy(out.copy()).permute(2, 0, 1).float().div(255).to(img.device)
