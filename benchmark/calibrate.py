"""Budget calibration: per (metric, attack), the strength that hits each L∞ budget category.

Attacks are compared at equal perturbation budget, not equal hyper-parameters (formulas.md §1). The
Guardians benchmark calibrates every attack to L∞ = 2, 4, 8, 16 /255. For each attack of a matrix this
finds, by bisection on a log scale of the attack's ``strength_param`` (``eps`` for most attacks,
``amplitude`` for UAP, the RMSE radius for MADC), the value whose mean measured L∞ over a sample of the
first dataset's images is within ``tol`` of each target, and stores it as JSON plus a ready-to-use TOML
fragment of ``[[attacks]]`` tables.

    python -m benchmark calibrate matrix.toml --targets 2/255 4/255 8/255 16/255 -o calibration.json
"""
from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import torch

from .config import MatrixConfig
from .config_values import jsonable
from .images import quantize_8bit
from .seeds import seed_from
from .store import atomic_write_json, atomic_write_text, content_key

log = logging.getLogger(__name__)


def measured_linf(attack_cls, params: dict, metric, x: torch.Tensor, seed: int, fit_dir: Path,
                  quantize: bool = False) -> float:
    """Mean L∞ of the attack's output over ``x``; with ``quantize``, of that output on the 8-bit grid, as a run
    that stores attacked images as PNG measures it (``run.attacked_images``; :mod:`benchmark.attacked`)."""
    attack = attack_cls(**params)
    attack.output_8bit = quantize
    if attack.needs_fit:
        key = content_key({"fit": attack.fit_params(), "seed": seed})
        attack.fit(metric, generator=torch.Generator().manual_seed(seed), artifact=fit_dir / f"{key}.pt",
                   provenance={}, progress=False)
    x_adv = attack(metric, x, generator=torch.Generator().manual_seed(seed))
    if quantize:
        x_adv = quantize_8bit(x_adv, x, attack.budget if attack.threat_model == "linf" else None)
    return float((x_adv - x).flatten(1).abs().amax(1).mean())


def calibrate_one(attack_cls, params: dict, metric, x: torch.Tensor, target: float, *, seed: int, fit_dir: Path,
                  tol: float = 0.02, iters: int = 12, quantize: bool = False) -> dict:
    """Bisection (log scale) of the strength parameter until mean L∞ is within ``tol`` (relative) of target."""
    name = attack_cls.strength_param
    v0 = float(params.get(name, target))
    m0 = measured_linf(attack_cls, {**params, name: v0}, metric, x, seed, fit_dir, quantize)
    guess = v0 * target / m0 if m0 > 0 else v0  # L∞ grows about linearly with the strength
    lo, hi = guess / 8, guess * 8
    best = (v0, m0)
    for i in range(iters):
        mid = guess if i == 0 else math.sqrt(lo * hi)
        m = measured_linf(attack_cls, {**params, name: mid}, metric, x, seed, fit_dir, quantize)
        if abs(m - target) < abs(best[1] - target):
            best = (mid, m)
        if abs(m - target) <= tol * target:
            break
        lo, hi = (mid, hi) if m < target else (lo, mid)
    return {"param": name, "value": best[0], "measured_linf": best[1], "target": target,
            "within_tol": abs(best[1] - target) <= tol * target}


def calibrate(cfg: MatrixConfig, targets: list[float], n_images: int = 8, tol: float = 0.02) -> list[dict]:
    from .runner import Runner

    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(replace(cfg, datasets=cfg.datasets[:1]), Path(tmp), progress=False)
        # the first n images of the first dataset, as far as they share one size (one batch)
        x = next(runner.open_images(cfg.datasets[0]).head(n_images).batches(n_images)).x.to(runner.device)
        out = []
        for m in cfg.metrics:
            metric = runner.build_metric(m)
            for a in cfg.attacks:
                if a.cls.needs_gradient and not metric.differentiable:
                    log.warning("%s / %s: skipped, a gradient attack on a non-differentiable metric", m.label, a.label)
                    continue
                params = dict(a.params)
                for t in targets:
                    res = calibrate_one(a.cls, params, metric, x, t, seed=seed_from(cfg.run.seed, a.label),
                                        fit_dir=Path(tmp), tol=tol, quantize=cfg.run.attacked_images == "png")
                    res.update({"metric": m.label, "attack": a.label, "attack_name": a.name,
                                "params": jsonable(params), "n_images": len(x)})
                    log.info("%s / %s: %s = %.5g gives L∞ %.5f (target %.5f)", m.label, a.label, res["param"],
                             res["value"], res["measured_linf"], t)
                    out.append(res)
    return out


def to_toml(results: list[dict]) -> str:
    lines = ["# Attacks calibrated to L∞ budgets by `python -m benchmark calibrate` (one table per metric/attack)."]
    seen = {}
    for r in results:
        seen.setdefault((r["metric"], r["attack"]), []).append(r)
    for (metric, attack), rs in seen.items():
        shown = ", ".join(str(Fraction(r["target"]).limit_denominator(1020)) for r in rs)
        lines += ["", f"# metric {metric}; targets {shown}",
                  "[[attacks]]", f'name = "{rs[0]["attack_name"]}"']
        for k, v in rs[0]["params"].items():
            if k != rs[0]["param"]:
                lines.append(f"{k} = {v!r}".replace("'", '"').replace("True", "true").replace("False", "false"))
        values = ", ".join(f"{r['value']:.6g}" for r in rs)
        lines.append(f"{rs[0]['param']} = [{values}]")
    return "\n".join(lines) + "\n"


def write_calibration(results: list[dict], out: Path) -> Path:
    atomic_write_json(out, results)
    toml = out.with_suffix(".toml")
    atomic_write_text(toml, to_toml(results))
    return toml
