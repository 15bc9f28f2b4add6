"""What a stage function works with: the run's config and store, built plugins, images, and the scoring rules.

One :class:`StageContext` lives as long as the process that runs stages (the local run, a Ray actor): datasets are
listed once, metrics and defenses built once (a few of each are kept, the oldest dropped first), and the attacked
images a defense reads are decoded once for all the defenses of that attack (:meth:`StageContext.attacked`, up
to :data:`ATTACKED_CACHE_BYTES`). What the context could not build is remembered with its error, so a broken
dataset or a metric whose weights are missing fails every stage that needs it without being retried.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .. import passes
from ..errors import NonFiniteScoreError
from ..source import ImageSource

if TYPE_CHECKING:
    from ..config import MatrixConfig, PluginSpec
    from ..store import RunStore

log = logging.getLogger(__name__)

ATTACKED_CACHE_BYTES = 2 << 30  # decoded attacked images kept for the next defense: one attack of 1,000 images
                                # of 384×512 as 8-bit (590 MB) fits; a larger attack is decoded again per defense
PURIFIED_CACHE_BYTES = 1 << 30  # D(x) kept in memory for the def_clean stage of a one-metric matrix (not stored)
# built plugins kept per process (None: all), the least recently used dropped first: the graph's order runs a
# (dataset, metric) pair's stages together, so two metrics suffice; every defense is met once per attack, so all
# defenses stay built (a study's 30 defenses are mostly parameter-free; DiffPure's UNet is the large one)
KEEP_BUILT = {"metric": 2, "defense": None}


class StageContext:
    def __init__(self, cfg: MatrixConfig, store: RunStore, *, progress: bool = True,
                 skipped: list[dict[str, str]] | None = None):
        self.cfg, self.store, self.progress = cfg, store, progress
        self.device = torch.device(cfg.run.device)
        self.skipped = skipped if skipped is not None else []   # unreadable images found while listing datasets
        self._built: dict[str, OrderedDict[str, Any]] = {"images": OrderedDict(), "metric": OrderedDict(),
                                                         "defense": OrderedDict()}
        self._attacked: OrderedDict[tuple[str, str], torch.Tensor] = OrderedDict()
        self._attacked_bytes = 0
        self._purified: OrderedDict[tuple[str, str], torch.Tensor] = OrderedDict()
        self._purified_bytes = 0
        self.nonfinite: list[dict] | None = None   # while a stage runs: its images with a NaN/inf score

    # -- built inputs, once per process --------------------------------------------------------
    def _cached(self, what: str, spec: PluginSpec, make, keep: int | None = None):
        cache, key = self._built[what], spec.key_text()
        if key not in cache:
            try:
                cache[key] = (make(), None)
            except Exception as exc:  # remembered: every stage that needs it fails with this error
                cache[key] = (None, exc)
            while keep is not None and len(cache) > keep:
                cache.popitem(last=False)
        cache.move_to_end(key)
        value, exc = cache[key]
        if exc is not None:
            raise exc
        return value

    def images(self, spec: PluginSpec) -> ImageSource:
        """A dataset's readable images at the run's size policy, listed once (unreadable ones are skipped, with
        the reason, in ``skipped.json``) and read batch by batch by each stage."""
        run = self.cfg.run
        return self._cached("images", spec, lambda: ImageSource.scan(spec, run.image_size, run.size_policy,
                                                                     skipped=self.skipped, progress=self.progress))

    def metric(self, spec: PluginSpec):
        """The metric on the run's device, in eval mode, frozen, its forward passes counted."""
        def make():
            metric = spec.build().to(self.device).eval()
            for p in metric.parameters():
                p.requires_grad_(False)
            return passes.instrument(metric)
        return self._cached("metric", spec, make, KEEP_BUILT["metric"])

    def defense(self, spec: PluginSpec):
        """The defense on the run's device, in eval mode, its images counted."""
        return self._cached("defense", spec, lambda: passes.instrument_defense(spec.build().to(self.device).eval()),
                            KEEP_BUILT["defense"])

    # -- stored inputs ---------------------------------------------------------------------------
    def load(self, kind: str, key: str) -> dict[str, Any]:
        return self.store.load(kind, key)

    def attacked(self, key: str, ids: list[str], fmt: str) -> torch.Tensor:
        """The attack stage ``key``'s stored images ``ids``, stacked; each decoded once while it stays cached."""
        out = []
        for i in ids:
            x = self._attacked.get((key, i))
            if x is None:
                passes.count_decode()
                img = self.store.load_image("attack", key, i, fmt)
                x = torch.round(img * 255).to(torch.uint8) if fmt == "png" else img  # a PNG is exactly u8 / 255
                self._attacked[(key, i)] = x
                self._attacked_bytes += x.numel() * x.element_size()
                while self._attacked_bytes > ATTACKED_CACHE_BYTES and len(self._attacked) > 1:
                    _, old = self._attacked.popitem(last=False)
                    self._attacked_bytes -= old.numel() * old.element_size()
            else:
                self._attacked.move_to_end((key, i))
            out.append(x.float().div(255.0) if x.dtype == torch.uint8 else x)
        return torch.stack(out).to(self.device)

    def keep_purified(self, key: str, ids: list[str], out: torch.Tensor) -> None:
        """Keep D(x) of a def_quality stage that stores no files, for its def_clean stage in this process."""
        for i, x in zip(ids, out.detach().cpu()):
            self._purified[(key, i)] = x
            self._purified_bytes += x.numel() * x.element_size()
        while self._purified_bytes > PURIFIED_CACHE_BYTES and self._purified:
            _, old = self._purified.popitem(last=False)
            self._purified_bytes -= old.numel() * old.element_size()

    def purified(self, key: str, ids: list[str], fmt: str | None) -> torch.Tensor | None:
        """D(x) of images ``ids`` as the def_quality stage ``key`` stored it (``fmt``) or kept it in this process,
        stacked; None when it is neither (then the caller purifies again, with the same seed)."""
        if fmt is not None:
            return torch.stack([self.store.load_image("def_quality", key, i, fmt) for i in ids]).to(self.device)
        kept = [self._purified.get((key, i)) for i in ids]
        return None if any(x is None for x in kept) else torch.stack(kept).to(self.device)

    # -- scoring -----------------------------------------------------------------------------------
    def score(self, metric, x: torch.Tensor, ids: list[str], what: str) -> list[float]:
        with torch.no_grad():
            return self.check_finite(metric(x.to(self.device)), ids, what)

    def check_finite(self, scores: torch.Tensor, ids: list[str], what: str) -> list[float]:
        """The scores as floats. A NaN or infinite score is a property of its image, not a failure of the stage:
        it is stored as it is, listed in the stage record's ``nonfinite`` (and in skipped.json, with its reason)
        and the image is left out of the measures of every cell that uses it (:func:`measures.summarize_cell`).
        Outside a stage it is an error naming the images."""
        s = scores.detach().float().cpu()
        bad = [{"image_id": i, "what": what, "score": str(v)}
               for i, v, ok in zip(ids, s.tolist(), torch.isfinite(s).tolist()) if not ok]
        if bad and self.nonfinite is None:
            raise NonFiniteScoreError(f"metric returned NaN/inf on {what} image(s) {[b['image_id'] for b in bad]}")
        if bad:
            self.nonfinite += bad
        return s.tolist()

    def artifact_path(self, name: str) -> Path:
        return self.store.root / "artifacts" / name
