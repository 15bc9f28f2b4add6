"""Which denoiser training makes denoised median smoothing (DMS) keep a metric's agreement with the
reference scores? An ablation of ``python -m benchmark.training.denoiser`` recipes against plain
median smoothing (MS), without attacks.

Trains, on the training photographs (plus ``--photos``, by default ``../shared/data/live1-references``)
with the ``--distortions`` types, one denoiser per recipe:

- ``rank-scratch``: the command's losses (MSE + ranking loss 0.02 from an identity start, 6 epochs);
- ``mse``: MSE alone (classic denoised smoothing, Salman et al. 2020), 10 epochs;
- ``mse+rank0.01`` / ``mse+rank0.05``: ``mse`` fine-tuned with the ranking loss (6 epochs, lr 3e-4);
- ``rank-identity``: from the identity (plain median smoothing) with the ranking loss dominant (weight 1);
- ``mse+score+consistency``: ``mse`` fine-tuned to give the clean image's score (``--score-weight``) with
  a narrow spread over noise draws (``--consistency-weight``) and the ranking loss;
- ``mse+rank0.01+consistency``: ``mse`` fine-tuned with ranking loss 0.01 and the score-spread term (``--draws 2``);
- ``rank-identity+consistency0.05`` / ``0.2``: ``rank-identity`` with the score-spread term, which narrows
  the certificate

all at 32 channels on 96-pixel crops (``FAST``, for CPU time), then scores the held-out test
photographs with the same distortion types (levels 1, 3, 5) under no
defense, MS and each DMS at the same σ and n, and writes ``benchmarks/results/denoiser_ablation-<metric>``
``.{json,md}``: SROCC/PLCC with the reference scores, Spearman with the clean metric, mean score (the
shift), mean certified width.

    python benchmarks/denoiser_ablation.py [--metric cnniqa] [--distortions noise,blur,jpeg] [--n 100]
    python benchmarks/denoiser_ablation.py --device cuda --epoch-scale 5 --n 1000 --holdout-photos 9   # a GPU

About an hour on 2 CPU cores with the defaults (labelling the training set, nine denoisers, ten scorings);
about 5 minutes on one H100 with ``--device cuda --epoch-scale 5 --n 1000``.
Each DMS row has the 95 % paired-bootstrap interval of its SROCC gain over MS (the same images resampled).
``--epoch-scale K`` trains every recipe K times longer (its denoisers and results get a ``-xK`` suffix),
``--recipes`` picks some of them, ``--holdout-photos K`` keeps the last K ``--photos`` out of training and
adds them to the test set.
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
from benchmark.training.denoiser import build_metric, main as train_denoiser  # noqa: E402
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
    "mse+rank0.01+consistency": (["--epochs", "6", "--rank-weight", "0.01", "--draws", "2",
                                  "--consistency-weight", "0.002", "--lr", "3e-4", *FAST], "mse"),
    "rank-identity+consistency0.05": (["--epochs", "6", "--rank-weight", "1", "--draws", "2",
                                       "--consistency-weight", "0.05", "--lr", "3e-4", *FAST], None),
    "rank-identity+consistency0.2": (["--epochs", "6", "--rank-weight", "1", "--draws", "2",
                                      "--consistency-weight", "0.2", "--lr", "3e-4", *FAST], None),
}


def scaled(argv: list[str], factor: int) -> list[str]:
    """A recipe's arguments with its ``--epochs`` multiplied by ``factor``."""
    out = list(argv)
    i = out.index("--epochs")
    out[i + 1] = str(int(out[i + 1]) * factor)
    return out


def test_images(distortions: list[str], size: int, extra: dict[str, np.ndarray] | None = None
                ) -> tuple[torch.Tensor, np.ndarray]:
    """The synthetic test split plus ``extra`` held-out photographs distorted the same way, labelled at 256 px."""
    ds = SyntheticDistortions(split="test", distortions=distortions, levels=[1, 3, 5])
    samples = [ds.load(i) for i in ds.ids()]
    x = torch.stack([to_tensor(s.image) for s in samples])
    mos = torch.tensor([s.mos for s in samples], dtype=torch.float64)
    if extra:
        from benchmark.training.trainset import build_set

        ex, ey = build_set(extra, 256, [1, 3, 5], tuple(distortions))
        x, mos = torch.cat([x, (ex * 255).round() / 255]), torch.cat([mos, ey.double()])
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    return x, mos.numpy()


def split_photos(folder: Path, holdout: int, out: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """The last ``holdout`` photographs of ``folder`` (by name) for testing, a folder of links to the rest
    for training."""
    from benchmark.datasets.folder import IMAGE_SUFFIXES
    from benchmark.images import read_image

    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not 0 < holdout < len(files):
        raise SystemExit(f"--holdout-photos {holdout}: {folder} has {len(files)} photographs")
    train_dir = out / f"{folder.name}-train{len(files) - holdout}"
    train_dir.mkdir(parents=True, exist_ok=True)
    for f in files[:-holdout]:
        link = train_dir / f.name
        if not link.exists():
            link.symlink_to(f.resolve())
    return train_dir, {f"{folder.name}/{f.stem}": read_image(f) for f in files[-holdout:]}


def paired_delta(scores: np.ndarray, base: np.ndarray, mos: np.ndarray, lower: bool, n_boot: int = 1000
                 ) -> tuple[float, float]:
    """95 % bootstrap interval of SROCC(scores) − SROCC(base), the same images resampled for both."""
    sign = -1.0 if lower else 1.0
    rng = np.random.default_rng(0)
    d = []
    for _ in range(n_boot):
        i = rng.integers(0, len(mos), len(mos))
        d.append(sign * (stats.spearmanr(scores[i], mos[i])[0] - stats.spearmanr(base[i], mos[i])[0]))
    return float(np.nanquantile(d, 0.025)), float(np.nanquantile(d, 0.975))


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
    ap.add_argument("--device", default="cpu", help="torch device for training and scoring, e.g. cuda")
    ap.add_argument("--epoch-scale", type=int, default=1, help="train every recipe this many times longer")
    ap.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated recipes to run")
    ap.add_argument("--holdout-photos", type=int, default=0,
                    help="keep the last K photographs of --photos out of training and add them to the test set")
    args = ap.parse_args()
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown or not recipes:
        ap.error(f"--recipes: unknown {unknown}; expected some of {','.join(RECIPES)}")
    for r in recipes:  # a recipe fine-tunes the one it starts from, which must run too
        start = RECIPES[r][1]
        if start and start not in recipes:
            ap.error(f"--recipes: {r} starts from {start}; add it")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.perf_counter()
    mparams = [f"weights={args.cnniqa.resolve()}"] if args.metric == "cnniqa" else []
    metric = build_metric(args.metric, mparams).to(args.device)
    suffix = (f"-x{args.epoch_scale}" if args.epoch_scale != 1 else "") + (f"-n{args.n}" if args.n != 100 else "")
    common = ["--metric", args.metric, "--sigma", str(args.sigma), "--distortions", args.distortions,
              "--device", args.device]
    common += [a for p in mparams for a in ("--metric-param", p)]
    extra = None
    if args.photos.is_dir() and args.holdout_photos:
        train_dir, extra = split_photos(args.photos, args.holdout_photos, args.out)
        common += ["--photos", str(train_dir)]
    elif args.photos.is_dir():
        common += ["--photos", str(args.photos)]
    else:
        logging.warning("%s not found: training on the scikit-image photographs only", args.photos)
    suffix += f"-holdout{args.holdout_photos}" if args.holdout_photos else ""
    dens = args.out / (f"denoisers-ablation-{args.metric}{'-x' + str(args.epoch_scale) if args.epoch_scale != 1 else ''}"
                       f"{'-holdout' + str(args.holdout_photos) if args.holdout_photos else ''}")
    for name in recipes:
        argv, start = RECIPES[name]
        path = dens / f"{name}.pt"
        if not path.is_file():
            init = ["--init", str(dens / f"{start}.pt")] if start else []
            train_denoiser(common + scaled(argv, args.epoch_scale) + init + ["--out", str(path), "--resume"])

    x, mos = test_images(args.distortions.split(","), args.size, extra)
    x = x.to(args.device)
    lower = metric.lower_better
    with torch.no_grad():
        clean = metric(x).float().cpu().numpy()
    rows = [row("none", clean, clean, mos, lower, float("nan"))]
    defenses = {"median_smoothing": MedianSmoothing(sigma=args.sigma, n=args.n)}
    defenses.update({f"dms:{name}": DenoisedSmoothing(dens / f"{name}.pt", sigma=args.sigma, n=args.n)
                     for name in recipes})
    for name, defense in defenses.items():
        defense = defense.to(args.device)
        scores, certs = defense.score(metric, x, generator=torch.Generator().manual_seed(0))
        width = float(np.nanmean([c["cert_hi"] - c["cert_lo"] for c in certs]))
        rows.append(row(name, scores.numpy(), clean, mos, lower, width))
        if name == "median_smoothing":
            ms_scores = scores.numpy()
        elif name.startswith("dms:"):  # paired bootstrap of the SROCC gain over plain median smoothing
            rows[-1]["srocc_minus_ms_95ci"] = "[{:+.3f}, {:+.3f}]".format(
                *paired_delta(scores.numpy(), ms_scores, mos, lower))
        logging.info("%s: %s", name, rows[-1])
    table = pd.DataFrame(rows)
    md = table.to_markdown(index=False, floatfmt=".3f")
    stem = args.out / f"denoiser_ablation-{args.metric}{suffix}"
    stem.with_suffix(".md").write_text(md + "\n")
    write_json(stem.with_suffix(".json"), {"seconds": time.perf_counter() - t0, "metric": args.metric,
                                           "sigma": args.sigma, "n": args.n, "size": args.size,
                                           "distortions": args.distortions, "n_images": int(len(mos)),
                                           "device": args.device, "epoch_scale": args.epoch_scale,
                                           "rows": table.astype(object).where(table.notna(), None).to_dict("records")})
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
