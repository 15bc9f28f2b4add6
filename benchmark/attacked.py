"""Attacked images on disk: one file per image in ``<run>/stages/attack/<key>/``.

``run.attacked_images`` chooses the form:

- ``"png"`` (default): 8-bit lossless PNG, the form in which an attacked image reaches a real benchmark.
  The runner quantises ``x'`` to the 8-bit grid *before* it is scored and measured
  (:func:`benchmark.images.quantize_8bit`, which keeps an L∞ budget), so every score, L∞/L2 distance and
  quality measure in the records is that of the stored file; the file decodes to exactly the tensor
  that was scored.
- ``"float32"``: the attack's output as it is, a float32 NumPy ``.npy`` array (3×H×W), about 4× larger
  than the PNG and 12× larger than the image in 8 bits; for studies of unquantised perturbations.

File names are the image id made safe for a file system plus a short hash of the id (two ids never share
a file). Each file is written atomically before the stage's JSON, which marks the stage complete.
"""
from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

FORMATS = ("png", "float32")
SUFFIX = {"png": ".png", "float32": ".npy"}
PNG_LEVEL = 1  # zlib level: lossless at every level; 1 encodes ~2× faster than 6 for ~10 % more bytes


def file_name(image_id: str, fmt: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", image_id).strip("._")[-80:] or "image"
    return f"{stem}-{hashlib.sha256(image_id.encode()).hexdigest()[:10]}{SUFFIX[fmt]}"


def encode(x: torch.Tensor, fmt: str) -> bytes:
    """3×H×W in [0, 1] -> file bytes (``png``: ``x`` must already be on the 8-bit grid)."""
    x = x.detach().cpu()
    buf = io.BytesIO()
    if fmt == "png":
        arr = torch.round(x.clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).numpy()
        Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", compress_level=PNG_LEVEL)
    elif fmt == "float32":
        np.save(buf, x.float().numpy(), allow_pickle=False)
    else:
        raise ValueError(f"unknown attacked-image format {fmt!r} (expected one of {FORMATS})")
    return buf.getvalue()


def decode(data: bytes, fmt: str) -> torch.Tensor:
    """File bytes -> 3×H×W float32 in [0, 1] (a PNG decodes to exactly the quantised tensor it was made from)."""
    if fmt == "png":
        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(255.0)
    if fmt == "float32":
        return torch.from_numpy(np.load(io.BytesIO(data), allow_pickle=False)).float()
    raise ValueError(f"unknown attacked-image format {fmt!r} (expected one of {FORMATS})")


def read_shape(path: Path, fmt: str) -> tuple[int, int, int]:
    """3×H×W of a stored image, from the file's header only."""
    if fmt == "png":
        with Image.open(path) as im:
            return (3, im.height, im.width)
    return tuple(np.load(path, mmap_mode="r", allow_pickle=False).shape)  # type: ignore[return-value]
