"""Which denoiser training makes denoised median smoothing (DMS) keep a metric's agreement with the
reference scores? An ablation of ``python -m benchmark.defenses.train_denoiser`` recipes against plain
median smoothing (MS), without attacks.

Trains, on the training photographs (plus ``--photos``, by default ``../shared/data/live1-references``)
with the ``--distortions`` types, one denoiser per recipe:

- ``rank-scratch``: the command's losses (MSE + ranking loss 0.02 from an identity start, 6 epochs);
- ``mse``: MSE alone (classic denoised smoothing, Salman et al. 2020), 10 epochs;
- ``mse+rank0.01`` / ``mse+rank0.05``: ``mse`` fine-tuned with the ranking loss (6 epochs, lr 3e-4);
- ``rank-identity``: from the identity (plain median smoothing) with the ranking loss dominant (weight 1);
- ``mse+score+consistency``: ``mse`` fine-tuned to give the clean image's score (``--score-weight``) with
  a narrow spread over noise draws (``--consistency-weight``) and the ranking loss;

all at 32 channels on 96-pixel crops (``FAST``, for CPU time), then scores the held-out test
photographs with the same distortion types (levels 1, 3, 5) under no
defense, MS and each DMS at the same σ and n, and writes ``benchmarks/results/denoiser_ablation-<metric>``
``.{json,md}``: SROCC/PLCC with the reference scores, Spearman with the clean metric, mean score (the
shift), mean certified width.

    python benchmarks/denoiser_ablation.py [--metric cnniqa] [--distortions noise,blur,jpeg] [--n 100]

About 40 minutes on 2 CPU cores with the defaults (labelling the training set, six denoisers, seven scorings).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import write_json  # noqa: E402

from benchmark.correlation import correlations  # noqa: E402
from benchmark.datasets.synthetic import SyntheticDistortions  # noqa: E402
from benchmark.defenses.denoised_smoothing import DenoisedSmoothing  # noqa: E402
from benchmark.defenses.median_smoothing import MedianSmoothing  # noqa: E402
from benchmark.defenses.train_denoiser import build_metric, main as train_denoiser  # noqa: E402
from benchmark.images import to_tensor  # noqa: E402

FAST = ["--crop", "96", "--channels", "32"]
RECIPES = {  # name -> (train_denoiser arguments, recipe it starts from)
    "rank-scratch": (["--epochs", "6", *FAST], None),
    "mse": (["--epochs", "10", "--rank-weight", "0", *FAST], None),
    "mse+rank0.01": (["--epochs", "6", "--rank-weight", "0.01", "--lr", "3e-4", *FAST], "mse"),
    "mse+rank0.05": (["--epochs", "6", "--rank-weight", "0.05", "--lr", "3e-4", *FAST], "mse"),
    "rank-identity": (["--epochs", "6", "--rank-weight", "1", "--lr", "3e-4", *FAST], None),
    "mse+score+consistency": (["--epochs", "6", "--rank-weight", "0.05", "--score-weight", "0.5", "--draws", "2",
                               "--consistency-weight", "0.002", "--lr", "3e-4", *FAST], "mse"),
}


def test_images(distortions: list[str], size: int) -> tuple[torch.Tensor, np.ndarray]:
    ds = SyntheticDistortions(split="test", distortions=distortions, levels=[1, 3, 5])  # labelled at 256 px
    samples = [ds.load(i) for i in ds.ids()]
    x = torch.stack([to_tensor(s.image) for s in samples])
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    return x, np.array([s.mos for s in samples])


def row(name: str, scores: np.ndarray, clean: np.ndarray, mos: np.ndarray, lower: bool, width: float) -> dict:
    c = correlations(scores, mos, lower_better=lower, mapping="logistic4")
    return {"defense": name, "srocc": c["srocc"], "plcc_raw": c["plcc_raw"], "plcc": c["plcc"],
            "srocc_with_clean_metric": float(stats.spearmanr(scores, clean)[0]), "mean_score": float(scores.mean()),
            "cert_width": width}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--metric", default="cnniqa")
    ap.add_argument("--cnniqa", type=Path, default=ROOT.parent / "shared" / "models" / "cnniqa-live" / "CNNIQA-LIVE")
    ap.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "live1-references")
    ap.add_argument("--distortions", default="noise,blur,jpeg")
    ap.add_argument("--sigma", type=float, default=0.12)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.perf_counter()
    mparams = [f"weights={args.cnniqa.resolve()}"] if args.metric == "cnniqa" else []
    metric = build_metric(args.metric, mparams)
    common = ["--metric", args.metric, "--sigma", str(args.sigma), "--distortions", args.distortions]
    common += [a for p in mparams for a in ("--metric-param", p)]
    if args.photos.is_dir():
        common += ["--photos", str(args.photos)]
    else:
        logging.warning("%s not found: training on the scikit-image photographs only", args.photos)
    dens = args.out / f"denoisers-ablation-{args.metric}"
    for name, (argv, start) in RECIPES.items():
        path = dens / f"{name}.pt"
        if not path.is_file():
            init = ["--init", str(dens / f"{start}.pt")] if start else []
            train_denoiser(common + argv + init + ["--out", str(path), "--resume"])

    x, mos = test_images(args.distortions.split(","), args.size)
    lower = metric.lower_better
    with torch.no_grad():
        clean = metric(x).float().numpy()
    rows = [row("none", clean, clean, mos, lower, float("nan"))]
    defenses = {"median_smoothing": MedianSmoothing(sigma=args.sigma, n=args.n)}
    defenses.update({f"dms:{name}": DenoisedSmoothing(dens / f"{name}.pt", sigma=args.sigma, n=args.n)
                     for name in RECIPES})
    for name, defense in defenses.items():
        scores, certs = defense.score(metric, x, generator=torch.Generator().manual_seed(0))
        width = float(np.nanmean([c["cert_hi"] - c["cert_lo"] for c in certs]))
        rows.append(row(name, scores.numpy(), clean, mos, lower, width))
        logging.info("%s: %s", name, rows[-1])
    table = pd.DataFrame(rows)
    md = table.to_markdown(index=False, floatfmt=".3f")
    stem = args.out / f"denoiser_ablation-{args.metric}"
    stem.with_suffix(".md").write_text(md + "\n")
    write_json(stem.with_suffix(".json"), {"seconds": time.perf_counter() - t0, "metric": args.metric,
                                           "sigma": args.sigma, "n": args.n, "size": args.size,
                                           "distortions": args.distortions, "n_images": int(len(mos)),
                                           "rows": table.astype(object).where(table.notna(), None).to_dict("records")})
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
