"""Built-in dataset that needs no download: scikit-image's photographs with graded distortions.

Each photograph (bundled with scikit-image) is brought to ``size``×``size`` (centre square crop, then
resize) and distorted with the six types of :mod:`benchmark.datasets.distortions` at the chosen levels;
the pristine image is included too. Its quality score (the "MOS" of this dataset) is a full-reference
proxy, ``100 · (MS-SSIM + FSIM) / 2`` against the pristine image (pyiqa's implementations), higher is
better, range [0, 100]. It is a stand-in for subjective scores, not a replacement: use real MOS
datasets for claims about human opinion.

The photographs are split once and for all: ``split="train"`` are the ones the project's default model
was trained on, ``split="test"`` are held out (the default here).
"""
from __future__ import annotations

import hashlib
import functools
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..registry import DATASETS
from .base import Dataset, Sample
from .distortions import DISTORTIONS, distort

TRAIN_PHOTOS = ("camera", "chelsea", "coins", "grass", "gravel", "brick", "hubble_deep_field",
                "immunohistochemistry", "moon", "retina")
TEST_PHOTOS = ("astronaut", "coffee", "rocket", "motorcycle")


def load_photo(name: str) -> np.ndarray:
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


def seed_of(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "little")


@DATASETS.register("synthetic")
class SyntheticDistortions(Dataset):
    """scikit-image photographs × graded distortions, scored by MS-SSIM/FSIM against the pristine (no download).

    Defaults: ``split="test"`` (photographs the default model never saw), all six distortions, levels
    1, 3, 5, ``size=256``, pristine images included. ``limit`` keeps that many images spread evenly.
    """

    mos_lower_better = False
    mos_range = (0.0, 100.0)

    def __init__(self, split: Literal["train", "test", "all"] = "test", distortions: list[str] | None = None,
                 levels: list[int] | None = None, size: int = 256, include_pristine: bool = True,
                 limit: int | None = None):
        self.photos = {"train": TRAIN_PHOTOS, "test": TEST_PHOTOS, "all": TRAIN_PHOTOS + TEST_PHOTOS}[split]
        self.distortions = list(distortions or DISTORTIONS)
        bad = [d for d in self.distortions if d not in DISTORTIONS]
        if bad:
            raise ConfigError(f"unknown distortion(s) {bad}; expected some of {list(DISTORTIONS)}")
        self.levels = list(levels or [1, 3, 5])
        if any(not 1 <= lv <= 5 for lv in self.levels):
            raise ConfigError(f"levels must be within 1..5, got {self.levels}")
        if size < 64:
            raise ConfigError(f"size must be at least 64, got {size}")
        self.size = size
        ids = []
        for photo in self.photos:
            if include_pristine:
                ids.append(f"{photo}/pristine")
            ids += [f"{photo}/{d}{lv}" for d in self.distortions for lv in self.levels]
        self._ids = self.subset(ids, limit)

    def ids(self) -> list[str]:
        return self._ids

    @functools.lru_cache(maxsize=16)
    def pristine(self, photo: str) -> torch.Tensor:
        return square(load_photo(photo), self.size)

    def load(self, image_id: str) -> Sample:
        from ..quality import reference_score

        photo, variant = image_id.split("/")
        ref = self.pristine(photo)
        if variant == "pristine":
            dist = ref
        else:
            kind, level = variant.rstrip("0123456789"), int(variant[len(variant.rstrip("0123456789")):])
            gen = torch.Generator().manual_seed(seed_of(image_id) % (2**63))
            dist = distort(ref, kind, level, gen)
        mos = float(reference_score(dist[None], ref[None])[0])
        arr = (dist * 255).round().byte().permute(1, 2, 0).numpy()
        return Sample(image_id=image_id, image=arr, mos=mos)
