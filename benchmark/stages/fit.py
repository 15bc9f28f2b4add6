"""The ``fit`` stage, once per (metric, attack) for an attack that is trained before it is applied (UAP, FACPA:
``needs_fit``): it trains the attack's state on the metric into ``<run>/artifacts/<attack>-<fit key>.pt``
(or finds it there), so every attack stage of that (metric, attack), on any dataset, loads it instead of
training again, and two executors' workers never train it twice at once. Its key is everything that determines
the artifact: the metric, the attack's fit parameters and the run's seed, not the dataset.
"""
from __future__ import annotations

from typing import Any

import torch

from ..seeds import seed_from
from ..store import content_key
from .base import Cell, Stage, StageKind


def fit_key(cell: Cell, attack, seed: int) -> str:
    """The content key of the fitted state of ``attack`` (``cell.attack`` built) on ``cell.metric``."""
    return content_key({"metric": cell.metric.key(), "attack": cell.attack.name, "fit": attack.fit_params(),
                        "seed": seed})


def fit_attack(ctx, cell: Cell, attack, metric) -> str:
    """Fit ``attack`` on ``metric`` (training it, or loading the stored artifact); returns the fit key."""
    key = fit_key(cell, attack, ctx.cfg.run.seed)
    attack.fit(metric, generator=torch.Generator().manual_seed(seed_from(key)),
               artifact=ctx.artifact_path(f"{cell.attack.name}-{key}.pt"),
               provenance={"metric": cell.metric.label, "attack": cell.attack.label, "fit_key": key},
               progress=ctx.progress)
    return key


def run(ctx, stage: Stage) -> dict[str, Any]:
    cell = stage.cell
    key = fit_attack(ctx, cell, cell.attack.build(), ctx.metric(cell.metric))
    return {"records": [], "fit_key": key, "artifact": f"artifacts/{cell.attack.name}-{key}.pt"}


KIND = StageKind("fit", deps=(), uses_metric=True, run=run, doc="the trained state of a needs_fit attack (UAP)")
