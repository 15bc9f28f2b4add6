"""Fine-tune a metric to resist attacks: adversarial training, or gradient-norm regularisation (NT).

    python -m benchmark.training.robust_metric --metric default --method free_fgsm --eps 4/255 --labels ssim \\
        --out robust.pt
    python -m benchmark.training.robust_metric --metric cnniqa --param weights=path/CNNIQA-LIVE \\
        --dataset live2 --dataset-param root=path/LIVE --method nt --out robust-nt.pt

The metric is named as a ``[[metrics]]`` table names it (``--param KEY=VALUE``, values read as TOML, else as
text) and the training images come from a registered dataset likewise (``--dataset``, ``--dataset-param``;
default ``synthetic``), always its training split (``split = "train"``; a dataset without splits is used
whole, with a warning), at ``--image-size`` (resized as a matrix's ``size_policy = "resize"``). Targets
(``--targets``): ``mos`` (default), the dataset's MOS mapped linearly onto the base metric's scale (least
squares of the base metric's clean scores on MOS over the training images); ``metric``, the base metric's own
clean scores (no MOS needed). The loss is L1 on scores scaled to 0..100 (``100 · s / r``, docs/measures.md),
NT's loss and CNNIQA's; every parameter of the metric is trained, with Adam and a cosine schedule.

Methods (``--method``), after the Guardians trainer (msu-video-group/adversarial-defenses-for-iqa, the
adversarially trained Linearity models) and the NT paper:

- ``fgsm``: each batch is the adversarial examples ``clip01(x + ε · sign ∇)`` plus the clean images;
- ``free_fgsm`` (Guardians' name for FGSM from a uniform random start, Wong, Rice, Kolter, "Fast is better
  than free", ICLR 2020): ``δ ~ U(−ε, ε)``, one step of ``α = 1.25 ε``, projected to the ε-ball;
- ``apgd``: APGD (Croce & Hein, ICML 2020: step ``2ε`` halved at the checkpoints where fewer than 75 % of
  the steps improved or nothing moved, momentum 0.75, the best iterate kept), ``--attack-steps`` steps.

The adversary raises the score (the benchmark's objective ``sign · f / r`` of docs/measures.md; the
Guardians trainer ascends its training loss instead). The adversarial example's label (``--labels``),
clamped into the score range: ``min``, the worst end of the range; ``ssim`` / ``ms_ssim``, the clean label
lowered by ``penalty · (1 − SSIM(x', x)) · r``; ``lpips``, lowered by ``penalty · LPIPS(x', x) · r`` (Guardians:
penalty 1, eps 2 or 4/255). ``ms_ssim`` needs ``--image-size`` of at least 176.

- ``nt`` (Liu, Yang, Li, Ding, Jiang, CVPR 2024, YangiD/DefenseIQA-NT): ``L1 + λ · mean(d²) / 2`` with the
  finite difference ``d = (f(x + h · sign ∇f(x)) − f(x)) / h`` (the gradient's L1 norm), ``λ = 1e-3``,
  ``h = 1e-2`` (their defaults; scores on a 0..100 scale as HyperIQA's). The step runs with the metric in
  eval mode, so that dropout does not enter the finite difference.

A checkpoint is written after every epoch (weights, the base metric's name and parameters, the method and
settings, the optimiser's and the random generators' state); ``--resume`` continues from it and reaches
the same weights as an uninterrupted run. It is the ``weights`` of the ``robust_metric`` defense.
"""
from __future__ import annotations

import argparse
import inspect
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..defenses.robust_metric import base_record, metric_spec, plugin_spec, read_robust, save_robust
from ..errors import BenchmarkError, ConfigError

log = logging.getLogger(__name__)

METHODS = ("free_fgsm", "fgsm", "apgd", "nt")
LABELS = ("min", "ssim", "ms_ssim", "lpips")


def parse_params(items: list[str], flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` items as a TOML table would give them (``3`` an integer, ``"4/255"`` text), else text."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"expected KEY=VALUE, got {item!r}", file=flag)
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
    return out


def dataset_spec(name: str, params: dict[str, Any]):
    """The dataset's spec, on its training split (refusing another split)."""
    from ..registry import DATASETS, load_builtin_plugins

    load_builtin_plugins()
    cls = DATASETS.get(name)
    if "split" in inspect.signature(cls.__init__).parameters:
        if params.get("split", "train") != "train":
            raise ConfigError(f"the trainer uses the training split; got split = {params['split']!r}",
                              file="--dataset-param", key="split")
        params = {**params, "split": "train"}
    else:
        log.warning("dataset %s has no split: every image of it is a training image", name)
    return plugin_spec("datasets", name, params, "--dataset")


def load_images(spec, size: int, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Every readable image of the dataset at ``size``×``size`` (N×3×size×size) and their MOS (None if absent)."""
    from ..source import ImageSource

    source = ImageSource.scan(spec, (size, size), "resize", skipped=[], progress=progress)
    xs, mos = [], []
    for b in source.batches(16):
        xs.append(b.x)
        mos += b.mos
    source.scratch.close()
    have = [m for m in mos if m is not None]
    return torch.cat(xs), (torch.tensor(mos, dtype=torch.float32) if len(have) == len(mos) else None)


@torch.no_grad()
def scores_of(metric, images: torch.Tensor, device: torch.device, batch: int = 16) -> torch.Tensor:
    metric.eval()
    return torch.cat([metric(images[i:i + batch].to(device)).float().cpu() for i in range(0, len(images), batch)])


def training_targets(kind: str, base_scores: torch.Tensor, mos: torch.Tensor | None) -> torch.Tensor:
    """``metric``: the base scores; ``mos``: MOS mapped onto the metric's scale by least squares."""
    if kind == "metric":
        return base_scores.clone()
    if mos is None:
        raise ConfigError("the dataset has no MOS for every image: use --targets metric (the base metric's own "
                          "scores)", file="--targets")
    slope, intercept = np.polyfit(mos.double().numpy(), base_scores.double().numpy(), 1)
    return (mos.double() * slope + intercept).float()


def objective(metric, x: torch.Tensor) -> torch.Tensor:
    """Per-image ``sign · f(x) / r``, the score-raising objective (docs/measures.md)."""
    return metric.sign * metric(x) / metric.score_scale


def input_gradient(metric, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        obj = objective(metric, x)
        (grad,) = torch.autograd.grad(obj.sum(), x)
    return grad, obj.detach()


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)


def uniform_ball(x: torch.Tensor, eps: float, gen: torch.Generator) -> torch.Tensor:
    return (torch.rand(x.shape, generator=gen).to(x.device) * 2 - 1) * eps


def fgsm(metric, x: torch.Tensor, eps: float, gen: torch.Generator, random_start: bool) -> torch.Tensor:
    """FGSM from ``x`` (step ε), or from a uniform start in the ball (step 1.25 ε, Wong et al. 2020)."""
    start = project(x + uniform_ball(x, eps, gen), x, eps) if random_start else x
    grad, _ = input_gradient(metric, start)
    return project(start + (1.25 * eps if random_start else eps) * grad.sign(), x, eps).detach()


def apgd_checkpoints(steps: int) -> set[int]:
    """Croce & Hein's checkpoints ``⌈p_j · steps⌉``: p₀ = 0, p₁ = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    at = {math.ceil(round(q * steps, 9)) for q in p[1:]}  # rounded first: 0.22 · 100 is 22.000000000000004
    return {k for k in at if 0 < k < steps}


def apgd(metric, x: torch.Tensor, eps: float, steps: int, gen: torch.Generator, rho: float = 0.75,
         momentum: float = 0.75) -> torch.Tensor:
    """APGD (Croce & Hein, ICML 2020) on the score objective, L∞: the best iterate of ``steps`` steps."""
    checkpoints = apgd_checkpoints(steps)
    view = (-1, 1, 1, 1)
    x_k = project(x + uniform_ball(x, eps, gen), x, eps)
    g_k, f_k = input_gradient(metric, x_k)
    best, f_best, g_best = x_k.clone(), f_k.clone(), g_k.clone()
    eta = torch.full((len(x),), 2 * eps, device=x.device)
    eta_ck, f_best_ck = eta.clone(), f_best.clone()
    x_prev, success, last = x_k, torch.zeros(len(x), device=x.device), 0
    for k in range(steps):
        z = project(x_k + eta.view(view) * g_k.sign(), x, eps)
        x_new = z if k == 0 else project(x_k + momentum * (z - x_k) + (1 - momentum) * (x_k - x_prev), x, eps)
        g_new, f_new = input_gradient(metric, x_new)
        success += (f_new > f_k).float()
        up = f_new > f_best
        best[up], f_best[up], g_best[up] = x_new[up], f_new[up], g_new[up]
        x_prev, x_k, f_k, g_k = x_k, x_new, f_new, g_new
        if k + 1 in checkpoints:
            reduce = (success < rho * (k + 1 - last)) | ((eta == eta_ck) & (f_best == f_best_ck))
            eta_ck, f_best_ck = eta.clone(), f_best.clone()
            eta[reduce] /= 2
            x_k, g_k = x_k.clone(), g_k.clone()
            x_k[reduce], g_k[reduce], f_k[reduce] = best[reduce], g_best[reduce], f_best[reduce]
            success.zero_()
            last = k + 1
    return best.detach()


def adversarial_labels(kind: str, y: torch.Tensor, x_adv: torch.Tensor, x: torch.Tensor, metric,
                       penalty: float) -> torch.Tensor:
    """The Guardians trainer's label of an adversarial example, clamped into the score range."""
    lo, hi = sorted(float(v) for v in metric.score_range)
    if kind == "min":
        return torch.full_like(y, lo if metric.sign > 0 else hi)
    if kind == "lpips":
        from ..perceptual import lpips_distance

        d = lpips_distance(x_adv, x).to(y)
    else:
        from ..quality import ms_ssim, ssim

        d = 1 - (ssim if kind == "ssim" else ms_ssim)(x_adv, x).to(y)
    return (y - metric.sign * penalty * d * metric.score_scale).clamp(lo, hi)


def nt_loss(metric, x: torch.Tensor, y: torch.Tensor, k: float, weight: float, h: float
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """NT's loss: L1 on the 0..100 scale, and its regulariser ``mean(((f(x + h·sign ∇f) − f(x)) / h)²) / 2``."""
    x = x.detach().requires_grad_(True)
    pred = metric(x) * k
    fit = F.l1_loss(pred, y * k)
    (dx,) = torch.autograd.grad(pred.sum(), x, retain_graph=True)
    d = (metric(x.detach() + h * dx.sign()) * k - pred) / h
    reg = d.pow(2).mean() / 2
    return fit + weight * reg, reg.detach()


def train_step(metric, x: torch.Tensor, y: torch.Tensor, s: dict[str, Any], gen: torch.Generator
               ) -> tuple[torch.Tensor, float]:
    """One batch's loss (and the regulariser or the mean adversarial label shift, for the log)."""
    k = 100.0 / metric.score_scale
    if s["method"] == "nt":
        metric.eval()
        loss, reg = nt_loss(metric, x, y, k, s["nt_weight"], s["nt_h"])
        return loss, float(reg)
    metric.eval()  # the adversary sees the model as it will be used
    if s["method"] == "apgd":
        x_adv = apgd(metric, x, s["eps"], s["attack_steps"], gen)
    else:
        x_adv = fgsm(metric, x, s["eps"], gen, random_start=s["method"] == "free_fgsm")
    y_adv = adversarial_labels(s["labels"], y, x_adv, x, metric, s["penalty"])
    metric.train()
    pred = metric(torch.cat([x_adv, x]))
    return F.l1_loss(pred * k, torch.cat([y_adv, y]) * k), float((y - y_adv).abs().mean())


def train(metric, spec, images: torch.Tensor, targets: torch.Tensor, *, settings: dict[str, Any], out: Path,
          epochs: int, batch: int, lr: float, seed: int, resume: bool = False, progress: bool = True,
          device: str = "cpu"):
    """Fine-tune ``metric`` (built from ``spec``) on ``images`` towards ``targets``; a checkpoint per epoch."""
    if not metric.differentiable or not any(True for _ in metric.parameters()):
        raise ConfigError(f"metric {spec.label} is not a differentiable model with parameters: nothing to fine-tune",
                          file="--metric")
    device = torch.device(device)
    torch.manual_seed(seed)
    metric = metric.to(device)
    for p in metric.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(metric.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    start, history = 0, []
    if resume and out.is_file():
        ck = read_robust(out, "--out")
        if ck["base"]["key"] != spec.key_text() or ck.get("method") != settings["method"]:
            raise ConfigError(f"{out} was trained from {ck['base'].get('label')} with {ck.get('method')}, not "
                              f"{spec.label} with {settings['method']}; choose another --out", file="--resume")
        metric.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        gen.set_state(ck["rng"]["generator"])
        torch.set_rng_state(ck["rng"]["torch"])
        start, history = int(ck["epochs_done"]), list(ck.get("history", []))
        log.info("resuming from %s at epoch %d", out, start)
    for epoch in range(start, epochs):
        for group in opt.param_groups:  # cosine schedule, restartable from any epoch
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        order = torch.randperm(len(images), generator=gen)
        total, extra = 0.0, 0.0
        bar = tqdm(range(0, len(images), batch), desc=f"{settings['method']} epoch {epoch + 1}/{epochs}",
                   leave=False, disable=not progress)
        for i in bar:
            idx = order[i:i + batch]
            loss, aux = train_step(metric, images[idx].to(device), targets[idx].to(device), settings, gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            extra += aux * len(idx)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        history.append({"epoch": epoch + 1, "loss": total / len(images),
                        ("nt_reg" if settings["method"] == "nt" else "label_shift"): extra / len(images)})
        log.info("epoch %d/%d  loss %.4f", epoch + 1, epochs, history[-1]["loss"])
        metric.eval()
        save_robust(out, metric, {"base": base_record(spec), "method": settings["method"], "settings": settings,
                                  "epochs_done": epoch + 1, "history": history,
                                  "optimizer": opt.state_dict(),
                                  "rng": {"generator": gen.get_state(), "torch": torch.get_rng_state()}})
    for p in metric.parameters():
        p.requires_grad_(False)
    return metric.eval()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--metric", default="default", help="registered metric name")
    ap.add_argument("--param", action="append", default=[], help="KEY=VALUE for the metric (repeatable)")
    ap.add_argument("--dataset", default="synthetic", help="registered dataset name (its training split)")
    ap.add_argument("--dataset-param", action="append", default=[], help="KEY=VALUE for the dataset (repeatable)")
    ap.add_argument("--method", choices=METHODS, default="free_fgsm")
    ap.add_argument("--eps", default="4/255", help="L∞ budget of the adversarial examples (a number or a fraction)")
    ap.add_argument("--labels", choices=LABELS, default="ssim", help="label of an adversarial example")
    ap.add_argument("--penalty", type=float, default=1.0, help="scale of the perceptual label shift")
    ap.add_argument("--attack-steps", type=int, default=10, help="APGD steps")
    ap.add_argument("--nt-weight", type=float, default=1e-3, help="NT: weight of the gradient-norm term")
    ap.add_argument("--nt-h", type=float, default=1e-2, help="NT: finite-difference step")
    ap.add_argument("--targets", choices=["mos", "metric"], default="mos",
                    help="mos: MOS mapped onto the metric's scale; metric: the base metric's own scores")
    ap.add_argument("--image-size", type=int, default=128, help="training images are resized to this square")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--device", default="cpu", help="torch device for training, e.g. cuda")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("pyiqa").setLevel(logging.WARNING)
    t0 = time.time()
    try:
        from ..config_values import coerce

        eps = coerce(args.eps, float, "--eps", "--eps", Path.cwd())
        for name, value, lo, hi in (("--eps", eps, 0, 1), ("--penalty", args.penalty, 0, 100),
                                    ("--nt-weight", args.nt_weight, 0, 1e6), ("--nt-h", args.nt_h, 1e-6, 1)):
            if not lo <= value <= hi or (name == "--eps" and value == 0):
                raise ConfigError(f"expected a value within {lo}..{hi}, got {value}", file=name)
        for name, value, lo in (("--epochs", args.epochs, 1), ("--batch", args.batch, 1),
                                ("--attack-steps", args.attack_steps, 1), ("--image-size", args.image_size, 32)):
            if value < lo:
                raise ConfigError(f"expected at least {lo}, got {value}", file=name)
        if args.labels == "ms_ssim" and args.method != "nt" and args.image_size < 176:
            raise ConfigError("MS-SSIM labels need --image-size of at least 176", file="--labels")
        spec = metric_spec(args.metric, parse_params(args.param, "--param"))
        data = dataset_spec(args.dataset, parse_params(args.dataset_param, "--dataset-param"))
        settings = {"method": args.method, "eps": eps, "labels": args.labels, "penalty": args.penalty,
                    "attack_steps": args.attack_steps, "nt_weight": args.nt_weight, "nt_h": args.nt_h,
                    "targets": args.targets, "dataset": data.label, "image_size": args.image_size,
                    "epochs": args.epochs, "batch": args.batch, "lr": args.lr, "seed": args.seed}
        metric = spec.build().to(args.device).eval()
        images, mos = load_images(data, args.image_size)
        targets = training_targets(args.targets, scores_of(metric, images, torch.device(args.device)), mos)
        log.info("%d training images of %s; fine-tuning %s with %s", len(images), data.label, spec.label, args.method)
        train(metric, spec, images, targets, settings=settings, out=args.out, epochs=args.epochs, batch=args.batch,
              lr=args.lr, seed=args.seed, resume=args.resume, device=args.device)
    except BenchmarkError as exc:  # bad arguments, missing or corrupt weights: one line, exit 2
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log.info("wrote %s (%.0f s)", args.out, time.time() - t0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
