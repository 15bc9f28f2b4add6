"""The stage graph: every stage of a matrix declared with its key, dependencies, inputs and resources.

``plan`` lists the cells of a matrix, each with the content keys of the stages it needs; ``stage_graph`` turns
them into the distinct stages (a stage shared by several cells appears once) with their dependencies; both
executors schedule from it (``local`` in dependency order in one process, ``ray`` as tasks on a pool of actors,
independent stages in parallel) and ``passes.json`` reads it. The kinds, in dependency order
(docs/measures.md has the notation):

=============  =======================================  ==============================================
kind           once per                                 computes
=============  =======================================  ==============================================
clean          (dataset, metric)                        s, m
fit            (metric, attack) of a needs_fit attack       the attack's trained state (a UAP), every dataset    (dataset, defense)                       D(x) (stored when several metrics read it), the
                                                        quality of (x, D(x)); no metric: shared by all
attack         (dataset, metric, attack[, defense])     x' (one file per image), s', quality of (x, x')
def_clean      (dataset, metric, defense)               s_D (scores of the stored D(x))
def_adv        (dataset, metric, attack, defense)       D(x'), s'_D, quality of (x, D(x'))
strip          one cell                                 the report's images of one picked image
=============  =======================================  ==============================================

A defense that scores through the metric (``wraps_metric``: smoothing, a fine-tuned metric) has no
``def_quality`` stage: its ``D(x)`` is the metric's own business, computed by ``def_clean``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..quality import QUALITY_VERSION
from ..store import content_key
from .base import Cell, Stage, StageKind
from .fit import fit_key
from .strip import STRIP_VERSION

if TYPE_CHECKING:
    from ..config import MatrixConfig

# the kinds whose records make the per-image table (benchmark.records); def_quality and strip serve them
RECORD_KINDS = ("clean", "attack", "def_clean", "def_adv")
DEF_QUALITY_VERSION = 2   # in def_quality's key: version 1 (stored by a metric's def_clean) had no D(x) files


def kinds() -> dict[str, StageKind]:
    """Every stage kind, by name, in dependency order (each reads only kinds before it)."""
    from . import attack, clean, defend, fit, purify, strip

    return {k.name: k for k in (clean.KIND, purify.KIND, fit.KIND, attack.KIND, defend.CLEAN, defend.ADV,
                                strip.KIND)}


def plan(cfg: MatrixConfig) -> list[Cell]:
    """Every cell of the matrix with the content keys of the stages it needs."""
    run = cfg.run
    cells = []
    fits: dict[tuple[str, str], str] = {}   # (metric, attack) -> the fit key of an attack trained first
    for d in cfg.datasets:
        dkey = {"dataset": d.key(), "image_size": run.image_size, "size_policy": run.size_policy,
                "lpips": run.lpips, "dists": run.dists}
        for m in cfg.metrics:
            clean = {**dkey, "metric": m.key()}
            for a, df in cfg.cell_pairs():  # an attack without `adaptive` runs plainly and adaptively (its twin)
                att = {**clean, "attack": a.key(), "seed": run.seed, "attacked_images": run.attacked_images}
                if a.adaptive:  # an adaptive attack sees the defense: one attack stage per defense
                    att["defense"] = df.key()
                # the defense stages store pair_quality's columns: its version is in their keys (not the
                # attack's, whose images stay valid)
                dc = {**clean, "defense": df.key(), "seed": run.seed, "quality": QUALITY_VERSION}
                da = {**att, "defense": df.key(), "quality": QUALITY_VERSION}
                keys = {"clean": content_key({"stage": "clean", **clean}),
                        "attack": content_key({"stage": "attack", **att}),
                        "def_clean": content_key({"stage": "def_clean", **dc}),
                        "def_adv": content_key({"stage": "def_adv", **da})}
                if a.cls.needs_fit:  # trained once per (metric, attack), for every dataset
                    pair = (m.key_text(), a.key_text())
                    if pair not in fits:
                        fits[pair] = fit_key(Cell(d, m, a, df), a.build(), run.seed)
                    keys["fit"] = content_key({"stage": "fit", "fit": fits[pair]})
                if not df.cls.wraps_metric:  # D(x) and its quality, which no metric changes: once for every metric
                    keys["def_quality"] = content_key({"stage": "def_quality", **dkey, "defense": df.key(),
                                                       "quality": QUALITY_VERSION, "seed": run.seed,
                                                       "version": DEF_QUALITY_VERSION})
                keys["strip"] = content_key({"stage": "strip", "def_adv": keys["def_adv"], "version": STRIP_VERSION})
                cells.append(Cell(d, m, a, df, keys))
    return cells


def stage_resources(device: str) -> dict[str, float]:
    """What one stage asks of an executor: one CPU, and one GPU when the run's device is CUDA."""
    return {"num_cpus": 1, "num_gpus": 1 if device.startswith("cuda") else 0}


def stage_inputs(kind: StageKind, cell: Cell) -> tuple[str, ...]:
    """What a stage of ``kind`` reads besides its deps' records: the dataset's images, built plugins, stored files."""
    uses_defense = kind.name in ("def_quality", "def_clean", "def_adv", "strip") or (
        kind.name == "attack" and cell.attack.adaptive)
    files = tuple(f"{d}:{cell.keys[d]}" for d in kind.deps if d in ("attack", "def_quality") and d in cell.keys)
    return ("images",) + (("metric",) if kind.uses_metric else ()) + (("defense",) if uses_defense else ()) + files


def stage_graph(cells: list[Cell], device: str) -> dict[str, Stage]:
    """The distinct stages of the planned cells, keyed by content key, in dependency order: cell by cell in plan
    order (dataset, metric, attack, defense), each cell's stages in kind order, so consecutive stages share their
    dataset, metric and attack."""
    graph: dict[str, Stage] = {}
    resources = stage_resources(device)
    table = kinds()
    for c in cells:
        for kind in table.values():
            key = c.keys.get(kind.name)
            if key is None or key in graph:
                continue
            deps = {d: c.keys[d] for d in kind.deps if d in c.keys}
            graph[key] = Stage(kind.name, key, c, deps, stage_inputs(kind, c), resources)
    return graph


def cell_stages(cell: Cell) -> list[tuple[str, str]]:
    """(kind, key) of every stage ``cell`` needs."""
    return [(k, cell.keys[k]) for k in kinds() if k in cell.keys]
