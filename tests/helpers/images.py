"""Small real images for tests: photographs as tensors, and image files in a dataset's layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from conftest import tiny_images


def batch(n: int = 4, size: int = 96) -> torch.Tensor:
    """``n`` real photographs with graded noise (:func:`conftest.tiny_images`), B×3×size×size in [0, 1]."""
    return torch.stack([torch.from_numpy(a).permute(2, 0, 1).float() / 255 for _, a, _ in tiny_images(n, size)])


def frozen(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` in eval mode with its parameters frozen (a metric as the harness attacks it)."""
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def random_image_file(path: Path, seed: int = 0, size: tuple[int, int] = (48, 40)) -> Path:
    """A random RGB image of ``size`` (width, height) written to ``path`` (folders made), in the format its
    suffix names: a stand-in for one image of a database in its official layout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (*size[::-1], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path
