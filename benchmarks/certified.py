"""Median smoothing (MS) vs denoised median smoothing (DMS) on the default model and CNNIQA.

For each metric: train its DMS denoiser (``python -m benchmark.training.denoiser``, ranking loss on
that metric) unless present, run a matrix (synthetic test split; no defense, MS and DMS at the same σ;
PGD and EOT-PGD), and write ``benchmarks/results/certified.{json,md}`` with SROCC/PLCC of the smoothed
scores, certificate width, certified delta, abstention and robust gain.

    python benchmarks/certified.py [--epochs 6] [--n 100] [--cnniqa ../shared/models/cnniqa-live/CNNIQA-LIVE]
    python benchmarks/certified.py --device cuda --epochs 30 --n 1000 --limit 76   # on a GPU

About 15 minutes on 2 CPU cores with the defaults.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import write_json  # noqa: E402

from benchmark.cli import main as cli  # noqa: E402
from benchmark.training.denoiser import main as train_denoiser  # noqa: E402

MATRIX = """
[run]
name = "certified-{metric}"
output_dir = "{out}"
batch_size = 8
image_size = {size}
device = "{device}"

[[datasets]]
name = "synthetic"
split = "test"
levels = [1, 3, 5]
limit = {limit}

[[metrics]]
name = "{metric}"
{metric_params}

[[attacks]]
name = "pgd"
eps = "2/255"
steps = 5

[[attacks]]
name = "pgd"
eps = "2/255"
steps = 5
adaptive = true
eot_samples = 4

[[defenses]]
name = "identity"

[[defenses]]
name = "median_smoothing"
sigma = {sigma}
n = {n}

[[defenses]]
name = "denoised_smoothing"
label = "denoised_smoothing"
denoiser = "{denoiser}"
sigma = {sigma}
n = {n}
"""

COLUMNS = ["metric", "attack", "defense", "srocc_clean", "srocc_def_clean", "plcc_clean", "plcc_def_clean",
           "srocc_def_adv", "cert_width", "cert_delta_norm", "abstain_rate", "abs_gain", "robust_abs_gain"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--sigma", type=float, default=0.12)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--cnniqa", type=Path, default=ROOT.parent / "shared" / "models" / "cnniqa-live" / "CNNIQA-LIVE")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--device", default="cpu", help="torch device for training and the matrix, e.g. cuda")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    metrics = {"default": ""}
    if args.cnniqa.is_file():
        metrics["cnniqa"] = f'weights = "{args.cnniqa.resolve()}"'
    else:
        logging.warning("%s not found: CNNIQA skipped", args.cnniqa)
    t0 = time.perf_counter()
    frames = []
    for metric, params in metrics.items():
        den = args.out / "denoisers" / f"{metric}-sigma{args.sigma}.pt"
        if not den.is_file():
            targv = ["--metric", metric, "--sigma", str(args.sigma), "--epochs", str(args.epochs), "--out", str(den),
                     "--device", args.device]
            if metric == "cnniqa":
                targv += ["--metric-param", f"weights={args.cnniqa.resolve()}"]
            train_denoiser(targv + ["--resume"])
        cfg = args.out / f"certified-{metric}.toml"
        cfg.write_text(MATRIX.format(metric=metric, metric_params=params, out=args.out / "runs", size=args.size,
                                     limit=args.limit, sigma=args.sigma, n=args.n, denoiser=den.resolve(),
                                     device=args.device))
        cli(["-q", "run", str(cfg), "--resume", "--no-progress"])
        frames.append(pd.read_csv(args.out / "runs" / f"certified-{metric}" / "summary.csv"))
    table = pd.concat(frames, ignore_index=True)
    table = table[[c for c in COLUMNS if c in table]]
    md = table.to_markdown(index=False, floatfmt=".3f")
    (args.out / "certified.md").write_text(md + "\n")
    write_json(args.out / "certified.json", {"seconds": time.perf_counter() - t0, "sigma": args.sigma, "n": args.n,
                                             "device": args.device, "epochs": args.epochs, "limit": args.limit,
                                             "rows": table.astype(object).where(table.notna(), None).to_dict("records")})
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
