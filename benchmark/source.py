"""A dataset's images, streamed: listed once, then read batch by batch by every stage that needs them.

:meth:`ImageSource.scan` reads each image once to find the readable ones (an unreadable image is skipped
with a warning and listed in ``skipped.json``, as before) and keeps only its id, shape and MOS; no stage
holds more than one batch of images in memory. Every read brings the image to the run's size policy, so
all stages see the same pixels (a dataset's ``load`` is deterministic: files, or synthetic distortions
seeded by the image id).

Batches are consecutive runs of same-sized images, at most ``batch_size`` long (:func:`images.batches`),
so the batch an image falls in, and with it the generator seed of a randomised defense, is the same in
every stage and every executor.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from tqdm.auto import tqdm

from .errors import DataError
from .images import apply_size_policy, batches, to_tensor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    image_id: str
    shape: tuple[int, int, int]  # 3×H×W after the size policy
    mos: float | None


@dataclass(frozen=True)
class Batch:
    ids: list[str]
    x: torch.Tensor          # B×3×H×W on the CPU, in [0, 1], on the 8-bit grid
    mos: list[float | None]


class ImageSource:
    """The readable images of one dataset (built by :meth:`scan`), read on demand."""

    def __init__(self, label: str, dataset: Any, size: tuple[int, int] | None, policy: str, entries: list[Entry]):
        self.label, self.dataset, self.size, self.policy = label, dataset, size, policy
        self.entries = entries

    @classmethod
    def scan(cls, spec, size: tuple[int, int] | None, policy: str, *, skipped: list[dict[str, str]],
             progress: bool = False) -> "ImageSource":
        """Read every image of ``spec``'s dataset once; unreadable ones are logged and appended to ``skipped``."""
        dataset = spec.build()
        entries = []
        for image_id in tqdm(dataset.ids(), desc=f"scan {spec.label}", leave=False, disable=not progress):
            try:
                sample = dataset.load(image_id)
            except DataError as exc:
                log.warning("dataset %s: skipping image %s: %s", spec.label, image_id, exc)
                skipped.append({"what": f"image {image_id} of {spec.label}", "reason": str(exc)})
                continue
            h, w = sample.image.shape[:2] if size is None or policy == "keep" else size
            entries.append(Entry(sample.image_id, (3, h, w), sample.mos))
        if not entries:
            raise DataError(f"dataset {spec.label}: no readable images")
        return cls(spec.label, dataset, size, policy, entries)

    def __len__(self) -> int:
        return len(self.entries)

    def ids(self) -> list[str]:
        return [e.image_id for e in self.entries]

    def head(self, n: int) -> "ImageSource":
        """The first ``n`` images (budget calibration samples a few)."""
        return ImageSource(self.label, self.dataset, self.size, self.policy, self.entries[:n])

    def load(self, image_id: str) -> torch.Tensor:
        """One image, 3×H×W at the run's size policy."""
        sample = self.dataset.load(image_id)
        return apply_size_policy(to_tensor(sample.image), self.size, self.policy)

    def plan(self, batch_size: int) -> list[list[Entry]]:
        """The batches, as entries (no pixels read)."""
        return batches(self.entries, batch_size, shape=lambda e: e.shape)

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """The images batch by batch; each batch is read when it is asked for."""
        for group in self.plan(batch_size):
            xs = []
            for e in group:
                x = self.load(e.image_id)
                if tuple(x.shape) != e.shape:
                    raise DataError(f"dataset {self.label}: image {e.image_id} changed while the run was reading "
                                    f"it ({tuple(x.shape)} now, {e.shape} when listed)")
                xs.append(x)
            yield Batch([e.image_id for e in group], torch.stack(xs), [e.mos for e in group])
