"""Time of ``benchmark.measures.summarize`` on a synthetic records frame the size of the quickstart's
(2 metrics × 3 attacks × 4 defenses × 12 images, with MOS), optionally beside the code of a git revision.

    python benchmarks/summarize_speed.py [--repeat 5] [--baseline-rev af02e60]

``--baseline-rev`` loads ``benchmark/measures.py`` and ``benchmark/correlation.py`` of that revision (git
show) into a scratch package and times it on the same frame. Prints the median wall and CPU seconds per call.
"""
from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import common  # noqa: E402


def quickstart_like_records(n_metrics: int = 2, n_attacks: int = 3, n_defenses: int = 4, n_images: int = 12,
                            seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    mos = rng.uniform(20, 80, n_images)
    frames = []
    for m in range(n_metrics):
        lower = m % 2 == 1
        s = (100 - mos if lower else mos) + rng.normal(0, 8, n_images)
        for a in range(n_attacks):
            sa = s + (-1 if lower else 1) * rng.uniform(2, 15, n_images)
            for d in range(n_defenses):
                frames.append(pd.DataFrame({
                    "dataset": "synthetic", "metric": f"metric{m}", "attack": f"attack{a}", "defense": f"defense{d}",
                    "image_id": [f"img{i:02d}" for i in range(n_images)], "mos": mos, "score": s, "score_adv": sa,
                    "score_def": s + rng.normal(0, 2, n_images), "score_adv_def": sa - rng.uniform(0, 5, n_images),
                    "lower_better": lower, "range_lo": 0.0, "range_hi": 100.0,
                    "psnr_attack": rng.uniform(30, 40, n_images), "ssim_attack": rng.uniform(0.8, 1, n_images),
                    "psnr_def_adv": rng.uniform(25, 35, n_images), "ssim_def_adv": rng.uniform(0.7, 0.95, n_images),
                    "psnr_def_clean": rng.uniform(25, 35, n_images), "ssim_def_clean": rng.uniform(0.7, 1, n_images),
                    "seconds_def_clean": 0.01, "seconds_def_adv": 0.01, "adaptive_attack": False, "eot_samples": 0}))
    return pd.concat(frames, ignore_index=True)


def module_at(rev: str, scratch: Path):
    pkg = scratch / "benchmark_at_rev"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in ("measures", "correlation"):
        src = subprocess.run(["git", "show", f"{rev}:benchmark/{name}.py"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
        (pkg / f"{name}.py").write_text(src)
    sys.path.insert(0, str(scratch))
    return importlib.import_module("benchmark_at_rev.measures")


def timed(summarize, records: pd.DataFrame, repeat: int) -> str:
    """Median wall and CPU (process) seconds per call: on a shared machine the CPU time is the steadier."""
    wall, cpu = [], []
    for _ in range(repeat):
        dt, dc, _ = common.timed(lambda: summarize(records))
        wall.append(dt)
        cpu.append(dc)
    return f"{np.median(wall):.3f} s wall, {np.median(cpu):.3f} s CPU per summarize (median of {repeat})"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--baseline-rev", default=None, help="git revision to time beside the working tree")
    args = ap.parse_args()
    from benchmark.measures import summarize

    records = quickstart_like_records()
    print(f"records: {len(records)} rows, {records.groupby(['metric', 'attack', 'defense']).ngroups} cells")
    print(f"working tree: {timed(summarize, records, args.repeat)}")
    if args.baseline_rev:
        with tempfile.TemporaryDirectory() as tmp:
            old = module_at(args.baseline_rev, Path(tmp))
            print(f"{args.baseline_rev}: {timed(old.summarize, records, max(1, min(args.repeat, 3)))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
