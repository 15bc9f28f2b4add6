"""The dataset contract: yields ``Sample(image_id, image, mos)``; knows its MOS direction and scale."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..params import bind, expect_at_least


@dataclass(frozen=True)
class Sample:
    image_id: str
    image: np.ndarray  # H×W×3 uint8 RGB
    mos: float | None


class Dataset:
    """Base class. Subclasses implement ``ids()`` and ``load(image_id)``.

    ``mos_lower_better`` is the direction of the subjective scale (True for DMOS, as in LIVE and CSIQ).
    It is a class attribute, or a constructor parameter of that name where a dataset lets the user set
    it (``folder``); the runner reads it without building the dataset (``spec_mos_lower_better``) and
    stores it in the clean stage, and every correlation with MOS is oriented by it (docs/measures.md#correlation-with-subjective-scores).
    """

    mos_lower_better: bool = False
    mos_range: tuple[float, float] | None = None

    @classmethod
    def check_params(cls, params: dict[str, Any], base: Path) -> dict[str, Any]:
        """Check constructor parameters without reading any data (``validate``; :mod:`benchmark.params`).

        Here: the keywords are the constructor's, and ``limit`` (when the class takes it) is at least 1.
        Subclasses extend this and call ``super()``; a constructor may call it with the few values it checks.
        """
        bind(cls, params, partial=True)
        expect_at_least(params, "limit", 1, "a number of images")
        return params

    @classmethod
    def check_files(cls, params: dict[str, Any]) -> None:
        """``validate``'s deep check (:mod:`benchmark.config_files`): the dataset is built, so its folder is listed
        and its score table parsed (every bad row reported), no image decoded. Subclasses may check less."""
        cls(**params)

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
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        if limit is None or limit >= len(ids):
            return ids
        idx = np.linspace(0, len(ids) - 1, num=limit).round().astype(int)
        return [ids[i] for i in idx]


def spec_mos_lower_better(cls: type, params: dict) -> bool:
    """The MOS direction of dataset class ``cls`` built with ``params``: the parameter ``mos_lower_better``
    when given, else the class attribute (:class:`Dataset` declares False, higher is better)."""
    return bool(params.get("mos_lower_better", cls.mos_lower_better))
