"""The training sets of the trainers and of UAP: the bundled training photographs (never the test ones)
with the graded distortions of :mod:`benchmark.datasets.distortions`.

- :func:`variants` / :func:`distorted_set`: each photograph squared to ``size``, pristine and distorted at
  ``levels`` of each type; the noise of ``(photo, kind, level)`` is seeded from the text
  ``"photo|kind|level"`` (:func:`benchmark.seeds.digest_seed`), so every trainer sees the same images.
  UAP trains on :func:`uap_images` (levels 1, 3, 5 of all six types).
- :func:`build_set`: the same images labelled with the reference score ``100 · (MS-SSIM + FSIM) / 2``
  against the pristine image (the default model's training and held-out sets).
- :func:`training_photos` / :func:`labelled_set`: the denoiser trainer's photographs (plus ``--photos``
  folders) and its labelled set at 256 pixels, cached on disk by content.

This module sits below the plugins it serves (it imports shared helpers and the datasets' distortions and
image suffixes, no metric, attack, defense or trainer), so an attack can build its training set here.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from ..datasets.distortions import DISTORTIONS, distort
from ..photos import square
from ..quality import reference_score
from ..seeds import digest_seed
from ..weights import save_checkpoint

log = logging.getLogger(__name__)


def variants(name: str, ref: torch.Tensor, levels, distortions: tuple[str, ...] = DISTORTIONS
             ) -> list[tuple[str, torch.Tensor]]:
    """``(id, image)`` of ``ref`` pristine, then distorted at every level of every type (ids ``name/kind<level>``)."""
    out = [(f"{name}/pristine", ref)]
    for kind in distortions:
        for level in levels:
            gen = torch.Generator().manual_seed(digest_seed(f"{name}|{kind}|{level}"))
            out.append((f"{name}/{kind}{level}", distort(ref, kind, level, gen)))
    return out


def distorted_set(photos: dict[str, np.ndarray], size: int, levels, distortions: tuple[str, ...] = DISTORTIONS
                  ) -> tuple[list[str], torch.Tensor]:
    """The ids and N×3×size×size images of every photograph's :func:`variants`."""
    items = [v for name, arr in photos.items() for v in variants(name, square(arr, size), levels, distortions)]
    return [i for i, _ in items], torch.stack([x for _, x in items])


def uap_images(size: int) -> tuple[list[str], torch.Tensor]:
    """UAP's training set: the training photographs at levels 1, 3, 5 of all six distortions."""
    from ..photos import TRAIN_PHOTOS, load_photo

    return distorted_set({photo: load_photo(photo) for photo in TRAIN_PHOTOS}, size, (1, 3, 5))


def build_set(photos: dict[str, np.ndarray], size: int, levels: list[int],
              distortions: tuple[str, ...] = DISTORTIONS) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and reference-score labels of every photograph's :func:`variants` (labelled per photograph)."""
    images, labels = [], []
    for name, arr in photos.items():
        ref = square(arr, size)
        batch_t = torch.stack([x for _, x in variants(name, ref, levels, distortions)])
        labels.append(reference_score(batch_t, ref.expand_as(batch_t)).float())
        images.append(batch_t)
        log.info("labelled %s (%d images)", name, len(batch_t))
    return torch.cat(images), torch.cat(labels)


def training_photos(folders: list[Path]) -> dict[str, np.ndarray]:
    """scikit-image's training photographs plus every image in ``folders`` (never the test photographs)."""
    from ..datasets.folder import IMAGE_SUFFIXES
    from ..images import read_image
    from ..photos import TEST_PHOTOS, TRAIN_PHOTOS, load_photo

    photos = {n: load_photo(n) for n in TRAIN_PHOTOS}
    for folder in folders:
        files = sorted(f for f in Path(folder).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) \
            if Path(folder).is_dir() else []
        if not files:
            raise SystemExit(f"--photos {folder}: no images found (expected a folder of {sorted(IMAGE_SUFFIXES)})")
        for f in files:
            if f.stem in TEST_PHOTOS:
                raise SystemExit(f"--photos: {f} has the name of a test photograph; rename it or leave it out")
            photos[f"{Path(folder).name}/{f.stem}"] = read_image(f)
    return photos


def labelled_set(photos: dict[str, np.ndarray], cache_dir: Path, distortions: tuple[str, ...]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The distorted, reference-scored training set at 256 pixels, cached in ``cache_dir`` (labelling costs
    minutes: MS-SSIM and FSIM of every image), keyed by the photographs' names and pixels."""
    h = hashlib.sha256(f"v1|256|1,3,5|{','.join(distortions)}".encode())
    for name in sorted(photos):
        h.update(name.encode())
        h.update(np.ascontiguousarray(photos[name]).tobytes())
    path = Path(cache_dir) / f"trainset-{h.hexdigest()[:16]}.pt"
    if path.is_file():
        log.info("labelled training set from %s", path)
        data = torch.load(path, map_location="cpu", weights_only=True)
        return data["images"].float() / 255, data["targets"]
    images, targets = build_set(photos, 256, [1, 3, 5], distortions)
    save_checkpoint(path, {"images": (images * 255).round().to(torch.uint8), "targets": targets})
    return (images * 255).round() / 255, targets
