"""The dataset contract: yields ``Sample(image_id, image, mos)``; knows its MOS direction and scale."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np


@dataclass(frozen=True)
class Sample:
    image_id: str
    image: np.ndarray  # H×W×3 uint8 RGB
    mos: float | None


class Dataset:
    """Base class. Subclasses implement ``ids()`` and ``load(image_id)``."""

    mos_lower_better: bool = False
    mos_range: tuple[float, float] | None = None

    def ids(self) -> list[str]:
        raise NotImplementedError

    def load(self, image_id: str) -> Sample:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Sample]:
        for i in self.ids():
            yield self.load(i)

    def __len__(self) -> int:
        return len(self.ids())

    @staticmethod
    def subset(ids: list[str], limit: int | None) -> list[str]:
        """``limit`` images spread evenly over the ordered list (deterministic), or all of them."""
        if limit is None or limit >= len(ids):
            return ids
        idx = np.linspace(0, len(ids) - 1, num=max(limit, 1)).round().astype(int)
        return [ids[i] for i in idx]
