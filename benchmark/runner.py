"""The runner: plans the matrix into cached stages; an executor (``benchmark.executors``) runs them.

Stages (formulas.md notation), each stored under a content key of everything that determines it:

- ``clean``      once per (dataset, metric):            s, m
- ``attack``     once per (dataset, metric, attack):    x', s', imperceptibility of (x, x')
- ``def_clean``  once per (dataset, metric, defense):   s_D, quality of (x, D(x)), defense time
- ``def_adv``    once per (dataset, metric, attack, defense): s'_D, quality of (x, D(x')), time

``D(x)`` and ``D(x')`` use the same generator seed (derived from the dataset, defense and batch), so a
randomised defense is compared like for like. A failing stage is recorded with its error and the
cells that need it are skipped; everything else goes on.

``plan`` lists the cells, ``stage_graph`` the distinct stages with their dependencies and resources
(the executors schedule by cell; ``passes`` reads the graph);
the ``local`` executor runs cells in this process, the ``ray`` executor on a Ray cluster. Both call
the same stage functions below (``_run_cell``, ``_stage``, ``_clean``, ``_attack``, ``_defend``).
"""
from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from . import passes
from .attacks.adaptive import DefendedMetric
from .config import MatrixConfig, PluginSpec
from .datasets.base import spec_mos_lower_better
from .errors import DataError, MissingWeightsError, NonFiniteScoreError
from .images import apply_size_policy, batches, resize_to, to_tensor
from .manifest import write_manifest
from .quality import pair_quality, quality_keys
from .seeds import seed_from
from .store import RunStore, atomic_write_json, content_key

log = logging.getLogger(__name__)


@dataclass
class Cell:
    dataset: PluginSpec
    metric: PluginSpec
    attack: PluginSpec
    defense: PluginSpec
    keys: dict[str, str] = field(default_factory=dict)

    def labels(self) -> dict[str, str]:
        return {"dataset": self.dataset.label, "metric": self.metric.label, "attack": self.attack.label,
                "defense": self.defense.label}


def plan(cfg: MatrixConfig) -> list[Cell]:
    """Every cell of the matrix with the content keys of the four stages it needs."""
    run = cfg.run
    cells = []
    for d in cfg.datasets:
        dkey = {"dataset": d.key(), "image_size": run.image_size, "size_policy": run.size_policy,
                "lpips": run.lpips, "dists": run.dists}
        for m in cfg.metrics:
            clean = {**dkey, "metric": m.key()}
            for a in cfg.attacks:
                for df in cfg.defenses:
                    att = {**clean, "attack": a.key(), "seed": run.seed}
                    if a.adaptive:  # an adaptive attack sees the defense: one attack stage per defense
                        att["defense"] = df.key()
                    dc = {**clean, "defense": df.key(), "seed": run.seed}
                    da = {**att, "defense": df.key()}
                    cells.append(Cell(d, m, a, df, {
                        "clean": content_key({"stage": "clean", **clean}),
                        "attack": content_key({"stage": "attack", **att}),
                        "def_clean": content_key({"stage": "def_clean", **dc}),
                        "def_adv": content_key({"stage": "def_adv", **da})}))
    return cells


STAGES = ("clean", "attack", "def_clean", "def_adv")
DEPENDS = {"clean": (), "attack": ("clean",), "def_clean": ("clean",), "def_adv": ("attack", "def_clean")}


@dataclass(frozen=True)
class Stage:
    """One unit of work of the stage graph: what it computes, from what, after what, on what."""
    kind: str                    # one of STAGES
    key: str                     # content key: everything that determines its records
    cell: Cell                   # the first cell (in plan order) that needs it: labels and plugin specs
    deps: tuple[str, ...]        # keys of the stages that must be stored first
    inputs: tuple[str, ...]      # what it reads: "images", "metric", "defense", "attack:<key>"
    resources: dict[str, float]  # Ray-style requests: {"num_cpus": 1, "num_gpus": 0 or 1}


def stage_resources(device: str) -> dict[str, float]:
    """What one stage asks of an executor: one CPU, and one GPU when the run's device is CUDA."""
    return {"num_cpus": 1, "num_gpus": 1 if device.startswith("cuda") else 0}


def stage_graph(cells: list[Cell], device: str) -> dict[str, Stage]:
    """The distinct stages of the planned cells, keyed by content key, in plan order."""
    graph: dict[str, Stage] = {}
    for c in cells:
        for kind in STAGES:
            if c.keys[kind] in graph:
                continue
            inputs = ("images", "metric") + (("defense",) if kind.startswith("def_") or
                                             (kind == "attack" and c.attack.adaptive) else ())
            if kind == "def_adv":
                inputs += (f"attack:{c.keys['attack']}",)
            graph[c.keys[kind]] = Stage(kind, c.keys[kind], c, tuple(c.keys[d] for d in DEPENDS[kind]), inputs,
                                        stage_resources(device))
    return graph


class Executor(Protocol):
    """Runs the planned cells through a Runner's stage functions and store; returns the failed-cell count."""
    name: str

    def execute(self, runner: Runner, cells: list[Cell]) -> int: ...


class Runner:
    def __init__(self, cfg: MatrixConfig, run_dir: Path, *, progress: bool = True, store: RunStore | None = None):
        self.cfg, self.store, self.progress = cfg, store or RunStore(run_dir), progress
        self.device = torch.device(cfg.run.device)
        self.failed: dict[str, str] = {}   # stage key -> error message
        self.skipped: list[dict[str, str]] = [dict(s) for s in cfg.skipped]  # optional entries left out

    # -- helpers ------------------------------------------------------------------------------
    def _score(self, metric, x: torch.Tensor, ids: list[str], what: str) -> list[float]:
        with torch.no_grad():
            return self._check_finite(metric(x.to(self.device)), ids, what)

    @staticmethod
    def _check_finite(scores: torch.Tensor, ids: list[str], what: str) -> list[float]:
        s = scores.detach().float().cpu()
        bad = [i for i, ok in zip(ids, torch.isfinite(s).tolist()) if not ok]
        if bad:
            raise NonFiniteScoreError(f"metric returned NaN/inf on {what} image(s) {bad}")
        return s.tolist()

    def _stage(self, kind: str, key: str, cell: Cell, fn) -> dict[str, Any] | None:
        if key in self.failed:
            return None
        if self.store.has(kind, key):
            return self.store.load(kind, key)
        t0 = time.perf_counter()
        try:
            with passes.counting() as n_passes:
                record, tensors = fn()
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            msg = f"{type(exc).__name__}: {exc}"
            self.failed[key] = msg
            log.error("stage %s of %s failed: %s", kind, cell.labels(), msg)
            self.store.save_error(key, {"stage": kind, **cell.labels(), "error": msg,
                                        "traceback": traceback.format_exc()})
            return None
        record = {**record, "stage_seconds": time.perf_counter() - t0, "model_passes": n_passes.as_dict(),
                  **cell.labels()}
        self.store.save(kind, key, record, tensors)
        return record

    def load_images(self, spec: PluginSpec) -> list[tuple[str, torch.Tensor, float | None]]:
        """``(image_id, 3×H×W image at the run's size policy, MOS)`` of a dataset; unreadable images skipped."""
        dataset = spec.build()
        images = []
        ids = dataset.ids()
        for image_id in tqdm(ids, desc=f"load {spec.label}", leave=False, disable=not self.progress):
            try:
                sample = dataset.load(image_id)
            except DataError as exc:
                log.warning("dataset %s: skipping image %s: %s", spec.label, image_id, exc)
                self.skipped.append({"what": f"image {image_id} of {spec.label}", "reason": str(exc)})
                continue
            x = apply_size_policy(to_tensor(sample.image), self.cfg.run.image_size, self.cfg.run.size_policy)
            images.append((sample.image_id, x, sample.mos))
        if not images:
            raise DataError(f"dataset {spec.label}: no readable images")
        return images

    # -- main loop ----------------------------------------------------------------------------
    def run(self, executor: Executor | None = None) -> int:
        """Run (or resume) the matrix with ``executor`` (default: in-process); returns the number of failed cells."""
        from .executors.local import LocalExecutor

        cells = plan(self.cfg)
        write_manifest(self.store.root, self.cfg)
        atomic_write_json(self.store.root / "cells.json", [{**c.labels(), "keys": c.keys} for c in cells])
        if (self.store.root / "skipped.json").is_file() and all(self._cell_done(c) for c in cells):
            # a finished run resumed: no dataset is loaded, no model built (skipped.json stays as written)
            log.info("all %d cells are already stored in %s; nothing to run", len(cells), self.store.root)
            return 0
        with logging_redirect_tqdm():
            n_failed = (executor or LocalExecutor()).execute(self, cells)
        atomic_write_json(self.store.root / "skipped.json", self.skipped)
        passes.write_passes(self.store.root, cells)
        return n_failed

    def _cell_done(self, c: Cell) -> bool:
        return all(self.store.has(k, c.keys[k]) for k in STAGES)

    def metric_unavailable(self, spec: PluginSpec, cells: list[Cell], exc: Exception, bar) -> int:
        """A metric that could not be built: its cells are skipped (optional, missing weights) or failed."""
        if isinstance(exc, MissingWeightsError) and spec.optional:
            item = {"what": f"metric {spec.label}", "reason": str(exc)}
            if item not in self.skipped:  # once, though several workers may report it
                log.warning("metric %s skipped (optional): %s", spec.label, exc)
                self.skipped.append(item)
            bar.update(len(cells))
            return 0
        return self._fail_cells(cells, "metric", exc, bar)

    def _fail_cells(self, cells: list[Cell], what: str, exc: Exception, bar) -> int:
        msg = f"{type(exc).__name__}: {exc}"
        log.error("%s failed for %d cell(s): %s", what, len(cells), msg)
        for c in cells:
            self.store.save_error(c.keys["def_adv"], {"stage": what, **c.labels(), "error": msg})
        bar.update(len(cells))
        return len(cells)

    def build_metric(self, spec: PluginSpec):
        """The metric on the run's device, in eval mode, frozen, its forward passes counted."""
        metric = spec.build().to(self.device).eval()
        for p in metric.parameters():
            p.requires_grad_(False)
        return passes.instrument(metric)

    @staticmethod
    def skip_reason(cell: Cell, metric) -> str | None:
        """Why a cell cannot run by construction (a skip with its reason, not a failure), or None."""
        if cell.attack.cls.needs_gradient and not metric.differentiable:
            return f"{cell.attack.label} needs gradients and metric {cell.metric.label} declares differentiable = False"
        return None

    def skip_cell(self, cell: Cell, reason: str) -> None:
        """Record a skipped cell in skipped.json, once per (dataset, metric, attack)."""
        item = {"what": f"attack {cell.attack.label} on metric {cell.metric.label} ({cell.dataset.label})",
                "reason": reason}
        if item not in self.skipped:
            log.warning("skipped %s: %s", item["what"], reason)
            self.skipped.append(item)

    def clean_stage(self, cell: Cell, metric, images) -> dict[str, Any] | None:
        """The (dataset, metric) pair's clean stage, computed or loaded; None when it failed."""
        return self._stage("clean", cell.keys["clean"], cell, lambda: self._clean(metric, images, cell.dataset))

    def _run_cell(self, cell: Cell, metric, images) -> bool:
        reason = self.skip_reason(cell, metric)
        if reason is not None:
            self.skip_cell(cell, reason)
            return True
        clean = self.clean_stage(cell, metric, images)
        if clean is None:
            return False
        built: list = []

        def defense():  # built on first use: a resumed cell whose stages are all stored loads no model
            if not built:
                built.append(cell.defense.build().to(self.device).eval())
            return built[0]

        attack = self._stage("attack", cell.keys["attack"], cell,
                             lambda: self._attack(cell, metric, images, defense))
        if attack is None:
            return False
        dc = self._stage("def_clean", cell.keys["def_clean"], cell,
                         lambda: self._defend(cell, metric, defense(), images, adv=None))
        if dc is None:
            return False
        da = self._stage("def_adv", cell.keys["def_adv"], cell,
                         lambda: self._defend(cell, metric, defense(), images,
                                              adv=self.store.load_tensors("attack", cell.keys["attack"]),
                                              adv_records=attack["records"]))
        return da is not None

    # -- stages -------------------------------------------------------------------------------
    def _clean(self, metric, images, dataset: PluginSpec):
        rows = []
        for b in batches(images, self.cfg.run.batch_size):
            ids = [i for i, _, _ in b]
            scores = self._score(metric, torch.stack([x for _, x, _ in b]), ids, "clean")
            rows += [{"image_id": i, "score": s, "mos": m} for (i, _, m), s in zip(b, scores)]
        return {"records": rows, "metric_meta": metric.metadata(),  # MOS direction: formulas.md §4
                "mos_lower_better": spec_mos_lower_better(dataset.cls, dataset.params)}, None

    def _attack(self, cell: Cell, metric, images, defense: Callable):
        attack = cell.attack.build()
        gen = torch.Generator().manual_seed(seed_from(self.cfg.run.seed, cell.keys["attack"]))
        if attack.needs_fit:
            fit_key = content_key({"metric": cell.metric.key(), "attack": cell.attack.name,
                                   "fit": attack.fit_params(), "seed": self.cfg.run.seed})
            attack.fit(metric, generator=torch.Generator().manual_seed(seed_from(fit_key)),
                       artifact=self.store.root / "artifacts" / f"{cell.attack.name}-{fit_key}.pt",
                       provenance={"metric": cell.metric.label, "attack": cell.attack.label, "fit_key": fit_key},
                       progress=self.progress)
        target = metric
        if cell.attack.adaptive:
            target = DefendedMetric(metric, defense(), cell.attack.eot_samples,
                                    generator=torch.Generator().manual_seed(seed_from(cell.keys["attack"], "eot")))
        rows, advs = [], {}
        for b in tqdm(batches(images, self.cfg.run.batch_size), desc=f"attack {cell.attack.label}",
                      leave=False, disable=not self.progress):
            ids = [i for i, _, _ in b]
            x = torch.stack([x for _, x, _ in b]).to(self.device)
            attack.last_scores = None
            x_adv = attack(target, x, generator=gen).detach()
            # the attack's final forward pass already scored x' (non-adaptive: through f itself); reuse it
            known = attack.last_scores if target is metric else None
            scores = (self._check_finite(known, ids, "attacked") if known is not None and len(known) == len(ids)
                      else self._score(metric, x_adv, ids, "attacked"))
            q = pair_quality(x_adv, x, lpips=self.cfg.run.lpips, dists=self.cfg.run.dists)
            diff = (x_adv - x).flatten(1)
            for j, i in enumerate(ids):
                advs[i] = x_adv[j].cpu()
                rows.append({"image_id": i, "score_adv": scores[j], "linf_attack": float(diff[j].abs().max()),
                             "l2_attack": float(diff[j].norm()),
                             **{f"{k}_attack": float(v[j]) for k, v in q.items()}})
        meta = {"threat_model": attack.threat_model, "adaptive": cell.attack.adaptive, "budget": attack.budget,
                "eot_samples": cell.attack.eot_samples if cell.attack.adaptive else 0}
        return {"records": rows, "attack_meta": meta}, advs

    def _defend(self, cell: Cell, metric, defense, images, adv: dict[str, torch.Tensor] | None,
                adv_records: list[dict] | None = None):
        rows = []
        known = {r["image_id"]: r for r in adv_records or []}  # the attack stage's quality of (x', x)
        dkey = content_key({"dataset": cell.dataset.key(), "defense": cell.defense.key()})
        for b in batches(images, self.cfg.run.batch_size):
            ids = [i for i, _, _ in b]
            x = torch.stack([x for _, x, _ in b]).to(self.device)
            inp = x if adv is None else torch.stack([adv[i] for i in ids]).to(self.device)
            seed = seed_from(self.cfg.run.seed, dkey, ids)
            gen = torch.Generator().manual_seed(seed)
            tag = "clean" if adv is None else "adv"
            what = "defended " + ("clean" if adv is None else "attacked")
            t0 = time.perf_counter()
            certs: list[dict] = [{} for _ in ids]
            if defense.wraps_metric:
                # smoothing defenses score through the metric themselves and return certificates;
                # they do not change the image, so the purified image is the input
                scores_t, certs = defense.score(metric, inp, generator=gen)
                out = inp
                scores = self._check_finite(scores_t, ids, what)
                seconds = (time.perf_counter() - t0) / len(ids)
            else:
                with torch.no_grad():
                    out = defense(inp, generator=gen).clamp(0, 1)
                seconds = (time.perf_counter() - t0) / len(ids)
                scores = self._score(metric, out, ids, what)
            if adv is not None and all(i in known for i in ids) and torch.equal(out, inp):
                # D(x') = x' (identity; smoothing defenses, which score through the metric): the pair (x, D(x'))
                # is the attack stage's (x, x'), computed by the same code on the same batch: reuse it
                q = {k: torch.tensor([known[i][f"{k}_attack"] for i in ids], dtype=torch.float64)
                     for k in quality_keys(lpips=self.cfg.run.lpips, dists=self.cfg.run.dists)}
            else:
                q = pair_quality(resize_to(out, x), x, lpips=self.cfg.run.lpips, dists=self.cfg.run.dists)
            q_aligned = q  # against A(x), the clean image in the output's geometry (formulas.md §3)
            if defense.changes_geometry:  # align draws what forward drew, from a generator in the same state
                ref = defense.align(x, generator=torch.Generator().manual_seed(seed)).clamp(0, 1)
                q_aligned = pair_quality(out, resize_to(ref, out), lpips=self.cfg.run.lpips, dists=self.cfg.run.dists)
            for j, i in enumerate(ids):
                rows.append({"image_id": i, ("score_def" if adv is None else "score_adv_def"): scores[j],
                             f"seconds_def_{tag}": seconds, **{f"{k}_def_{tag}": float(v[j]) for k, v in q.items()},
                             **{f"{k}_def_{tag}_aligned": float(v[j]) for k, v in q_aligned.items()},
                             **{f"{k}_{tag}": v for k, v in certs[j].items() if k != "smoothed"}})
        meta = {"stochastic": bool(defense.stochastic), "differentiable": bool(defense.differentiable),
                "certified": bool(defense.wraps_metric), "baseline": bool(defense.baseline),
                "changes_geometry": bool(defense.changes_geometry)}
        return {"records": rows, "defense_meta": meta}, None
