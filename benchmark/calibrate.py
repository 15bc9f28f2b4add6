"""Budget calibration: per (metric, attack), the strength that hits each budget category.

Attacks are compared at equal perturbation budget, not equal hyper-parameters (docs/measures.md). The
Guardians benchmark calibrates gradient attacks to L∞ = 2, 4, 8, 16 /255 and its L0, patch and colour
attacks by PSNR buckets. For each attack of a matrix this finds, by bisection on a log scale of the attack's
``strength_param`` (``eps`` for most attacks, ``amplitude`` for UAP, the RMSE radius for MADC, ``lr`` where
the reference code varies the step size), the value whose mean measure over a sample of the first dataset's
images is within ``tol`` (relative) of each target, and stores it as JSON plus a ready-to-use TOML fragment of
``[[attacks]]`` tables. A target names its measure (:func:`parse_target`):

- ``4/255`` or ``linf:4/255``: mean L∞ of ``x' − x``;
- ``40dB`` or ``psnr:40``: mean PSNR of ``x'`` against ``x``, in dB (lower PSNR: a stronger attack);
- ``unit:0.05``: mean of the attack's own budget measure, in its ``budget_unit`` (perceptual distance, flow
  pixels, colour-filter bound, L0 pixels...: :meth:`benchmark.attacks.base.Attack.measured_budget`).

    python -m benchmark calibrate matrix.toml --targets 2/255 4/255 8/255 16/255 -o calibration.json
    python -m benchmark calibrate matrix.toml --targets 45dB 40dB 35dB
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
from .errors import BenchmarkError
from .seeds import seed_from
from .store import atomic_write_json, atomic_write_text, content_key

log = logging.getLogger(__name__)


MEASURES = {"linf": "L∞", "psnr": "PSNR dB", "unit": "budget unit"}


def parse_target(text: str) -> tuple[str, float]:
    """``"4/255"`` → ``("linf", 4/255)``; ``"40dB"`` → ``("psnr", 40.0)``; ``"unit:0.05"`` → ``("unit", 0.05)``;
    ``"linf:…"``/``"psnr:…"`` name the measure explicitly. A bad target is a :class:`BenchmarkError`."""
    t = str(text).strip()
    measure, _, value = t.rpartition(":")
    if not measure and t.lower().endswith("db"):
        measure, value = "psnr", t[:-2]
    measure = measure.lower() or "linf"
    try:
        v = float(Fraction(value.strip()))
    except (ValueError, ZeroDivisionError):
        v = math.nan
    if measure not in MEASURES or not math.isfinite(v) or v <= 0 or (measure == "linf" and v > 1):
        raise BenchmarkError(f"--targets: {text!r} is not a budget target; expected an L∞ such as 4/255 "
                             "(in (0, 1]), a PSNR such as 40dB, or unit:VALUE in the attack's own budget unit")
    return measure, v


def measure_of(attack, x_adv: torch.Tensor, x: torch.Tensor, measure: str = "linf") -> float:
    """Mean over the images of ``measure`` (a key of :data:`MEASURES`) between ``x_adv`` and ``x``."""
    if measure == "linf":
        return float((x_adv - x).flatten(1).abs().amax(1).mean())
    if measure == "psnr":
        from .quality import PSNR_CAP, psnr

        return float(psnr(x_adv, x).clamp(max=PSNR_CAP).mean())
    return float(attack.measured_budget(x_adv, x).float().mean())


def run_attack(attack_cls, params: dict, metric, x: torch.Tensor, seed: int, fit_dir: Path,
               quantize: bool = False):
    """The attack built from ``params`` and its output on ``x`` (on the 8-bit grid within the budget with
    ``quantize``, as a run that stores attacked images as PNG measures it: ``run.attacked_images``;
    :meth:`benchmark.attacks.base.Attack.__call__`)."""
    attack = attack_cls(**params)
    if attack.needs_fit:
        key = content_key({"fit": attack.fit_params(), "seed": seed})
        attack.fit(metric, generator=torch.Generator().manual_seed(seed), artifact=fit_dir / f"{key}.pt",
                   provenance={}, progress=False)
    return attack, attack(metric, x, generator=torch.Generator().manual_seed(seed), output_8bit=quantize)


def measured_linf(attack_cls, params: dict, metric, x: torch.Tensor, seed: int, fit_dir: Path,
                  quantize: bool = False, measure: str = "linf") -> float:
    """Mean ``measure`` (L∞ by default) of the attack's output over ``x`` (:func:`run_attack`)."""
    attack, x_adv = run_attack(attack_cls, params, metric, x, seed, fit_dir, quantize)
    return measure_of(attack, x_adv, x, measure)


def calibrate_one(attack_cls, params: dict, metric, x: torch.Tensor, target: float, *, seed: int, fit_dir: Path,
                  tol: float = 0.02, iters: int = 12, quantize: bool = False, measure: str = "linf") -> dict:
    """Bisection (log scale) of the strength parameter until the mean ``measure`` is within ``tol`` (relative) of
    ``target``. L∞ and budget units grow about linearly with the strength, the MSE behind a PSNR about
    quadratically: the first guess uses that, the bisection does not depend on it."""
    name = attack_cls.strength_param
    # the size of a perturbation, growing with the strength: the measure, or the MSE 10^(−PSNR/10)
    size = (lambda m: 10 ** (-m / 10)) if measure == "psnr" else (lambda m: m)
    power = 2.0 if measure == "psnr" else 1.0

    default = params[name] if name in params else getattr(attack_cls(**params), name, target)
    integer = isinstance(default, int) and not isinstance(default, bool)  # a count (pixels): bisect on integers

    def run(v: float) -> tuple[float, float]:
        attack, x_adv = run_attack(attack_cls, {**params, name: max(1, round(v)) if integer else v}, metric, x,
                                   seed, fit_dir, quantize)
        return measure_of(attack, x_adv, x, measure), measure_of(attack, x_adv, x, "linf")

    v0 = float(default)
    m0, l0 = run(v0)
    s0 = size(m0)
    guess = v0 * (size(target) / s0) ** (1 / power) if s0 > 0 else v0
    lo, hi = guess / 8, guess * 8
    best = (v0, m0, l0)
    for i in range(iters):
        mid = guess if i == 0 else math.sqrt(lo * hi)
        m, linf = run(mid)
        if abs(m - target) < abs(best[1] - target):
            best = (mid, m, linf)
        if abs(m - target) <= tol * target:
            break
        lo, hi = (mid, hi) if size(m) < size(target) else (lo, mid)
    return {"param": name, "value": max(1, round(best[0])) if integer else best[0], "measure": measure,
            "measured": best[1], "measured_linf": best[2], "target": target,
            "within_tol": abs(best[1] - target) <= tol * target}


def calibrate(cfg: MatrixConfig, targets: list, n_images: int = 8, tol: float = 0.02) -> list[dict]:
    """Every (metric, attack, target) of the matrix; a target is an L∞ (a float) or a ``(measure, value)`` pair
    or string (:func:`parse_target`)."""
    from .runner import Runner

    targets = [parse_target(t) if isinstance(t, str) else t if isinstance(t, tuple) else ("linf", float(t))
               for t in targets]

    threads = torch.get_num_threads()
    if cfg.run.threads is not None:   # [run] threads, as a run's stages
        torch.set_num_threads(cfg.run.threads)
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
                unit = a.cls(**params).budget_unit
                for measure, t in targets:
                    res = calibrate_one(a.cls, params, metric, x, t, seed=seed_from(cfg.run.seed, a.label),
                                        fit_dir=Path(tmp), tol=tol, quantize=cfg.run.attacked_images == "png",
                                        measure=measure)
                    res.update({"metric": m.label, "attack": a.label, "attack_name": a.name, "budget_unit": unit,
                                "params": jsonable(params), "n_images": len(x)})
                    log.info("%s / %s: %s = %.5g gives %s %.5g (target %.5g)", m.label, a.label, res["param"],
                             res["value"], unit if measure == "unit" else MEASURES[measure], res["measured"], t)
                    out.append(res)
    torch.set_num_threads(threads)
    return out


def target_text(r: dict) -> str:
    """A result's target as given: ``4/255``, ``40dB``, ``unit:0.05`` (results stored before measures: L∞)."""
    measure = r.get("measure", "linf")
    if measure == "psnr":
        return f"{r['target']:g}dB"
    if measure == "unit":
        return f"{r['target']:g} {r.get('budget_unit', 'unit')}"
    return str(Fraction(r["target"]).limit_denominator(1020))


def to_toml(results: list[dict]) -> str:
    lines = ["# Attacks calibrated to budgets by `python -m benchmark calibrate` (one table per metric/attack)."]
    seen = {}
    for r in results:
        seen.setdefault((r["metric"], r["attack"]), []).append(r)
    for (metric, attack), rs in seen.items():
        shown = ", ".join(target_text(r) for r in rs)
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
