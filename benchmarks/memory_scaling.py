"""Peak memory (RSS) of a whole run as the number of images grows: 100 against 1,000 images.

    python benchmarks/memory_scaling.py [--counts 10 100 1000] [--size 64] [--attack fgsm] [--defense jpeg]

Writes an image folder of ``max(counts)`` small photographs (scikit-image crops with a little noise, PNG)
and runs ``python -m benchmark run`` on it once per count (``limit = count``; the default model, one
cheap attack, the identity defense and one other), each in a fresh process whose peak resident set size
is read from the kernel (``wait4``). Reports each peak, the ratio of the largest count's to the second
largest's (target of issue #14: at most 1.2 from 100 to 1,000 images), and the growth per image above the
smallest run. Writes benchmarks/results/memory_scaling.json with machine metadata.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import write_json  # noqa: E402

from benchmark.photos import TEST_PHOTOS, TRAIN_PHOTOS, load_photo  # noqa: E402


def write_folder(folder: Path, count: int, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    photos = [load_photo(p) for p in TEST_PHOTOS + TRAIN_PHOTOS]
    for k in range(count):
        img = photos[k % len(photos)]
        top, left = (int(rng.integers(0, d - size + 1)) for d in img.shape[:2])
        crop = img[top:top + size, left:left + size].astype(np.float32)
        crop += rng.normal(0, 2 + k % 7, crop.shape)
        Image.fromarray(np.clip(crop, 0, 255).round().astype(np.uint8)).save(folder / f"{k:05d}.png")


def peak_rss_of_run(config: Path, env: dict) -> tuple[int, float, int]:
    """(peak RSS in bytes, seconds, exit status) of ``python -m benchmark run config`` in a fresh process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "benchmark", "run", str(config), "--no-progress", "--overwrite"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"run failed ({proc.returncode}): {err[-2000:]}")
    return usage.ru_maxrss * 1024, time.perf_counter() - t0, proc.returncode  # Linux: ru_maxrss in KiB


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--attack", default="fgsm")
    ap.add_argument("--defense", default="jpeg")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "memory_scaling.json")
    args = ap.parse_args()
    counts = sorted(args.counts)
    tmp = Path(tempfile.mkdtemp(prefix="memory-scaling-"))
    folder = tmp / "images"
    write_folder(folder, counts[-1], args.size)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "BENCHMARK_CACHE_DIR": str(tmp / "cache")}
    rows = []
    for n in counts:
        config = tmp / f"n{n}.toml"
        config.write_text(f"""
[run]
name = "n{n}"
output_dir = "{tmp / 'runs'}"
batch_size = {args.batch}
image_size = {args.size}

[[datasets]]
name = "folder"
root = "{folder}"
limit = {n}

[[metrics]]
name = "default"

[[attacks]]
name = "{args.attack}"
eps = "4/255"

[[defenses]]
name = "identity"

[[defenses]]
name = "{args.defense}"
""")
        rss, seconds, rc = peak_rss_of_run(config, env)
        rows.append({"images": n, "peak_rss_bytes": rss, "peak_rss_mib": rss / 2**20, "seconds": seconds,
                     "exit_status": rc})
        print(f"{n:6d} images: peak RSS {rss / 2**20:8.1f} MiB, {seconds:6.1f} s (exit {rc})")
    big, second, small = rows[-1], rows[-2], rows[0]
    ratio = big["peak_rss_bytes"] / second["peak_rss_bytes"]
    per_image = (big["peak_rss_bytes"] - small["peak_rss_bytes"]) / max(1, big["images"] - small["images"])
    print(f"peak RSS {big['images']} / {second['images']} images: {ratio:.2f}x (target <= 1.2); "
          f"{per_image / 1024:.1f} KiB per image above {small['images']} images "
          f"(one {args.size}x{args.size} float32 image is {3 * 4 * args.size ** 2 / 1024:.0f} KiB)")
    write_json(args.out, {"size": args.size, "attack": args.attack, "defenses": ["identity", args.defense],
                          "batch": args.batch, "load_average": list(os.getloadavg()), "rows": rows,
                          "ratio_largest_to_second": ratio, "bytes_per_image_above_smallest": per_image})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
