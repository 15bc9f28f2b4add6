"""Train the denoiser of denoised median smoothing (the "Stochastic BIQA" method, formulas.md §5).

    python -m benchmark.defenses.train_denoiser --metric default --sigma 0.12 --epochs 8 --out den.pt
    python -m benchmark.defenses.train_denoiser --metric cnniqa --metric-param weights=path/CNNIQA-LIVE ...

Inputs (``--inputs``) are noisy copies ``clip01(x + N(0, σ²))`` (``noise``, default), PGD adversarial
examples against the metric at L∞ ``--adv-eps`` (``adversarial``), or half of each (``both``), of a training split (scikit-image's training
photographs with graded distortions, as the ``synthetic`` dataset's ``split = "train"``, labelled with
its reference score); the target is the clean image. Loss = MSE reconstruction + ``rank_weight`` ×
pairwise ranking loss on the metric's outputs: for every pair of images in a batch whose reference
scores differ, ``softplus(-t · 10 · (f(Den(x̃_i)) - f(Den(x̃_j))) / r)`` with ``t`` the sign of the
reference order times the metric's direction, so that the metric behind the denoiser keeps the rank
order of the reference scores. A checkpoint with the architecture and this configuration is written
after every epoch; ``--resume`` continues from it.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..config import coerce
from ..registry import METRICS, constructor_params, load_builtin_plugins
from .denoiser import DnCNN, save_denoiser

log = logging.getLogger("benchmark.train_denoiser")


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
    noisy = (x + sigma * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    if kind == "noise":
        return noisy
    from ..attacks.pgd import PGD

    adv = PGD(eps=adv_eps, steps=5)(metric, x, generator=gen)
    if kind == "adversarial":
        return adv
    half = torch.rand(x.shape[0], generator=gen) < 0.5
    return torch.where(half.view(-1, 1, 1, 1), noisy, adv)


def train(metric, *, sigma: float, epochs: int, rank_weight: float, size: int, batch: int, lr: float, seed: int,
          out: Path, config: dict, resume: bool = False, progress: bool = True, inputs: str = "noise",
          adv_eps: float = 4 / 255) -> DnCNN:
    from ..datasets.synthetic import TRAIN_PHOTOS, load_photo
    from ..metrics.train_default import build_set

    torch.manual_seed(seed)
    # labels need MS-SSIM's minimum size: score at 256 pixels, then train at ``size``
    images, targets = build_set({n: load_photo(n) for n in TRAIN_PHOTOS}, 256, [1, 3, 5])
    if size != 256:
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    model, opt, start = DnCNN(), None, 0
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    if resume and out.is_file():
        ck = torch.load(out, map_location="cpu", weights_only=True)
        model.load_state_dict(ck["state_dict"])
        start = ck["config"].get("epochs_done", 0)
        log.info("resuming from %s at epoch %d", out, start)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(start, epochs):
        model.train()
        order = torch.randperm(len(images), generator=gen)
        totals = {"mse": 0.0, "rank": 0.0}
        for i in tqdm(range(0, len(images), batch), desc=f"denoiser epoch {epoch + 1}/{epochs}", leave=False,
                      disable=not progress):
            idx = order[i:i + batch]
            x, y = images[idx], targets[idx]
            den = model(make_inputs(x, metric, inputs, sigma, adv_eps, gen))
            mse = F.mse_loss(den, x)
            rank = ranking_loss(metric(den), y, metric.sign, metric.score_scale) if rank_weight > 0 else mse * 0
            loss = mse + rank_weight * rank
            opt.zero_grad()
            loss.backward()
            opt.step()
            totals["mse"] += float(mse) * len(idx)
            totals["rank"] += float(rank) * len(idx)
        log.info("epoch %d/%d  mse %.5f  rank %.4f", epoch + 1, epochs, totals["mse"] / len(images),
                 totals["rank"] / len(images))
        model.eval()
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
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("pyiqa").setLevel(logging.WARNING)
    metric = build_metric(args.metric, args.metric_param)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    t0 = time.time()
    train(metric, sigma=args.sigma, epochs=args.epochs, rank_weight=args.rank_weight, size=args.size,
          batch=args.batch, lr=args.lr, seed=args.seed, out=args.out, config=config, resume=args.resume,
          inputs=args.inputs, adv_eps=args.adv_eps)
    log.info("wrote %s (%.0f s)", args.out, time.time() - t0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
