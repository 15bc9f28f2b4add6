"""The ``clean`` stage, once per (dataset, metric): the metric's scores s of the clean images and their MOS m."""
from __future__ import annotations

from typing import Any

from ..datasets.base import spec_mos_lower_better
from .base import Stage, StageKind


def run(ctx, stage: Stage) -> dict[str, Any]:
    metric, dataset = ctx.metric(stage.cell.metric), stage.cell.dataset
    rows = []
    for b in ctx.images(dataset).batches(ctx.cfg.run.batch_size):
        scores = ctx.score(metric, b.x, b.ids, "clean")
        rows += [{"image_id": i, "score": s, "mos": m} for i, s, m in zip(b.ids, scores, b.mos)]
    return {"records": rows, "metric_meta": metric.metadata(),  # MOS direction: docs/measures.md#correlation-with-subjective-scores
            "mos_lower_better": spec_mos_lower_better(dataset.cls, dataset.params)}


KIND = StageKind("clean", deps=(), uses_metric=True, run=run, doc="s and m of every clean image")
