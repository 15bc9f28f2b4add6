"""The runner: plans the matrix into cached stages and executes them in-process (the ``local`` executor).

Stages (formulas.md notation), each stored under a content key of everything that determines it:

- ``clean``      once per (dataset, metric):            s, m
- ``attack``     once per (dataset, metric, attack):    x', s', imperceptibility of (x, x')
- ``def_clean``  once per (dataset, metric, defense):   s_D, quality of (x, D(x)), defense time
- ``def_adv``    once per (dataset, metric, attack, defense): s'_D, quality of (x, D(x')), time

``D(x)`` and ``D(x')`` use the same generator seed (derived from the dataset, defense and batch), so a
randomised defense is compared like for like. A failing stage is recorded with its error and the
cells that need it are skipped; everything else goes on.
"""
from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .attacks.adaptive import DefendedMetric
from .config import MatrixConfig, PluginSpec
from .errors import DataError, MissingWeightsError, NonFiniteScoreError
from .images import apply_size_policy, resize_to, to_tensor
from .manifest import write_manifest
from .quality import pair_quality
from .store import RunStore, atomic_write_json, content_key, seed_from

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


def batches(items: list, batch_size: int) -> list[list]:
    """Consecutive runs of same-sized images, at most ``batch_size`` long."""
    out: list[list] = []
    for it in items:
        if out and len(out[-1]) < batch_size and out[-1][0][1].shape == it[1].shape:
            out[-1].append(it)
        else:
            out.append([it])
    return out


class StageFailed(Exception):
    pass


class Runner:
    def __init__(self, cfg: MatrixConfig, run_dir: Path, *, progress: bool = True):
        self.cfg, self.store, self.progress = cfg, RunStore(run_dir), progress
        self.device = torch.device(cfg.run.device)
        self.failed: dict[str, str] = {}   # stage key -> error message
        self.skipped: list[dict[str, str]] = []

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
        record = {**record, "stage_seconds": time.perf_counter() - t0, **cell.labels()}
        self.store.save(kind, key, record, tensors)
        return record

    def _load_images(self, spec: PluginSpec) -> list[tuple[str, torch.Tensor, float | None]]:
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
    def run(self) -> int:
        """Run (or resume) the matrix; returns the number of failed cells."""
        cells = plan(self.cfg)
        write_manifest(self.store.root, self.cfg)
        atomic_write_json(self.store.root / "cells.json", [{**c.labels(), "keys": c.keys} for c in cells])
        n_failed = 0
        with logging_redirect_tqdm():
            bar = tqdm(total=len(cells), desc="matrix", unit="cell", disable=not self.progress)
            for ds in self.cfg.datasets:
                ds_cells = [c for c in cells if c.dataset is ds]
                try:
                    images = self._load_images(ds)
                except Exception as exc:
                    n_failed += self._fail_cells(ds_cells, "dataset", exc, bar)
                    continue
                for m in self.cfg.metrics:
                    m_cells = [c for c in ds_cells if c.metric is m]
                    if all(self._cell_done(c) for c in m_cells):
                        bar.update(len(m_cells))
                        continue
                    try:
                        metric = self._build_metric(m)
                    except MissingWeightsError as exc:
                        if m.optional:
                            log.warning("metric %s skipped (optional): %s", m.label, exc)
                            self.skipped.append({"what": f"metric {m.label}", "reason": str(exc)})
                            bar.update(len(m_cells))
                            continue
                        n_failed += self._fail_cells(m_cells, "metric", exc, bar)
                        continue
                    except Exception as exc:
                        n_failed += self._fail_cells(m_cells, "metric", exc, bar)
                        continue
                    for cell in m_cells:
                        ok = self._run_cell(cell, metric, images)
                        n_failed += 0 if ok else 1
                        bar.update(1)
            bar.close()
        atomic_write_json(self.store.root / "skipped.json", self.skipped)
        return n_failed

    def _cell_done(self, c: Cell) -> bool:
        return all(self.store.has(k, c.keys[k]) for k in ("clean", "attack", "def_clean", "def_adv"))

    def _fail_cells(self, cells: list[Cell], what: str, exc: Exception, bar) -> int:
        msg = f"{type(exc).__name__}: {exc}"
        log.error("%s failed for %d cell(s): %s", what, len(cells), msg)
        for c in cells:
            self.store.save_error(c.keys["def_adv"], {"stage": what, **c.labels(), "error": msg})
        bar.update(len(cells))
        return len(cells)

    def _build_metric(self, spec: PluginSpec):
        metric = spec.build().to(self.device).eval()
        for p in metric.parameters():
            p.requires_grad_(False)
        return metric

    def _run_cell(self, cell: Cell, metric, images) -> bool:
        clean = self._stage("clean", cell.keys["clean"], cell, lambda: self._clean(metric, images))
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
                                              adv=self.store.load_tensors("attack", cell.keys["attack"])))
        return da is not None

    # -- stages -------------------------------------------------------------------------------
    def _clean(self, metric, images):
        rows = []
        for b in batches(images, self.cfg.run.batch_size):
            ids = [i for i, _, _ in b]
            scores = self._score(metric, torch.stack([x for _, x, _ in b]), ids, "clean")
            rows += [{"image_id": i, "score": s, "mos": m} for (i, _, m), s in zip(b, scores)]
        return {"records": rows, "metric_meta": metric.metadata()}, None

    def _attack(self, cell: Cell, metric, images, defense: Callable):
        attack = cell.attack.build()
        gen = torch.Generator().manual_seed(seed_from(self.cfg.run.seed, cell.keys["attack"]))
        if getattr(attack, "needs_fit", False):
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
            x_adv = attack(target, x, generator=gen).detach()
            scores = self._score(metric, x_adv, ids, "attacked")
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

    def _defend(self, cell: Cell, metric, defense, images, adv: dict[str, torch.Tensor] | None):
        rows = []
        dkey = content_key({"dataset": cell.dataset.key(), "defense": cell.defense.key()})
        for b in batches(images, self.cfg.run.batch_size):
            ids = [i for i, _, _ in b]
            x = torch.stack([x for _, x, _ in b]).to(self.device)
            inp = x if adv is None else torch.stack([adv[i] for i in ids]).to(self.device)
            gen = torch.Generator().manual_seed(seed_from(self.cfg.run.seed, dkey, ids))
            tag = "clean" if adv is None else "adv"
            what = "defended " + ("clean" if adv is None else "attacked")
            t0 = time.perf_counter()
            certs: list[dict] = [{} for _ in ids]
            if getattr(defense, "wraps_metric", False):
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
            q = pair_quality(resize_to(out, x), x, lpips=self.cfg.run.lpips, dists=self.cfg.run.dists)
            for j, i in enumerate(ids):
                rows.append({"image_id": i, ("score_def" if adv is None else "score_adv_def"): scores[j],
                             f"seconds_def_{tag}": seconds, **{f"{k}_def_{tag}": float(v[j]) for k, v in q.items()},
                             **{f"{k}_{tag}": v for k, v in certs[j].items() if k != "smoothed"}})
        meta = {"stochastic": bool(defense.stochastic), "differentiable": bool(defense.differentiable),
                "certified": bool(getattr(defense, "wraps_metric", False))}
        return {"records": rows, "defense_meta": meta}, None
