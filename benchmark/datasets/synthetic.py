"""Built-in dataset that needs no download: scikit-image's photographs with graded distortions.

Each photograph (bundled with scikit-image) is brought to ``size``×``size`` (centre square crop, then
resize) and distorted with the six types of :mod:`benchmark.datasets.distortions` at the chosen levels;
the pristine image is included too. Its quality score (the "MOS" of this dataset) is a full-reference
proxy, ``100 · (MS-SSIM + FSIM) / 2`` against the pristine image (pyiqa's implementations), higher is
better, range [0, 100]. It is a stand-in for subjective scores, not a replacement: use real MOS
datasets for claims about human opinion.

The photographs are split once and for all: ``split="train"`` are the ones the project's default model
was trained on, ``split="test"`` are held out (the default here).

Labels are computed once and kept on disk (:class:`LabelCache`): one JSON file per content key of the
photographs, distortions, levels, size and the code and package versions that compute them, under
``$BENCHMARK_CACHE_DIR`` or ``$XDG_CACHE_HOME/iqa-robustness-benchmark`` (``~/.cache/...``), written
atomically; a later run (or ``--resume``) reads them instead of recomputing MS-SSIM and FSIM.
"""
from __future__ import annotations

import hashlib
import functools
import json
import logging
import os
from pathlib import Path
from typing import Any, Literal

import torch

from ..errors import ConfigError
from ..params import MAX_IMAGE_SIDE, expect_nonempty_unique
from ..photos import TEST_PHOTOS, TRAIN_PHOTOS, load_photo, square
from ..quality import MS_SSIM_MIN_SIDE
from ..registry import DATASETS
from ..seeds import digest_seed
from ..store import atomic_write_json
from .base import Dataset, Sample
from .distortions import DISTORTIONS, distort

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where computed labels are kept: ``$BENCHMARK_CACHE_DIR``, else ``$XDG_CACHE_HOME`` or ``~/.cache``."""
    if os.environ.get("BENCHMARK_CACHE_DIR"):
        return Path(os.environ["BENCHMARK_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "iqa-robustness-benchmark"


@functools.cache
def label_code_version() -> dict[str, str]:
    """What computes a label besides the parameters: this module's, the distortions', the quality code's and
    the photograph, image and seed helpers' source, and the versions of the packages they call (any change
    makes a new cache key)."""
    from importlib import metadata

    from .. import images, photos, quality, seeds
    from . import distortions

    out = {Path(f).name: hashlib.sha256(Path(f).read_bytes()).hexdigest()[:16]
           for f in (quality.__file__, distortions.__file__, __file__, photos.__file__, images.__file__,
                     seeds.__file__)}
    for pkg in ("torch", "scikit-image", "pyiqa"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


class LabelCache:
    """``image_id -> label`` of one dataset configuration, in one JSON file named by its content key.

    Reads are lazy and once; every new label is merged into what is on disk (another process may have
    added some) and the file replaced atomically (temporary file + rename). An unreadable or unwritable
    cache costs only the recomputation, with a warning."""

    def __init__(self, params: dict[str, Any]):
        self.params = {**params, "code": label_code_version()}
        text = json.dumps(self.params, sort_keys=True)
        self.key = hashlib.sha256(text.encode()).hexdigest()[:24]
        self.path = cache_dir() / "synthetic-labels" / f"{self.key}.json"
        self._labels: dict[str, float] | None = None

    def _read(self) -> dict[str, float]:
        try:
            data = json.loads(self.path.read_text())
            return {str(k): float(v) for k, v in data["labels"].items()} if data.get("key") == self.key else {}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            log.warning("ignoring unreadable label cache %s (%s); labels are recomputed", self.path, e)
            return {}

    def get(self, image_id: str) -> float | None:
        if self._labels is None:
            self._labels = self._read()
        return self._labels.get(image_id)

    def put(self, image_id: str, label: float) -> None:
        labels = {**self._read(), **(self._labels or {}), image_id: label}
        self._labels = labels
        try:
            atomic_write_json(self.path, {"key": self.key, "params": self.params, "labels": labels})
        except OSError as e:
            log.warning("cannot write the label cache %s (%s); labels will be recomputed next time", self.path, e)


@DATASETS.register("synthetic")
class SyntheticDistortions(Dataset):
    """scikit-image photographs × graded distortions, scored by MS-SSIM/FSIM against the pristine (no download).

    Defaults: ``split="test"`` (photographs the default model never saw), all six distortions, levels
    1, 3, 5, ``size=256``, pristine images included. ``limit`` keeps that many images spread evenly.
    """

    mos_lower_better = False
    mos_range = (0.0, 100.0)

    @classmethod
    def check_params(cls, params: dict[str, Any], base: Path) -> dict[str, Any]:
        expect_nonempty_unique(params, "distortions", "leave the key out for all six")
        bad = [d for d in params.get("distortions") or [] if d not in DISTORTIONS]
        if bad:
            raise ConfigError(f"unknown distortion(s) {bad}; expected some of {list(DISTORTIONS)}", key="distortions")
        expect_nonempty_unique(params, "levels", "leave the key out for the default [1, 3, 5]")
        if any(not 1 <= lv <= 5 for lv in params.get("levels") or []):
            raise ConfigError(f"levels must be within 1..5, got {params['levels']}", key="levels")
        size = params.get("size", 256)
        if not MS_SSIM_MIN_SIDE <= size <= MAX_IMAGE_SIDE:  # the MS-SSIM half of the label needs 176 px
            raise ConfigError(f"size must be within {MS_SSIM_MIN_SIDE}..{MAX_IMAGE_SIDE} (MS-SSIM of the label "
                              f"needs {MS_SSIM_MIN_SIDE} px), got {size}", key="size")
        return super().check_params(params, base)

    def __init__(self, split: Literal["train", "test", "all"] = "test", distortions: tuple[str, ...] = DISTORTIONS,
                 levels: tuple[int, ...] = (1, 3, 5), size: int = 256, include_pristine: bool = True,
                 limit: int | None = None):
        self.check_params({"distortions": distortions, "levels": levels, "size": size, "limit": limit}, Path("."))
        self.photos = {"train": TRAIN_PHOTOS, "test": TEST_PHOTOS, "all": TRAIN_PHOTOS + TEST_PHOTOS}[split]
        self.distortions, self.levels, self.size = list(distortions), list(levels), size
        ids = []
        for photo in self.photos:
            if include_pristine:
                ids.append(f"{photo}/pristine")
            ids += [f"{photo}/{d}{lv}" for d in self.distortions for lv in self.levels]
        self._ids = self.subset(ids, limit)
        self.labels = LabelCache({"photos": sorted(self.photos), "distortions": sorted(self.distortions),
                                  "levels": sorted(self.levels), "size": self.size})

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
            gen = torch.Generator().manual_seed(digest_seed(image_id))
            dist = distort(ref, kind, level, gen)
        mos = self.labels.get(image_id)
        if mos is None:
            mos = float(reference_score(dist[None], ref[None])[0])
            self.labels.put(image_id, mos)
        arr = (dist * 255).round().byte().permute(1, 2, 0).numpy()
        return Sample(image_id=image_id, image=arr, mos=mos)
