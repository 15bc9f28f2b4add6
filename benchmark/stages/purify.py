"""The ``def_quality`` stage, once per (dataset, defense): D(x) and the quality of (x, D(x)), which no metric changes.

D(x) uses the generator seed derived from the dataset, the defense and the batch's image ids, the same seed the
``def_adv`` stage gives D(x'), so a randomised defense is compared like for like. When the matrix has several
metrics, D(x) is stored (8-bit PNG when it is on the 8-bit grid, as JPEG's output is, else float32 ``.npy``:
both exact) and each metric's ``def_clean`` stage scores the stored images instead of purifying again; with one
metric nothing is stored: D(x) is kept in memory for the def_clean stage that follows in the same process (up to
:data:`~benchmark.stages.context.PURIFIED_CACHE_BYTES`; beyond, or in another process, it is purified again). An image D leaves unchanged (identity) is marked ``unchanged`` and never stored:
its score is the clean score, its quality the closed form of (x, x).
"""
from __future__ import annotations

import time
from typing import Any

import torch

from ..images import resize_to
from ..quality import identical_quality, pair_quality
from ..seeds import seed_from
from ..store import content_key
from .base import Stage, StageKind


def defense_seed(ctx, cell, ids: list[str]) -> int:
    """The generator seed of D on a batch: the same for D(x) and D(x'), whatever the metric or attack."""
    return seed_from(ctx.cfg.run.seed, content_key({"dataset": cell.dataset.key(), "defense": cell.defense.key()}),
                     ids)


def aligned_quality(defense, out: torch.Tensor, x: torch.Tensor, seed: int, q: dict, run_cfg) -> dict:
    """The quality of ``out`` (D's output on ``x``) against A(x), the clean image in the output's geometry
    (docs/measures.md#defense): ``q`` itself unless D moves pixels; then ``align`` draws what ``forward`` drew,
    from a generator seeded as D's was."""
    if not defense.changes_geometry:
        return q
    ref = defense.align(x, generator=torch.Generator().manual_seed(seed)).clamp(0, 1)
    return pair_quality(out, resize_to(ref, out), lpips=run_cfg.lpips, dists=run_cfg.dists)


def on_8bit_grid(x: torch.Tensor) -> bool:
    return bool(torch.equal(torch.round(x * 255) / 255, x))


def run(ctx, stage: Stage) -> dict[str, Any]:
    cell, run_cfg = stage.cell, ctx.cfg.run
    defense, images = ctx.defense(cell.defense), ctx.images(cell.dataset)
    keep = len(ctx.cfg.metrics) > 1   # D(x) is read again by another metric's def_clean stage
    rows = []
    for b in images.batches(run_cfg.batch_size):
        x, ids = b.x.to(ctx.device), b.ids
        seed = defense_seed(ctx, cell, ids)
        t0 = time.perf_counter()
        with torch.no_grad():
            out = defense(x, generator=torch.Generator().manual_seed(seed)).clamp(0, 1)
        seconds = (time.perf_counter() - t0) / len(ids)
        same = torch.equal(out, x)
        unchanged = same and not defense.changes_geometry
        if unchanged:  # (x, x): known in closed form
            q = identical_quality(len(ids), min(x.shape[-2:]), lpips=run_cfg.lpips, dists=run_cfg.dists)
        else:
            q = pair_quality(resize_to(out, x), x, lpips=run_cfg.lpips, dists=run_cfg.dists)
        q_aligned = aligned_quality(defense, out, x, seed, q, run_cfg)
        fmt = ("png" if on_8bit_grid(out) else "float32") if keep and not same else None
        if not keep and not same:
            ctx.keep_purified(stage.key, ids, out)
        for j, i in enumerate(ids):
            if fmt is not None:
                ctx.store.save_image("def_quality", stage.key, i, out[j], fmt)
            rows.append({"image_id": i, "same": same, "format": fmt, "seconds_def_clean": seconds,
                         **{f"{k}_def_clean": float(v[j]) for k, v in q.items()},
                         **{f"{k}_def_clean_aligned": float(v[j]) for k, v in q_aligned.items()}})
    return {"records": rows}


KIND = StageKind("def_quality", deps=(), uses_metric=False, run=run,
                 doc="D(x) (stored for the other metrics) and the quality of (x, D(x))")
