"""Throughput of median smoothing with n = 1000 samples per image (the public IQA setting), batched.

    python benchmarks/smoothing_throughput.py [--device cuda] [--size 256] [--batches 50 100 250]

Writes benchmarks/results/smoothing_throughput.json with machine metadata: seconds per image and samples
per second for each sample batch size, for the default model.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import write_json  # noqa: E402

from benchmark.defenses.median_smoothing import MedianSmoothing  # noqa: E402
from benchmark.metrics.default_model import DefaultModel  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--batches", type=int, nargs="+", default=[50, 100, 250])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "smoothing_throughput.json")
    args = ap.parse_args()
    device = torch.device(args.device)
    model = DefaultModel().to(device).eval()
    x = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)).to(device)
    rows = []
    for b in args.batches:
        ms = MedianSmoothing(n=args.n, sample_batch=b)
        ms.score(model, x, generator=torch.Generator().manual_seed(0))  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        _, certs = ms.score(model, x, generator=torch.Generator().manual_seed(1))
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        rows.append({"sample_batch": b, "seconds_per_image": dt, "samples_per_second": args.n / dt,
                     "abstain": bool(certs[0]["abstain"])})
        print(f"sample_batch {b:4d}: {dt:.2f} s/image, {args.n / dt:.0f} samples/s")
    write_json(args.out, {"device": str(device), "size": args.size, "n": args.n, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
