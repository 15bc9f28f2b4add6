"""A dataset's images, streamed: prepared once, then read batch by batch by every stage that needs them.

:meth:`ImageSource.scan` reads each image once, brings it to the run's size policy and appends its 8-bit
pixels to a scratch file (an anonymous temporary file in ``$TMPDIR``, removed by the operating system when
the process ends, however it ends; ``3·H·W`` bytes an image, 590 MB per 1,000 images at 384×512). An
unreadable image is skipped with a warning and listed in ``skipped.json``, as before. In memory it keeps
only each image's id, shape, MOS and place in the file, and no stage holds more than one batch: a batch is
read back from the scratch file when a stage asks for it (the file's pages live in the operating system's
page cache, not in the process), so a dataset is decoded and resized once per process, not once per stage.
Every prepared image is on the 8-bit grid, so the file holds it exactly.

Batches are consecutive runs of same-sized images, at most ``batch_size`` long (:func:`images.batches`),
so the batch an image falls in, and with it the generator seed of a randomised defense, is the same in
every stage and every executor.
"""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from typing import BinaryIO, Iterator

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
    offset: int = 0              # where its 8-bit pixels start in the scratch file


@dataclass(frozen=True)
class Batch:
    ids: list[str]
    x: torch.Tensor          # B×3×H×W on the CPU, in [0, 1], on the 8-bit grid
    mos: list[float | None]


class ImageSource:
    """The readable images of one dataset (built by :meth:`scan`), read on demand from its scratch file."""

    def __init__(self, label: str, scratch: BinaryIO, entries: list[Entry]):
        self.label, self.scratch, self.entries = label, scratch, entries

    @classmethod
    def scan(cls, spec, size: tuple[int, int] | None, policy: str, *, skipped: list[dict[str, str]],
             progress: bool = False) -> "ImageSource":
        """Read and prepare every image of ``spec``'s dataset once; unreadable ones are logged and appended to
        ``skipped``."""
        dataset = spec.build()
        scratch = tempfile.TemporaryFile(prefix="benchmark-images-")  # unlinked: gone when the process ends
        entries, offset = [], 0
        for image_id in tqdm(dataset.ids(), desc=f"read {spec.label}", leave=False, disable=not progress):
            try:
                sample = dataset.load(image_id)
            except DataError as exc:
                log.warning("dataset %s: skipping image %s: %s", spec.label, image_id, exc)
                skipped.append({"what": f"image {image_id} of {spec.label}", "reason": str(exc)})
                continue
            x = apply_size_policy(to_tensor(sample.image), size, policy)
            data = torch.round(x * 255).to(torch.uint8).numpy().tobytes()
            scratch.write(data)
            entries.append(Entry(sample.image_id, tuple(x.shape), sample.mos, offset))
            offset += len(data)
        if not entries:
            scratch.close()
            raise DataError(f"dataset {spec.label}: no readable images")
        scratch.flush()
        return cls(spec.label, scratch, entries)

    def __len__(self) -> int:
        return len(self.entries)

    def ids(self) -> list[str]:
        return [e.image_id for e in self.entries]

    def head(self, n: int) -> "ImageSource":
        """The first ``n`` images (budget calibration samples a few)."""
        return ImageSource(self.label, self.scratch, self.entries[:n])

    def plan(self, batch_size: int) -> list[list[Entry]]:
        """The batches, as entries (no pixels read)."""
        return batches(self.entries, batch_size, shape=lambda e: e.shape)

    def read(self, entry: Entry) -> torch.Tensor:
        """One prepared image, 3×H×W float32 in [0, 1], exactly as the size policy gave it."""
        n = entry.shape[0] * entry.shape[1] * entry.shape[2]
        data = os.pread(self.scratch.fileno(), n, entry.offset)
        if len(data) != n:
            raise DataError(f"dataset {self.label}: the scratch copy of image {entry.image_id} is truncated "
                            f"(is {tempfile.gettempdir()} full?)")
        return torch.frombuffer(bytearray(data), dtype=torch.uint8).view(entry.shape).float().div(255.0)

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """The images batch by batch; each batch is read when it is asked for."""
        for group in self.plan(batch_size):
            yield Batch([e.image_id for e in group], torch.stack([self.read(e) for e in group]),
                        [e.mos for e in group])
