"""The defended stages: ``def_clean`` (s_D, once per (dataset, metric, defense)) and ``def_adv`` (D(x'), s'_D and
the quality of (x, D(x')), once per cell).

``def_clean`` scores the D(x) its ``def_quality`` stage stored (or purifies again with the same seed when nothing
was stored: a matrix of one metric) and copies that stage's quality of (x, D(x)). A defense that scores through
the metric (``wraps_metric``: smoothing, a fine-tuned metric) has no ``def_quality`` stage: both stages call its
``score`` and store its certificates; it does not change the image, so its pairs' quality is the closed form of
(x, x) and the attack stage's (x, x'). A defense that leaves its input unchanged (identity) is not scored again.
"""
from __future__ import annotations

import time
from typing import Any

import torch

from ..images import resize_to
from ..quality import identical_quality, pair_quality, quality_keys
from .base import Stage, StageKind
from .purify import aligned_quality, defense_seed


def stored_quality(rows: dict[str, dict], ids: list[str], keys: tuple[str, ...], suffix: str) -> dict[str, torch.Tensor]:
    """The stored quality columns ``<name><suffix>`` of images ``ids`` (``rows`` by image id), in the form
    :func:`~benchmark.quality.pair_quality` returns them."""
    return {k: torch.tensor([rows[i][f"{k}{suffix}"] for i in ids], dtype=torch.float64) for k in keys}


def defense_meta(defense) -> dict[str, bool]:
    return {"stochastic": bool(defense.stochastic), "differentiable": bool(defense.differentiable),
            "certified": bool(defense.wraps_metric and not defense.replaces_metric),
            "baseline": bool(defense.baseline), "changes_geometry": bool(defense.changes_geometry)}


def _row(i: str, score_col: str, score: float, tag: str, seconds: float, q: dict, q_aligned: dict, j: int,
         cert: dict) -> dict[str, Any]:
    return {"image_id": i, score_col: score, f"seconds_def_{tag}": seconds,
            **{f"{k}_def_{tag}": float(v[j]) for k, v in q.items()},
            **{f"{k}_def_{tag}_aligned": float(v[j]) for k, v in q_aligned.items()},
            **{f"{k}_{tag}": v for k, v in cert.items() if k != "smoothed"}}


def run_clean(ctx, stage: Stage) -> dict[str, Any]:
    cell, run_cfg = stage.cell, ctx.cfg.run
    metric, defense, images = ctx.metric(cell.metric), ctx.defense(cell.defense), ctx.images(cell.dataset)
    clean = {r["image_id"]: r for r in ctx.load("clean", stage.deps["clean"])["records"]}
    shared = ({r["image_id"]: r for r in ctx.load("def_quality", stage.deps["def_quality"])["records"]}
              if "def_quality" in stage.deps else None)
    keys = quality_keys(lpips=run_cfg.lpips, dists=run_cfg.dists)
    rows = []
    for b in images.batches(run_cfg.batch_size):
        ids, x = b.ids, b.x.to(ctx.device)
        certs: list[dict] = [{} for _ in ids]
        if shared is None:  # wraps_metric: scores noisy copies (or a fine-tuned metric) through the metric
            t0 = time.perf_counter()
            scores_t, certs = defense.score(metric, x, generator=torch.Generator().manual_seed(
                defense_seed(ctx, cell, ids)))
            seconds = (time.perf_counter() - t0) / len(ids)
            scores = ctx.check_finite(scores_t, ids, "defended clean")
            q = identical_quality(len(ids), min(x.shape[-2:]), lpips=run_cfg.lpips, dists=run_cfg.dists)
            q_aligned = q
        else:
            seconds = shared[ids[0]]["seconds_def_clean"]
            q = stored_quality(shared, ids, keys, "_def_clean")
            q_aligned = stored_quality(shared, ids, keys, "_def_clean_aligned")
            fmt = shared[ids[0]]["format"]
            if shared[ids[0]]["same"]:   # D(x) = x: the clean scores
                scores = [clean[i]["score"] for i in ids]
            else:
                out = ctx.purified(stage.deps["def_quality"], ids, fmt)
                if out is None:   # neither stored nor kept here: purify again, with the same seed
                    with torch.no_grad():
                        out = defense(x, generator=torch.Generator().manual_seed(defense_seed(ctx, cell, ids)))
                    out = out.clamp(0, 1)
                scores = ctx.score(metric, out, ids, "defended clean")
        rows += [_row(i, "score_def", scores[j], "clean", seconds, q, q_aligned, j, certs[j])
                 for j, i in enumerate(ids)]
    return {"records": rows, "defense_meta": defense_meta(defense)}


def run_adv(ctx, stage: Stage) -> dict[str, Any]:
    cell, run_cfg = stage.cell, ctx.cfg.run
    metric, defense, images = ctx.metric(cell.metric), ctx.defense(cell.defense), ctx.images(cell.dataset)
    attack = ctx.load("attack", stage.deps["attack"])
    known = {r["image_id"]: r for r in attack["records"]}
    fmt = attack["attack_meta"]["image_format"]
    keys = quality_keys(lpips=run_cfg.lpips, dists=run_cfg.dists)
    rows = []
    for b in images.batches(run_cfg.batch_size):
        ids, x = b.ids, b.x.to(ctx.device)
        inp = ctx.attacked(stage.deps["attack"], ids, fmt)
        seed = defense_seed(ctx, cell, ids)
        gen = torch.Generator().manual_seed(seed)
        t0 = time.perf_counter()
        certs: list[dict] = [{} for _ in ids]
        if defense.wraps_metric:  # scores through the metric itself and returns certificates; the image stays x'
            scores_t, certs = defense.score(metric, inp, generator=gen)
            out = inp
            scores = ctx.check_finite(scores_t, ids, "defended attacked")
            seconds = (time.perf_counter() - t0) / len(ids)
        else:
            with torch.no_grad():
                out = defense(inp, generator=gen).clamp(0, 1)
            seconds = (time.perf_counter() - t0) / len(ids)
        same = torch.equal(out, inp)
        if not defense.wraps_metric:  # an unchanged image's score is stored already
            scores = ([known[i]["score_adv"] for i in ids] if same
                      else ctx.score(metric, out, ids, "defended attacked"))
        if same and not defense.changes_geometry:
            # D(x') = x': the pair (x, D(x')) is the attack stage's (x, x'), computed by the same code on the same
            # batch (an attack stage stored before a column of pair_quality existed lacks it: measured again)
            stored = all(f"{k}_attack" in known[ids[0]] for k in keys)
            q = (stored_quality(known, ids, keys, "_attack") if stored
                 else pair_quality(out, x, lpips=run_cfg.lpips, dists=run_cfg.dists))
        else:
            q = pair_quality(resize_to(out, x), x, lpips=run_cfg.lpips, dists=run_cfg.dists)
        q_aligned = aligned_quality(defense, out, x, seed, q, run_cfg)
        rows += [_row(i, "score_adv_def", scores[j], "adv", seconds, q, q_aligned, j, certs[j])
                 for j, i in enumerate(ids)]
    return {"records": rows, "defense_meta": defense_meta(defense)}


CLEAN = StageKind("def_clean", deps=("clean", "def_quality"), uses_metric=True, run=run_clean,
                  doc="s_D: the metric's scores of D(x)")
# def_adv reads no def_quality record, but waits for it: a defense that cannot purify fails once, there
ADV = StageKind("def_adv", deps=("attack", "def_quality"), uses_metric=True, run=run_adv,
                doc="D(x'), s'_D and the quality of (x, D(x'))")
