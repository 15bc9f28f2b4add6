"""Throughput of median smoothing against the bare model's best batched throughput.

    python benchmarks/smoothing_throughput.py [--device cuda] [--size 256] [--n 1000] [--rounds 3]
                                              [--batches 1 50] [--threads 1]

Each round measures, one after the other (interleaved, so load on a shared machine hits all alike): the
bare default model's samples per second at every power-of-two batch size up to 64 (CPU) or 512 (GPU) (its
best is the yardstick), median smoothing with the automatic batch (``sample_batch = None``, the default: a
rule of the device and the image size, ``median_smoothing.auto_sample_batch``) and with each fixed
``--batches`` size, on one image of ``n`` samples. The figure is the median over rounds of smoothing's
samples per second over the bare model's best of the same round, in wall-clock time and (on the CPU) in
process CPU time. Each round also times the noise draws alone (one image's n samples, as the automatic
batch takes them) against a bare forward pass. The bare model's best batch is the value to set as
``sample_batch`` where the rule is slower. Writes benchmarks/results/smoothing_throughput.json with machine
metadata.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import timed, write_json  # noqa: E402

from benchmark.defenses import median_smoothing as msm  # noqa: E402
from benchmark.metrics.default_model import DefaultModel  # noqa: E402

CANDIDATES = {"cpu": (1, 2, 4, 8, 16, 32, 64), "cuda": (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)}


@torch.no_grad()
def bare(model, x: torch.Tensor, batches: tuple[int, ...], samples: int, device) -> dict[int, tuple[float, float]]:
    """Samples per second (wall, CPU) of the bare model at each batch size, over about ``samples`` images."""
    out = {}
    for b in batches:
        xb = x.expand(b, *x.shape[1:]).contiguous()
        model(xb)  # warm-up
        reps = max(1, samples // b)
        wall, cpu, _ = timed(lambda xb=xb, reps=reps: [model(xb) for _ in range(reps)], device)
        out[b] = (reps * b / wall, reps * b / max(cpu, 1e-9))
    return out


def noise_ms_per_sample(img: torch.Tensor, n: int, batch: int, device) -> float:
    """Milliseconds per sample of drawing one image's ``n`` noisy samples' noise, ``batch`` at a time."""
    stream = msm.NoiseStream(msm.MedianSmoothing().draw_gaussian, img, n, torch.Generator().manual_seed(0))
    wall, _, _ = timed(lambda: [stream.take(min(batch, n - i)) for i in range(0, n, batch)], device)
    return 1e3 * wall / n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", type=int, nargs="*", default=[1, 50], help="fixed sample_batch values to compare")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "smoothing_throughput.json")
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = DefaultModel().to(device).eval()
    x = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)).to(device)
    noisy = (x + 0.12 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(device)).clamp(0, 1)
    candidates = CANDIDATES["cuda" if device.type == "cuda" else "cpu"]

    auto = msm.MedianSmoothing(n=args.n)
    warm_start = time.perf_counter()
    auto.score(model, x, generator=torch.Generator().manual_seed(0))  # warms up on a first image
    warm_s = time.perf_counter() - warm_start
    chosen = msm.auto_sample_batch(args.n, x[0])
    print(f"automatic sample batch: {chosen} (first image, warm-up: {warm_s:.1f} s)")
    configs = {"auto": auto, **{f"sample_batch={b}": msm.MedianSmoothing(n=args.n, sample_batch=b)
                                for b in args.batches}}
    rounds = []
    for r in range(args.rounds):
        rates = bare(model, noisy, candidates, samples=min(args.n, 256), device=device)
        best_b = max(rates, key=lambda b: rates[b][0])
        row = {"bare": {str(b): {"samples_per_s": w, "samples_per_cpu_s": c} for b, (w, c) in rates.items()},
               "bare_best_batch": best_b, "bare_best_samples_per_s": rates[best_b][0],
               "bare_best_samples_per_cpu_s": max(c for _, c in rates.values()),
               "noise_ms_per_sample": noise_ms_per_sample(x[0], args.n, chosen, device), "smoothing": {}}
        for name, ms in configs.items():
            wall, cpu, _ = timed(lambda ms=ms, r=r: ms.score(model, x, generator=torch.Generator().manual_seed(r)),
                                 device)
            row["smoothing"][name] = {"seconds_per_image": wall, "samples_per_s": args.n / wall,
                                      "ratio_to_bare_best": args.n / wall / row["bare_best_samples_per_s"],
                                      "ratio_to_bare_best_cpu": args.n / max(cpu, 1e-9)
                                      / row["bare_best_samples_per_cpu_s"]}
        rounds.append(row)
        print(f"round {r}: bare best {row['bare_best_samples_per_s']:.1f} samples/s (batch {best_b}), noise "
              f"{row['noise_ms_per_sample']:.2f} ms/sample; "
              + "; ".join(f"{k} {v['samples_per_s']:.1f}/s = {v['ratio_to_bare_best']:.2f} "
                          f"(cpu {v['ratio_to_bare_best_cpu']:.2f})" for k, v in row["smoothing"].items()))
    summary = {name: {"ratio_to_bare_best": statistics.median(r["smoothing"][name]["ratio_to_bare_best"] for r in rounds),
                      "ratio_to_bare_best_cpu": statistics.median(r["smoothing"][name]["ratio_to_bare_best_cpu"]
                                                                  for r in rounds),
                      "seconds_per_image": statistics.median(r["smoothing"][name]["seconds_per_image"] for r in rounds)}
               for name in configs}
    for name, s in summary.items():
        print(f"{name:16s} median ratio to the bare model's best: {s['ratio_to_bare_best']:.2f} wall, "
              f"{s['ratio_to_bare_best_cpu']:.2f} cpu; {s['seconds_per_image']:.2f} s/image")
    write_json(args.out, {"device": str(device), "size": args.size, "n": args.n, "threads": torch.get_num_threads(),
                          "load_average": list(os.getloadavg()), "auto_sample_batch": chosen,
                          "summary": summary, "rounds": rounds})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
