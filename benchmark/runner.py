"""The runner: plans the matrix into cached stages; an executor (``benchmark.executors``) runs them.

Stages (the notation of docs/measures.md), each stored under a content key of everything that determines it:

- ``clean``      once per (dataset, metric):            s, m
- ``attack``     once per (dataset, metric, attack):    x' (one file per image), s', imperceptibility of (x, x')
- ``def_clean``  once per (dataset, metric, defense):   s_D, quality of (x, D(x)), defense time
- ``def_adv``    once per (dataset, metric, attack, defense): s'_D, quality of (x, D(x')), time

Every stage streams: it reads the dataset's images (:class:`~benchmark.source.ImageSource`) and the
attack's stored images batch by batch, so memory does not grow with the number of images. Nothing known is
computed again: the attack's final scores of x' are reused; a defense that leaves its input unchanged
(identity) is not scored again, and its pairs' quality is the attack stage's (x, x') or, for (x, x), the
closed form; the quality of (x, D(x)), which no metric changes, is measured by the first metric's
``def_clean`` stage and stored (``def_quality``) for the others.

``D(x)`` and ``D(x')`` use the same generator seed (derived from the dataset, defense and batch), so a
randomised defense is compared like for like. A failing stage is recorded with its error and the
cells that need it are skipped; everything else goes on.

``plan`` lists the cells, ``stage_graph`` the distinct stages with their dependencies and resources
(the executors schedule by cell; ``passes`` reads the graph);
the ``local`` executor runs cells in this process, the ``ray`` executor on a Ray cluster. Both call
the same stage functions below (``run_cell``, ``_stage``, ``_clean``, ``_attack``, ``_defend``).
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
from .errors import MissingWeightsError, NonFiniteScoreError, run_stopping
from .images import quantize_8bit, resize_to
from .manifest import write_manifest
from .quality import QUALITY_VERSION, identical_quality, pair_quality, quality_keys
from .source import ImageSource
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
            for a, df in cfg.cell_pairs():  # an attack without `adaptive` runs plainly and adaptively (its twin)
                att = {**clean, "attack": a.key(), "seed": run.seed, "attacked_images": run.attacked_images}
                if a.adaptive:  # an adaptive attack sees the defense: one attack stage per defense
                    att["defense"] = df.key()
                # the defense stages store pair_quality's columns: its version is in their keys (not the
                # attack's, whose images stay valid)
                dc = {**clean, "defense": df.key(), "seed": run.seed, "quality": QUALITY_VERSION}
                da = {**att, "defense": df.key(), "quality": QUALITY_VERSION}
                cells.append(Cell(d, m, a, df, {
                    "clean": content_key({"stage": "clean", **clean}),
                    "attack": content_key({"stage": "attack", **att}),
                    "def_clean": content_key({"stage": "def_clean", **dc}),
                    "def_adv": content_key({"stage": "def_adv", **da}),
                    # the quality of (x, D(x)), which no metric changes: measured once for every metric
                    "def_quality": content_key({"stage": "def_quality", **dkey, "defense": df.key(),
                                                "quality": QUALITY_VERSION,
                                                "seed": run.seed})}))
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


def stored_quality(rows: dict[str, dict], ids: list[str], keys: tuple[str, ...], suffix: str) -> dict[str, torch.Tensor]:
    """The stored quality columns ``<name><suffix>`` of images ``ids`` (``rows`` by image id), in the form
    :func:`~benchmark.quality.pair_quality` returns them."""
    return {k: torch.tensor([rows[i][f"{k}{suffix}"] for i in ids], dtype=torch.float64) for k in keys}


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
        self._nonfinite: list[dict] | None = None  # while a stage runs: its images with a NaN/inf score

    # -- helpers ------------------------------------------------------------------------------
    def _score(self, metric, x: torch.Tensor, ids: list[str], what: str) -> list[float]:
        with torch.no_grad():
            return self._check_finite(metric(x.to(self.device)), ids, what)

    def _check_finite(self, scores: torch.Tensor, ids: list[str], what: str) -> list[float]:
        """The scores as floats. A NaN or infinite score is a property of its image, not a failure of the stage:
        it is stored as it is, listed in the stage record's ``nonfinite`` (and in skipped.json, with its reason)
        and the image is left out of the measures of every cell that uses it (:func:`measures.summarize_cell`).
        Outside a stage it is an error naming the images."""
        s = scores.detach().float().cpu()
        bad = [{"image_id": i, "what": what, "score": str(v)}
               for i, v, ok in zip(ids, s.tolist(), torch.isfinite(s).tolist()) if not ok]
        if bad and self._nonfinite is None:
            raise NonFiniteScoreError(f"metric returned NaN/inf on {what} image(s) {[b['image_id'] for b in bad]}")
        if bad:
            self._nonfinite += bad
        return s.tolist()

    def _stage(self, kind: str, key: str, cell: Cell, fn) -> dict[str, Any] | None:
        if key in self.failed:
            return None
        if self.store.has(kind, key):
            return self.store.load(kind, key)
        t0 = time.perf_counter()
        self._nonfinite = []
        try:
            with passes.counting() as n_passes:
                record = fn()
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            if (stop := run_stopping(exc)) is not None:  # the disk or the device, not the stage: the run ends
                raise stop if stop is not exc else exc
            msg = f"{type(exc).__name__}: {exc}"
            self.failed[key] = msg
            log.error("stage %s of %s failed: %s", kind, cell.labels(), msg)
            self.store.save_error(key, {"stage": kind, **cell.labels(), "error": msg,
                                        "traceback": traceback.format_exc()})
            return None
        finally:
            nonfinite, self._nonfinite = self._nonfinite, None
        if nonfinite:
            log.warning("stage %s of %s: the metric returned NaN/inf on %d image(s) (%s); they are left out of "
                        "the measures (skipped.json)", kind, cell.labels(), len(nonfinite),
                        ", ".join(f"{b['image_id']}: {b['score']}" for b in nonfinite))
            record = {**record, "nonfinite": nonfinite}
        record = {**record, "stage_seconds": time.perf_counter() - t0, "model_passes": n_passes.as_dict(),
                  **cell.labels()}
        self.store.save(kind, key, record)
        return record

    def open_images(self, spec: PluginSpec) -> ImageSource:
        """A dataset's readable images at the run's size policy, listed once and read batch by batch by each
        stage (unreadable images are skipped, with the reason, in ``skipped.json``)."""
        return ImageSource.scan(spec, self.cfg.run.image_size, self.cfg.run.size_policy, skipped=self.skipped,
                                progress=self.progress)

    # -- main loop ----------------------------------------------------------------------------
    def run(self, executor: Executor | None = None) -> int:
        """Run (or resume) the matrix with ``executor`` (default: in-process); returns the number of failed cells."""
        cells = plan(self.cfg)
        write_manifest(self.store.root, self.cfg)
        atomic_write_json(self.store.root / "cells.json", [{**c.labels(), "keys": c.keys} for c in cells])
        if (self.store.root / "skipped.json").is_file() and all(self.cell_done(c) for c in cells):
            # a finished run resumed: no dataset is loaded, no model built (skipped.json stays as written)
            log.info("all %d cells are already stored in %s; nothing to run", len(cells), self.store.root)
            return 0
        with logging_redirect_tqdm():
            n_failed = executor.execute(self, cells) if executor is not None else self.execute_here(cells)
        self.skipped += [i for i in self.nonfinite_items(cells) if i not in self.skipped]
        atomic_write_json(self.store.root / "skipped.json", self.skipped)
        passes.write_passes(self.store.root, stage_graph(cells, "cpu").values(), STAGES)
        return n_failed

    def execute_here(self, cells: list[Cell]) -> int:
        """Run every cell not yet stored in this process, dataset by dataset and metric by metric (the ``local``
        executor); returns the number of failed cells."""
        n_failed = 0
        bar = tqdm(total=len(cells), desc="matrix", unit="cell", disable=not self.progress)
        for ds in self.cfg.datasets:
            ds_cells = [c for c in cells if c.dataset is ds]
            try:
                images = self.open_images(ds)
            except Exception as exc:
                n_failed += self.fail_cells(ds_cells, "dataset", exc, bar)
                continue
            for m in self.cfg.metrics:
                m_cells = [c for c in ds_cells if c.metric is m]
                if all(self.cell_done(c) for c in m_cells):
                    bar.update(len(m_cells))
                    continue
                try:
                    metric = self.build_metric(m)
                except Exception as exc:
                    n_failed += self.metric_unavailable(m, m_cells, exc, bar)
                    continue
                for cell in m_cells:
                    n_failed += 0 if self.run_cell(cell, metric, images) else 1
                    bar.update(1)
        bar.close()
        return n_failed

    def cell_done(self, c: Cell) -> bool:
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
        return self.fail_cells(cells, "metric", exc, bar)

    def nonfinite_items(self, cells: list[Cell]) -> list[dict[str, str]]:
        """skipped.json's entries for the images on which the metric returned NaN or infinity, read from the
        stored stages of ``cells``: each (stage, image) once, with its score and where it came from."""
        where = {"clean": ("metric",), "attack": ("metric", "attack"), "def_clean": ("metric", "defense"),
                 "def_adv": ("metric", "attack", "defense")}
        items, seen = [], set()
        for c in cells:
            for kind in STAGES:
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

    def fail_cells(self, cells: list[Cell], what: str, exc: Exception, bar) -> int:
        if (stop := run_stopping(exc)) is not None:  # the disk or the device: the run ends, nothing is recorded
            raise stop if stop is not exc else exc
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
        if cell.defense.cls.replaces_metric:  # a fine-tuned metric: only for its base metric
            return cell.defense.build().metric_problem(cell.metric)
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

    def run_cell(self, cell: Cell, metric, images) -> bool:
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
                         lambda: self._defend(cell, metric, defense(), images, clean["records"]))
        if dc is None:
            return False
        da = self._stage("def_adv", cell.keys["def_adv"], cell,
                         lambda: self._defend(cell, metric, defense(), images, attack["records"], attack=attack))
        return da is not None

    # -- stages -------------------------------------------------------------------------------
    def _clean(self, metric, images: ImageSource, dataset: PluginSpec):
        rows = []
        for b in images.batches(self.cfg.run.batch_size):
            scores = self._score(metric, b.x, b.ids, "clean")
            rows += [{"image_id": i, "score": s, "mos": m} for i, s, m in zip(b.ids, scores, b.mos)]
        return {"records": rows, "metric_meta": metric.metadata(),  # MOS direction: docs/measures.md#correlation-with-subjective-scores
                "mos_lower_better": spec_mos_lower_better(dataset.cls, dataset.params)}

    def _attack(self, cell: Cell, metric, images: ImageSource, defense: Callable):
        attack = cell.attack.build()
        fmt, key = self.cfg.run.attacked_images, cell.keys["attack"]
        gen = torch.Generator().manual_seed(seed_from(self.cfg.run.seed, key))
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
                                    generator=torch.Generator().manual_seed(seed_from(key, "eot")))
        # stored as 8-bit PNG: x' is quantised before it is scored and measured (benchmark.attacked); an attack
        # that scores its output (PGD) quantises it before its final forward pass, whose scores are then reused
        attack.output_8bit = fmt == "png"
        linf = attack.budget if attack.threat_model == "linf" else None
        rows = []
        for b in tqdm(images.batches(self.cfg.run.batch_size), total=len(images.plan(self.cfg.run.batch_size)),
                      desc=f"attack {cell.attack.label}", leave=False, disable=not self.progress):
            x = b.x.to(self.device)
            attack.last_scores = None
            out = attack(target, x, generator=gen).detach()
            x_adv = quantize_8bit(out, x, linf) if fmt == "png" else out
            # the attack's final forward pass already scored x' (non-adaptive: through f itself); reuse it
            known = attack.last_scores if target is metric and torch.equal(x_adv, out) else None
            scores = (self._check_finite(known, b.ids, "attacked") if known is not None and len(known) == len(b.ids)
                      else self._score(metric, x_adv, b.ids, "attacked"))
            q = pair_quality(x_adv, x, lpips=self.cfg.run.lpips, dists=self.cfg.run.dists)
            diff = (x_adv - x).flatten(1)
            for j, i in enumerate(b.ids):
                self.store.save_image("attack", key, i, x_adv[j], fmt)
                rows.append({"image_id": i, "score_adv": scores[j], "linf_attack": float(diff[j].abs().max()),
                             "l2_attack": float(diff[j].norm()),
                             **{f"{k}_attack": float(v[j]) for k, v in q.items()}})
        meta = {"threat_model": attack.threat_model, "adaptive": cell.attack.adaptive, "budget": attack.budget,
                "budget_unit": attack.budget_unit,
                # the EOT draws used: K for a stochastic defense, 1 for a deterministic one, 0 when not adaptive
                "eot_samples": (cell.attack.eot_samples if defense().stochastic else 1)
                if cell.attack.adaptive else 0, "image_format": fmt}
        return {"records": rows, "attack_meta": meta}

    def _defend(self, cell: Cell, metric, defense, images: ImageSource, known: list[dict],
                attack: dict | None = None):
        """``D(x)`` (``attack`` None; ``known``: the clean records) or ``D(x')`` (``attack``: the attack stage's
        stored record, ``known``: its records), scored by the metric and measured against ``x``."""
        run = self.cfg.run
        known_rows = {r["image_id"]: r for r in known}
        tag, what = ("clean", "defended clean") if attack is None else ("adv", "defended attacked")
        shared = self._shared_quality(cell) if attack is None else None   # (x, D(x)) of another metric's stage
        measured: list[dict] = []
        keys = quality_keys(lpips=run.lpips, dists=run.dists)
        rows = []
        dkey = content_key({"dataset": cell.dataset.key(), "defense": cell.defense.key()})
        for b in images.batches(run.batch_size):
            ids = b.ids
            x = b.x.to(self.device)
            inp = x if attack is None else torch.stack(
                [self.store.load_image("attack", cell.keys["attack"], i, attack["attack_meta"]["image_format"])
                 for i in ids]).to(self.device)
            seed = seed_from(run.seed, dkey, ids)
            gen = torch.Generator().manual_seed(seed)
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
            same = torch.equal(out, inp)  # D left its input as it was (identity; smoothing scores noisy copies)
            if not defense.wraps_metric:  # an unchanged image's score is stored already
                scores = ([known_rows[i]["score" if attack is None else "score_adv"] for i in ids] if same
                          else self._score(metric, out, ids, what))
            unchanged = same and not defense.changes_geometry
            if unchanged and attack is None:  # (x, x): known in closed form
                q = identical_quality(len(ids), min(x.shape[-2:]), lpips=run.lpips, dists=run.dists)
            elif unchanged:
                # D(x') = x' (identity; smoothing defenses, which score through the metric): the pair (x, D(x'))
                # is the attack stage's (x, x'), computed by the same code on the same batch: reuse it (an attack
                # stage stored before a column of pair_quality existed lacks it: then the pair is measured again)
                stored = all(f"{k}_attack" in known_rows[ids[0]] for k in keys)
                q = (stored_quality(known_rows, ids, keys, "_attack") if stored
                     else pair_quality(out, x, lpips=run.lpips, dists=run.dists))
            elif shared is not None:
                q = stored_quality(shared, ids, keys, "_def_clean")
            else:
                q = pair_quality(resize_to(out, x), x, lpips=run.lpips, dists=run.dists)
            q_aligned = q  # against A(x), the clean image in the output's geometry (docs/measures.md#defense)
            if defense.changes_geometry and shared is not None:
                q_aligned = stored_quality(shared, ids, keys, "_def_clean_aligned")
            elif defense.changes_geometry:  # align draws what forward drew, from a generator in the same state
                ref = defense.align(x, generator=torch.Generator().manual_seed(seed)).clamp(0, 1)
                q_aligned = pair_quality(out, resize_to(ref, out), lpips=run.lpips, dists=run.dists)
            for j, i in enumerate(ids):
                quality = {**{f"{k}_def_{tag}": float(v[j]) for k, v in q.items()},
                           **{f"{k}_def_{tag}_aligned": float(v[j]) for k, v in q_aligned.items()}}
                measured.append({"image_id": i, **quality})
                rows.append({"image_id": i, ("score_def" if attack is None else "score_adv_def"): scores[j],
                             f"seconds_def_{tag}": seconds, **quality,
                             **{f"{k}_{tag}": v for k, v in certs[j].items() if k != "smoothed"}})
        if attack is None and shared is None:
            self.store.save("def_quality", cell.keys["def_quality"], {"records": measured, **cell.labels()})
        meta = {"stochastic": bool(defense.stochastic), "differentiable": bool(defense.differentiable),
                "certified": bool(defense.wraps_metric and not defense.replaces_metric),
                "baseline": bool(defense.baseline),
                "changes_geometry": bool(defense.changes_geometry)}
        return {"records": rows, "defense_meta": meta}

    def _shared_quality(self, cell: Cell) -> dict[str, dict] | None:
        """The stored quality of (x, D(x)) of this dataset and defense, by image id, or None."""
        key = cell.keys["def_quality"]
        if not self.store.has("def_quality", key):
            return None
        return {r["image_id"]: r for r in self.store.load("def_quality", key)["records"]}
