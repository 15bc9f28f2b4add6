"""Speed of the project's float32 PSNR / SSIM / MS-SSIM against pyiqa's (float64) on 256×256 batches.

    python benchmarks/fr_quality_speed.py [--device cuda] [--batch 4] [--size 256] [--repeats 7] [--threads 1] [--reuse-only]

pyiqa and the project's version are timed alternately (interleaved repeats, so load on a shared machine
hits both alike); the figures are the ratios of their median wall-clock times and, on the CPU, of their
median process CPU times (the steadier figure on a loaded machine), with the largest absolute difference
of the scores. Then SSIM computed once per pair (``pair_quality`` reuses MS-SSIM's first scale as SSIM) against
the former route that computed it alone and again inside MS-SSIM: the same interleaved timing, ``reuse_rows``
in the JSON, with the largest difference of the scores (0: bit-identical). Writes
benchmarks/results/fr_quality_speed.json with machine metadata.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import timed, write_json  # noqa: E402

from benchmark import quality  # noqa: E402


def main() -> int:
    import pyiqa

    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=4, help="image pairs per call (the runner's default batch)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--reuse-only", action="store_true", help="only the SSIM-once rows (no pyiqa)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fr_quality_speed.json")
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(args.batch, 3, args.size, args.size, generator=g)
    ref = torch.nn.functional.avg_pool2d(ref, 5, stride=1, padding=2, count_include_pad=False)
    dist = (ref + 8 / 255 * torch.randn(ref.shape, generator=g).sign()).clamp(0, 1)
    ref, dist = ref.to(device), dist.to(device)
    ours = {"psnr": quality.psnr, "ssim": quality.ssim, "ms_ssim": quality.ms_ssim}
    theirs = {name: pyiqa.create_metric(name, as_loss=False, device=device) for name in ours}

    def pair_pyiqa():  # what pair_quality did before: pyiqa's three metrics on float32 inputs
        return [theirs[n](dist, ref) for n in ours]

    def old_pair_quality():  # pair_quality before SSIM was reused: SSIM alone, then MS-SSIM's five scales
        return {"psnr": quality.psnr(dist, ref).clamp(max=quality.PSNR_CAP), "ssim": quality.ssim(dist, ref),
                "ms_ssim": quality.ms_ssim(dist, ref), "psnr_skimage": quality.psnr_skimage(dist, ref),
                "ssim_skimage": quality.ssim_skimage(dist, ref)}

    def ssim_once():
        return dict(zip(("ssim", "ms_ssim"), quality.ssim_ms_ssim(dist, ref)))

    rows, reuse_rows = [], []
    reuse = [("ssim+ms_ssim", lambda: {"ssim": quality.ssim(dist, ref), "ms_ssim": quality.ms_ssim(dist, ref)},
              ssim_once),
             ("pair_quality", old_pair_quality, lambda: quality.pair_quality(dist, ref))]
    cases = [] if args.reuse_only else [(n, lambda n=n: theirs[n](dist, ref), lambda n=n: ours[n](dist, ref)) for n in ours]
    cases.append(("pair_quality", pair_pyiqa, lambda: quality.pair_quality(dist, ref)))
    with torch.no_grad():
        for name, slow, fast in cases:
            slow(), fast()  # warm-up
            t_slow, t_fast, c_slow, c_fast = [], [], [], []
            for _ in range(args.repeats):
                dt, dc, a = timed(slow, device)
                t_slow.append(dt), c_slow.append(dc)
                dt, dc, b = timed(fast, device)
                t_fast.append(dt), c_fast.append(dc)
            if name == "pair_quality":
                err = max(float((b[k].double() - a[i].reshape(-1).double().cpu()).abs().max())
                          for i, k in enumerate(ours))
            else:
                err = float((b.double().cpu() - a.reshape(-1).double().cpu()).abs().max())
            med = statistics.median
            row = {"measure": name, "pyiqa_s": med(t_slow), "float32_s": med(t_fast),
                   "speedup_wall": med(t_slow) / med(t_fast), "pyiqa_cpu_s": med(c_slow), "float32_cpu_s": med(c_fast),
                   "speedup_cpu": med(c_slow) / max(med(c_fast), 1e-9), "max_abs_diff": err}
            rows.append(row)
            print(f"{name:12s} pyiqa {row['pyiqa_s'] * 1e3:8.1f} ms  float32 {row['float32_s'] * 1e3:8.1f} ms  "
                  f"wall {row['speedup_wall']:6.1f}x  cpu-time {row['speedup_cpu']:6.1f}x  max |diff| {err:.1e}")
        for name, before, after in reuse:
            before(), after()  # warm-up
            t_b, t_a, c_b, c_a = [], [], [], []
            for _ in range(args.repeats):
                dt, dc, a = timed(before, device)
                t_b.append(dt), c_b.append(dc)
                dt, dc, b = timed(after, device)
                t_a.append(dt), c_a.append(dc)
            diff = max(float((b[k].cpu() - a[k].cpu()).abs().max()) for k in b if k in a)
            med = statistics.median
            row = {"measure": name, "before_s": med(t_b), "after_s": med(t_a), "speedup_wall": med(t_b) / med(t_a),
                   "before_cpu_s": med(c_b), "after_cpu_s": med(c_a),
                   "speedup_cpu": med(c_b) / max(med(c_a), 1e-9),
                   "saved_fraction_cpu": 1 - med(c_a) / max(med(c_b), 1e-9), "max_abs_diff": diff}
            reuse_rows.append(row)
            print(f"{name:12s} SSIM twice {row['before_s'] * 1e3:8.1f} ms  once {row['after_s'] * 1e3:8.1f} ms  "
                  f"wall {row['speedup_wall']:5.2f}x  cpu-time {row['speedup_cpu']:5.2f}x  "
                  f"saved {100 * row['saved_fraction_cpu']:4.1f} % cpu  max |diff| {diff:.1e}")
    write_json(args.out, {"device": str(device), "batch": args.batch, "size": args.size, "repeats": args.repeats,
                          "threads": torch.get_num_threads(),
                          "load_average": list(os.getloadavg()), "rows": rows,
                          "reuse_rows": reuse_rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
