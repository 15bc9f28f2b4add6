"""The ``attack`` stage, once per (dataset, metric, attack), or per defense too for an adaptive attack.

It stores x' per image (8-bit PNG by default: the attack's own call quantises it, keeping its budget,
:meth:`benchmark.attacks.base.Attack.__call__`), the metric's scores s' (the attack's last forward pass when it
scored exactly x' through the bare metric, else a fresh pass) and the quality of (x, x'). An adaptive attack
attacks ``metric ∘ defense`` (:class:`~benchmark.attacks.adaptive.DefendedMetric`, EOT over a stochastic
defense); an attack that is fitted first (UAP) loads what its ``fit`` stage trained (:mod:`benchmark.stages.fit`).
"""
from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm

from ..attacks.adaptive import DefendedMetric
from ..quality import pair_quality
from ..seeds import seed_from
from .base import Stage, StageKind
from .fit import fit_attack


def run(ctx, stage: Stage) -> dict[str, Any]:
    cell, run_cfg = stage.cell, ctx.cfg.run
    metric, images = ctx.metric(cell.metric), ctx.images(cell.dataset)
    attack = cell.attack.build()
    fmt, key = run_cfg.attacked_images, stage.key
    gen = torch.Generator().manual_seed(seed_from(run_cfg.seed, key))
    if attack.needs_fit:  # the fit stage trained it: load it (or train it here, on another node)
        fit_attack(ctx, cell, attack, metric)
    target = metric
    if cell.attack.adaptive:
        target = DefendedMetric(metric, ctx.defense(cell.defense), cell.attack.eot_samples,
                                generator=torch.Generator().manual_seed(seed_from(key, "eot")))
    rows = []
    for b in tqdm(images.batches(run_cfg.batch_size), total=len(images.plan(run_cfg.batch_size)),
                  desc=f"attack {cell.attack.label}", leave=False, disable=not ctx.progress):
        x = b.x.to(ctx.device)
        x_adv = attack(target, x, generator=gen, output_8bit=fmt == "png")
        # the attack's final forward pass may have scored x' already (non-adaptive: through f itself); reuse it
        known = attack.last_scores if target is metric else None
        scores = (ctx.check_finite(known, b.ids, "attacked") if known is not None and len(known) == len(b.ids)
                  else ctx.score(metric, x_adv, b.ids, "attacked"))
        q = pair_quality(x_adv, x, lpips=run_cfg.lpips, dists=run_cfg.dists)
        diff = (x_adv - x).flatten(1)
        for j, i in enumerate(b.ids):
            ctx.store.save_image("attack", key, i, x_adv[j], fmt)
            rows.append({"image_id": i, "score_adv": scores[j], "linf_attack": float(diff[j].abs().max()),
                         "l2_attack": float(diff[j].norm()),
                         **{f"{k}_attack": float(v[j]) for k, v in q.items()}})
    meta = {"threat_model": attack.threat_model, "adaptive": cell.attack.adaptive, "budget": attack.budget,
            "budget_unit": attack.budget_unit,
            # the EOT draws used: K for a stochastic defense, 1 for a deterministic one, 0 when not adaptive
            "eot_samples": (cell.attack.eot_samples if ctx.defense(cell.defense).stochastic else 1)
            if cell.attack.adaptive else 0, "image_format": fmt}
    return {"records": rows, "attack_meta": meta}


KIND = StageKind("attack", deps=("fit",), uses_metric=True, run=run, doc="x' per image, s', quality of (x, x')")
