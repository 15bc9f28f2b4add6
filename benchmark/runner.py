"""The runner: plans the matrix into its stage graph (:mod:`benchmark.stages`), runs one stage at a time on
request of an executor (:mod:`benchmark.executors`), and is the one writer of what stages produce.

A stage is run by :meth:`Runner.run_stage`: it is loaded when it is stored already, blocked when a stage it
reads failed or was skipped, skipped with its reason when the cell cannot run by construction (a gradient
attack on a metric that declares ``differentiable = False``; a fine-tuned metric's defense on another metric;
an optional metric whose weights are missing), and otherwise computed by its kind's function
(:meth:`Runner.compute`, which writes nothing but the stage's image files) and recorded
(:meth:`Runner.record`: the record, or the error with its traceback, and the skipped items). A distributed
executor computes stages in its workers and records their outcomes through the driver's runner, so both
executors write the same files. Every stage streams its images batch by batch; a failing stage is recorded
and the stages that read it are not run; everything else goes on. The disk filling up or the device being
lost ends the run (:func:`benchmark.errors.run_stopping`).
"""
from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm.contrib.logging import logging_redirect_tqdm

from . import passes
from .config import MatrixConfig
from .errors import MissingWeightsError, run_stopping
from .manifest import write_manifest
from .stages.base import Cell, Stage
from .stages.context import StageContext
from .stages.graph import RECORD_KINDS, kinds, plan, stage_graph
from .store import RunStore, atomic_write_json

log = logging.getLogger(__name__)

__all__ = ["Cell", "Executor", "Outcome", "RECORD_KINDS", "Runner", "Stage", "plan", "stage_graph"]


@dataclass
class Outcome:
    """What running one stage gave: ``stored`` (computed now), ``loaded`` (stored before), ``failed``,
    ``skipped`` (by construction, with its reason) or ``blocked`` (a stage it reads failed or was skipped)."""
    kind: str
    key: str
    status: str
    record: dict[str, Any] | None = None
    error: dict[str, Any] | None = None          # the error record (stage, labels, error, traceback)
    skipped: list[dict[str, str]] = field(default_factory=list)   # items for skipped.json
    reason: str | None = None                    # why a stage is skipped by construction (every cell it serves)

    @property
    def ok(self) -> bool:
        return self.status in ("stored", "loaded")


class Executor(Protocol):
    """Runs a stage graph through a Runner (``run_stage``, or ``compute`` + ``record`` elsewhere)."""
    name: str

    def execute(self, runner: Runner, graph: dict[str, Stage], cells: list[Cell]) -> None: ...


class Runner:
    def __init__(self, cfg: MatrixConfig, run_dir: Path, *, progress: bool = True, store: RunStore | None = None):
        self.cfg, self.store, self.progress = cfg, store or RunStore(run_dir), progress
        self.device = torch.device(cfg.run.device)
        self.failed: dict[str, str] = {}     # stage key -> error message
        self.blocked: dict[str, str] = {}    # stage key -> "failed" or "skipped": a stage it reads did not run
        self.skipped: list[dict[str, str]] = [dict(s) for s in cfg.skipped]  # optional entries left out
        self.ctx = StageContext(cfg, self.store, progress=progress, skipped=self.skipped)
        self.kinds = kinds()
        self._cells_of: dict[str, list[Cell]] = {}

    def open_images(self, spec):
        """A dataset's readable images at the run's size policy (:meth:`StageContext.images`)."""
        return self.ctx.images(spec)

    def build_metric(self, spec):
        """The metric on the run's device, in eval mode, frozen, its passes counted (:meth:`StageContext.metric`)."""
        return self.ctx.metric(spec)

    # -- the run ------------------------------------------------------------------------------
    def run(self, executor: Executor | None = None) -> int:
        """Run (or resume) the matrix with ``executor`` (default: in-process); returns the number of failed cells."""
        from .executors.local import LocalExecutor

        cells = plan(self.cfg)
        graph = self.prepare(cells)
        write_manifest(self.store.root, self.cfg)
        atomic_write_json(self.store.root / "cells.json", [{**c.labels(), "keys": c.keys} for c in cells])
        if (self.store.root / "skipped.json").is_file() and all(self.cell_done(c) for c in cells):
            # a finished run resumed: no dataset is loaded, no model built (skipped.json stays as written)
            log.info("all %d cells are already stored in %s; nothing to run", len(cells), self.store.root)
            return 0
        threads = torch.get_num_threads()
        if self.cfg.run.threads is not None:   # [run] threads: this process's stages (Ray workers: their own)
            torch.set_num_threads(self.cfg.run.threads)
        try:
            with logging_redirect_tqdm():
                (executor or LocalExecutor()).execute(self, graph, cells)
        finally:
            torch.set_num_threads(threads)
        self.skipped += [i for i in self.nonfinite_items(cells) if i not in self.skipped]
        atomic_write_json(self.store.root / "skipped.json", self.skipped)
        passes.write_passes(self.store.root, graph.values(), tuple(self.kinds))
        return self.failed_cells(cells)

    def prepare(self, cells: list[Cell]) -> dict[str, Stage]:
        """Remember which planned cells each stage serves and return their stage graph."""
        self._cells_of = {}
        for c in cells:
            for key in c.keys.values():
                self._cells_of.setdefault(key, []).append(c)
        return stage_graph(cells, self.cfg.run.device)

    def cell_done(self, c: Cell) -> bool:
        return all(self.store.has(k, key) for k, key in c.keys.items())

    def failed_cells(self, cells: list[Cell]) -> int:
        """Cells whose records are incomplete for another reason than a skip."""
        return sum(1 for c in cells if any(
            not self.store.has(k, c.keys[k]) and self.blocked.get(c.keys[k]) != "skipped" for k in RECORD_KINDS))

    # -- one stage ----------------------------------------------------------------------------
    def run_stage(self, stage: Stage) -> Outcome:
        """Load, skip, or compute and record one stage whose deps are settled; its outcome."""
        if self.store.has(stage.kind, stage.key):
            return Outcome(stage.kind, stage.key, "loaded", record=self.store.load(stage.kind, stage.key))
        out = self.blocked_outcome(stage)
        if out is None:
            out = self.compute(stage)
        self.record(stage, out)
        return out

    def blocked_outcome(self, stage: Stage) -> Outcome | None:
        """``blocked`` when a stage that ``stage`` reads failed or was skipped, else None."""
        for dep in stage.deps.values():
            if dep in self.failed or dep in self.blocked:
                why = "failed" if dep in self.failed or self.blocked[dep] == "failed" else "skipped"
                return Outcome(stage.kind, stage.key, "blocked", error={"why": why})
        return None

    def compute(self, stage: Stage) -> Outcome:
        """Run ``stage``'s function (deps stored) and return its outcome; writes nothing but its image files."""
        skip = self.skip_reason(stage)
        if skip is not None:
            return skip
        ctx, t0 = self.ctx, time.perf_counter()
        ctx.nonfinite = []
        try:
            with passes.counting() as n_passes:
                record = self.kinds[stage.kind].run(ctx, stage)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            if (stop := run_stopping(exc)) is not None:  # the disk or the device, not the stage: the run ends
                raise stop if stop is not exc else exc
            msg = f"{type(exc).__name__}: {exc}"
            return Outcome(stage.kind, stage.key, "failed", error={"stage": stage.kind, **stage.labels(), "error": msg,
                                                                   "traceback": traceback.format_exc()})
        finally:
            nonfinite, ctx.nonfinite = ctx.nonfinite, None
        if nonfinite:
            log.warning("stage %s of %s: the metric returned NaN/inf on %d image(s) (%s); they are left out of "
                        "the measures (skipped.json)", stage.kind, stage.labels(), len(nonfinite),
                        ", ".join(f"{b['image_id']}: {b['score']}" for b in nonfinite))
            record = {**record, "nonfinite": nonfinite}
        counts = {**n_passes.as_dict(), "images": len(record.get("records", ()))}
        record = {**record, "stage_seconds": time.perf_counter() - t0, "model_passes": counts, **stage.labels()}
        return Outcome(stage.kind, stage.key, "stored", record=record)

    def record(self, stage: Stage, out: Outcome) -> None:
        """The one writer: store a stage's record, or its error, and the skipped items of the cells it serves."""
        if out.status == "stored":
            self.store.save(stage.kind, stage.key, out.record)
        elif out.status == "failed":
            self.failed[stage.key] = out.error["error"]
            log.error("stage %s of %s failed: %s", stage.kind, stage.labels(), out.error["error"])
            self.store.save_error(stage.key, out.error)
        elif out.status == "blocked":
            self.blocked[stage.key] = out.error["why"]
        elif out.status == "skipped":
            self.blocked[stage.key] = "skipped"
        items = list(out.skipped)
        if out.reason is not None:  # each cell the stage serves, once per (dataset, metric, attack)
            items += [{"what": f"attack {c.attack.label} on metric {c.metric.label} ({c.dataset.label})",
                       "reason": out.reason} for c in self._cells_of.get(stage.key, [stage.cell])]
        for item in items:
            if item not in self.skipped:
                if out.status == "skipped":
                    log.warning("skipped %s: %s", item["what"], item["reason"])
                self.skipped.append(item)

    # -- skips by construction ------------------------------------------------------------------
    def skip_reason(self, stage: Stage) -> Outcome | None:
        """A ``skipped`` outcome when ``stage`` cannot run by construction, else None."""
        cell = stage.cell
        if not self.kinds[stage.kind].uses_metric:
            return None
        try:
            metric = self.ctx.metric(cell.metric)
        except MissingWeightsError as exc:
            if not cell.metric.optional:
                return None   # the stage fails with the error
            return Outcome(stage.kind, stage.key, "skipped",
                           skipped=[{"what": f"metric {cell.metric.label}", "reason": str(exc)}])
        except Exception:
            return None
        reason = None
        uses_defense = stage.kind != "clean" and (stage.kind != "attack" or cell.attack.adaptive)
        if stage.kind in ("attack", "def_adv", "strip") and cell.attack.cls.needs_gradient \
                and not metric.differentiable:
            reason = (f"{cell.attack.label} needs gradients and metric {cell.metric.label} declares "
                      "differentiable = False")
        elif uses_defense and cell.defense.cls.replaces_metric:  # a fine-tuned metric: only for its base metric
            reason = self.ctx.defense(cell.defense).metric_problem(cell.metric)
        return None if reason is None else Outcome(stage.kind, stage.key, "skipped", reason=reason)

    # -- after the run ----------------------------------------------------------------------------
    def nonfinite_items(self, cells: list[Cell]) -> list[dict[str, str]]:
        """skipped.json's entries for the images on which the metric returned NaN or infinity, read from the
        stored stages of ``cells``: each (stage, image) once, with its score and where it came from."""
        where = {"clean": ("metric",), "attack": ("metric", "attack"), "def_clean": ("metric", "defense"),
                 "def_adv": ("metric", "attack", "defense")}
        items, seen = [], set()
        for c in cells:
            for kind in RECORD_KINDS:
                if c.keys[kind] in seen or not self.store.has(kind, c.keys[kind]):
                    continue
                seen.add(c.keys[kind])
                labels = c.labels()
                context = ", ".join(f"{k} {labels[k]}" for k in where[kind])
                for bad in self.store.load(kind, c.keys[kind]).get("nonfinite", ()):
                    items.append({"what": f"image {bad['image_id']} of {c.dataset.label}",
                                  "reason": f"the {bad['what']} score is {bad['score']} ({context}): left out of "
                                            "the measures of the cells that use it",
                                  "image_id": bad["image_id"], "stage": kind,
                                  **{k: labels[k] for k in ("dataset",) + where[kind]}})
        return items
