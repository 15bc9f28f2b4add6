"""Train the denoiser of denoised median smoothing (the "Stochastic BIQA" method, docs/measures.md#certified-defenses).

    python -m benchmark.training.denoiser --metric default --sigma 0.12 --epochs 8 --out den.pt
    python -m benchmark.training.denoiser --metric cnniqa --metric-param weights=path/CNNIQA-LIVE ...

Training images: scikit-image's training photographs (the ``synthetic`` dataset's ``split = "train"``)
plus any reference photographs in ``--photos`` folders, each with graded distortions (levels 1, 3, 5 of
the six types) and labelled with its reference score (MS-SSIM/FSIM proxy); never the test photographs.
Inputs (``--inputs``) are noisy copies ``clip01(x + N(0, σ²))`` (``noise``, default), PGD adversarial
examples against the metric at L∞ ``--adv-eps`` (``adversarial``), or half of each (``both``); the
target is the clean image, optionally a random ``--crop`` of it. Loss, over ``--draws`` noisy copies of
each image:

- MSE reconstruction;
- ``rank_weight`` × pairwise ranking loss on the metric's outputs: for every pair of images whose
  reference scores differ, ``softplus(-t · 10 · (f(Den(x̃_i)) - f(Den(x̃_j))) / r)`` with ``t`` the sign
  of the reference order times the metric's direction, so that the metric behind the denoiser keeps the
  rank order of the reference scores;
- ``consistency_weight`` × ``mean((f(Den(x̃¹)) - f(Den(x̃²)))²) / r² · 10⁴`` over two draws of the same
  image (needs ``--draws 2``): the spread of the metric over the noise is what widens the certified
  interval, so this term narrows the certificate (the consistency regularisation of Jeong & Shin,
  NeurIPS 2020, on the score instead of class probabilities).
- ``score_weight`` × ``mean(((f(Den(x̃)) - f(x)) / r)²)``: pulls the denoised score to the clean image's,
  undoing the shift the noise causes (docs/measures.md#certified-defenses).

``--init`` fine-tunes an earlier checkpoint (e.g. one trained with ``--rank-weight 0``, MSE alone).

``--arch fcn`` trains the purification study's FCN filter instead (:mod:`benchmark.defenses.fcn`; its
checkpoint layout ``{'model', 'epoch'}``), as the study did: ``--inputs adversarial --rank-weight 0 --batch 4``
(MSE alone; the study's lr is this default, 1e-3). ``--depth``/``--channels``/``--init`` are DnCNN's only.

The learning rate follows a cosine schedule. A checkpoint with the architecture and this configuration
is written after every epoch; ``--resume`` continues from it.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..config import coerce
from ..datasets.distortions import DISTORTIONS
from ..defenses.denoiser import DnCNN, load_denoiser, save_denoiser
from ..defenses.fcn import FCN, load_fcn, save_fcn
from ..errors import BenchmarkError
from ..registry import METRICS, constructor_params, load_builtin_plugins
from .trainset import labelled_set, training_photos

log = logging.getLogger(__name__)


def ranking_loss(scores: torch.Tensor, targets: torch.Tensor, sign: int, scale: float) -> torch.Tensor:
    """Pairwise logistic ranking loss: the metric's order should follow the targets' order."""
    ds = (scores[:, None] - scores[None, :]) * 10.0 / scale
    dt = torch.sign(targets[:, None] - targets[None, :]) * sign
    mask = dt != 0
    if not mask.any():
        return scores.sum() * 0
    return F.softplus(-dt[mask] * ds[mask]).mean()


def build_metric(name: str, params: list[str]):
    load_builtin_plugins()
    cls = METRICS.get(name)
    types = {p: ann for p, ann, _ in constructor_params(cls)}
    kwargs = {}
    for item in params:
        key, _, value = item.partition("=")
        if key not in types:
            raise SystemExit(f"--metric-param: {name} has no parameter {key!r} (has {sorted(types)})")
        kwargs[key] = coerce(value, types[key], "--metric-param", key, Path.cwd())
    metric = cls(**kwargs).eval()
    for p in metric.parameters():
        p.requires_grad_(False)
    return metric


def make_inputs(x: torch.Tensor, metric, kind: str, sigma: float, adv_eps: float, gen: torch.Generator) -> torch.Tensor:
    # noise drawn on the CPU generator whatever the device, so a run is the same on CPU and GPU
    noisy = (x + sigma * torch.randn(x.shape, generator=gen).to(x.device)).clamp(0, 1)
    if kind == "noise":
        return noisy
    from ..attacks.pgd import PGD

    adv = PGD(eps=adv_eps, steps=5)(metric, x, generator=gen)
    if kind == "adversarial":
        return adv
    half = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device)
    return torch.where(half.view(-1, 1, 1, 1), noisy, adv)


def random_crop(x: torch.Tensor, crop: int | None, gen: torch.Generator) -> torch.Tensor:
    if crop is None or crop >= x.shape[-1]:
        return x
    top, left = (int(v) for v in torch.randint(0, x.shape[-1] - crop + 1, (2,), generator=gen))
    return x[..., top:top + crop, left:left + crop]


def consistency_loss(scores: torch.Tensor, draws: int, scale: float) -> torch.Tensor:
    """Mean squared spread of the metric between noise draws of the same image, in (score range / 100)²."""
    if draws < 2:
        return scores.sum() * 0
    s = scores.view(draws, -1) / scale * 100.0
    return (s - s.mean(dim=0, keepdim=True)).pow(2).mean() * draws / (draws - 1)


def train(metric, *, sigma: float, epochs: int, rank_weight: float, size: int, batch: int, lr: float, seed: int,
          out: Path, config: dict, resume: bool = False, progress: bool = True, inputs: str = "noise",
          adv_eps: float = 4 / 255, photos: list[Path] = (), crop: int | None = None, draws: int = 1,
          consistency_weight: float = 0.0, score_weight: float = 0.0, depth: int = 8, channels: int = 48,
          init: Path | None = None, distortions: tuple[str, ...] = DISTORTIONS, device: str = "cpu",
          arch: str = "dncnn") -> DnCNN | FCN:
    torch.manual_seed(seed)
    # checkpoints first, so that a missing or corrupt one is an error before any work
    model, start = (FCN() if arch == "fcn" else DnCNN(depth=depth, channels=channels)), 0
    if init is not None:  # fine-tune a denoiser trained before (e.g. with MSE alone), its architecture kept
        model, _ = load_denoiser(init, "--init")
        log.info("starting from %s", init)
    if resume and out.is_file():
        model, done = load_fcn(out, "--out") if arch == "fcn" else load_denoiser(out, "--out")
        start = int(done.get("epochs_done", 0))
        log.info("resuming from %s at epoch %d", out, start)
    # labels need MS-SSIM's minimum size: score at 256 pixels, then train at ``size``
    images, targets = labelled_set(training_photos(list(photos)), out.parent, tuple(distortions))
    if size != 256:
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    log.info("%d training images", len(images))
    device = torch.device(device)
    model, metric = model.to(device), metric.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(start, epochs):
        for group in opt.param_groups:  # cosine schedule, restartable from any epoch
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        model.train()
        order = torch.randperm(len(images), generator=gen)
        totals = {"mse": 0.0, "rank": 0.0, "consistency": 0.0, "score": 0.0}
        for i in tqdm(range(0, len(images), batch), desc=f"denoiser epoch {epoch + 1}/{epochs}", leave=False,
                      disable=not progress):
            idx = order[i:i + batch]
            x, y = random_crop(images[idx], crop, gen).to(device), targets[idx].to(device)
            xs = x.repeat(draws, 1, 1, 1)
            den = model(make_inputs(xs, metric, inputs, sigma, adv_eps, gen))
            mse = F.mse_loss(den, xs)
            scores = metric(den) if rank_weight > 0 or consistency_weight > 0 or score_weight > 0 else None
            rank = ranking_loss(scores, y.repeat(draws), metric.sign, metric.score_scale) if rank_weight > 0 \
                else mse * 0
            cons = consistency_loss(scores, draws, metric.score_scale) if consistency_weight > 0 else mse * 0
            if score_weight > 0:
                with torch.no_grad():
                    clean = metric(x).repeat(draws)
                shift = ((scores - clean) / metric.score_scale).pow(2).mean()
            else:
                shift = mse * 0
            loss = mse + rank_weight * rank + consistency_weight * cons + score_weight * shift
            opt.zero_grad()
            loss.backward()
            opt.step()
            for key, val in (("mse", mse), ("rank", rank), ("consistency", cons), ("score", shift)):
                totals[key] += float(val.detach()) * len(idx)
        log.info("epoch %d/%d  " + "  ".join(f"{k} %.5f" for k in totals), epoch + 1, epochs,
                 *(v / len(images) for v in totals.values()))
        model.eval()
        if arch == "fcn":
            save_fcn(model, out, epoch, {**config, "epochs_done": epoch + 1})
        else:
            save_denoiser(model, out, {**config, "epochs_done": epoch + 1})
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--metric", default="default", help="registered metric name")
    ap.add_argument("--metric-param", action="append", default=[], help="KEY=VALUE for the metric (repeatable)")
    ap.add_argument("--sigma", type=float, default=0.12)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--rank-weight", type=float, default=0.02)
    ap.add_argument("--size", type=int, default=128, help="training image size")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--inputs", choices=["noise", "adversarial", "both"], default="noise")
    ap.add_argument("--adv-eps", type=float, default=4 / 255)
    ap.add_argument("--photos", type=Path, action="append", default=[],
                    help="folder of extra reference photographs to distort and train on (repeatable)")
    ap.add_argument("--crop", type=int, default=None, help="random square crop of each training image")
    ap.add_argument("--draws", type=int, default=1, help="noisy copies of each image per step")
    ap.add_argument("--consistency-weight", type=float, default=0.0, help="weight of the score-spread term")
    ap.add_argument("--score-weight", type=float, default=0.0,
                    help="weight of ((f(Den(x̃)) - f(x)) / r)², which undoes the score shift of the noise")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from this denoiser checkpoint (its architecture; --depth/--channels ignored)")
    ap.add_argument("--distortions", default=",".join(DISTORTIONS),
                    help=f"comma-separated distortion types of the training set (of {','.join(DISTORTIONS)})")
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--channels", type=int, default=48)
    ap.add_argument("--arch", choices=["dncnn", "fcn"], default="dncnn",
                    help="dncnn (the default), or the purification study's FCN filter")
    ap.add_argument("--device", default="cpu", help="torch device for training, e.g. cuda")
    args = ap.parse_args(argv)
    args.distortions = [d.strip() for d in args.distortions.split(",") if d.strip()]
    if not args.distortions or set(args.distortions) - set(DISTORTIONS):
        ap.error(f"--distortions: expected some of {','.join(DISTORTIONS)}, got {args.distortions}")
    if args.arch == "fcn" and args.init is not None:
        ap.error("--init: fine-tuning is for --arch dncnn; resume an FCN with --resume")
    if args.draws < 1 or (args.consistency_weight > 0 and args.draws < 2):
        ap.error("--draws must be >= 1, and >= 2 with --consistency-weight")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("pyiqa").setLevel(logging.WARNING)
    # a checkpoint loads with weights_only=True: plain types only
    config = {k: ([str(p) for p in v] if isinstance(v, list) else str(v) if isinstance(v, Path) else v)
              for k, v in vars(args).items()}
    t0 = time.time()
    try:
        metric = build_metric(args.metric, args.metric_param)
        train(metric, sigma=args.sigma, epochs=args.epochs, rank_weight=args.rank_weight, size=args.size,
              batch=args.batch, lr=args.lr, seed=args.seed, out=args.out, config=config, resume=args.resume,
              inputs=args.inputs, adv_eps=args.adv_eps, photos=args.photos, crop=args.crop, draws=args.draws,
              consistency_weight=args.consistency_weight, score_weight=args.score_weight, depth=args.depth,
              channels=args.channels, init=args.init, distortions=tuple(args.distortions), device=args.device,
              arch=args.arch)
    except BenchmarkError as exc:  # missing or corrupt weights (--init, --out, the metric's): one line, exit 2
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log.info("wrote %s (%.0f s)", args.out, time.time() - t0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
