"""scikit-image's bundled photographs: the fixed train/test split of the built-in data, loading, squaring.

``TRAIN_PHOTOS`` are what the default model, the denoisers and UAP train on (:mod:`benchmark.training`);
``TEST_PHOTOS`` are held out for the ``synthetic`` dataset's default ``split = "test"``. No download:
the photographs ship with scikit-image.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

TRAIN_PHOTOS = ("camera", "chelsea", "coins", "grass", "gravel", "brick", "hubble_deep_field",
                "immunohistochemistry", "moon", "retina")
TEST_PHOTOS = ("astronaut", "coffee", "rocket", "motorcycle")


def load_photo(name: str) -> np.ndarray:
    """A bundled photograph by name as an H×W×3 uint8 array (grey ones repeated to three channels)."""
    import skimage.data

    img = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def square(img: np.ndarray, size: int) -> torch.Tensor:
    """Centre square crop resized to size×size, as a 3×size×size 8-bit-valued float tensor."""
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    x = torch.from_numpy(img[top:top + s, left:left + s].copy()).permute(2, 0, 1).float()[None] / 255
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    return (x.clamp(0, 1) * 255).round() / 255
