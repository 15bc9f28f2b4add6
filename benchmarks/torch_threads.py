"""Stage throughput of a run with 1 or 2 torch threads per process: the measurement behind ``[run] threads``.

    python benchmarks/torch_threads.py [--threads 1 2] [--repeats 3] [--images 6] [--size 96]

The same small matrix (the default model; FGSM and PGD 3 steps, transfer only; identity, JPEG, median and TV;
6 photographs at 96 px) runs in a fresh process per repeat with ``[run] threads`` and ``OMP_NUM_THREADS`` (and
MKL's) set to each thread count, the counts alternating so that a shared machine's load hits them alike. Per
run: the wall time of ``run`` and of its start-up (``validate``), the children's CPU time, and each stage
kind's summed ``stage_seconds`` from the stored records, as images per second. The figures are medians over the repeats;
``speedup`` is the 1-thread median time over each count's. Writes benchmarks/results/torch_threads.json with
machine metadata and the load average (on a shared machine, state it beside the figures).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import write_json  # noqa: E402

MATRIX = """
[[metrics]]
name = "default"

[[attacks]]
name = "fgsm"
eps = "4/255"
adaptive = false

[[attacks]]
name = "pgd"
eps = "4/255"
steps = 3
adaptive = false

[[defenses]]
name = "identity"

[[defenses]]
name = "jpeg"

[[defenses]]
name = "median"

[[defenses]]
name = "tv"
"""


def write_images(folder: Path, n: int, size: int) -> None:
    from PIL import Image

    from benchmark.photos import TEST_PHOTOS, TRAIN_PHOTOS, load_photo, square

    folder.mkdir(parents=True)
    with (folder / "mos.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "mos"])
        for i, p in enumerate((TEST_PHOTOS + TRAIN_PHOTOS)[:n]):
            arr = (square(load_photo(p), size) * 255).round().byte().permute(1, 2, 0).numpy()
            Image.fromarray(arr).save(folder / f"{p}.png")
            w.writerow([f"{p}.png", 50 + 5 * i])


def once(work: Path, images: Path, size: int, threads: int, i: int) -> dict:
    out = work / f"runs-{threads}-{i}"
    cfg = work / f"m-{threads}-{i}.toml"
    cfg.write_text(f'[run]\nname = "t"\noutput_dir = "{out}"\ndevice = "cpu"\nbatch_size = 4\nimage_size = {size}\n'
                   f'seed = 0\nthreads = {threads}\n\n[[datasets]]\nname = "folder"\nroot = "{images}"\n'
                   f'mos_csv = "{images / "mos.csv"}"\n' + MATRIX)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    times = {}
    for step in ("validate", "run"):
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "benchmark", "-q", step, str(cfg)], cwd=ROOT, env=env,
                              capture_output=True, text=True, check=False)
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(f"{step} failed with {threads} threads:\n{proc.stderr[-3000:]}")
        times[step] = (time.perf_counter() - t0, c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime)
    stages: dict[str, float] = {}
    for f in (out / "t" / "stages").glob("*/*.json"):
        r = json.loads(f.read_text())
        if "stage_seconds" in r:
            stages[f.parent.name] = stages.get(f.parent.name, 0.0) + r["stage_seconds"]
    shutil.rmtree(out, ignore_errors=True)
    return {"run_s": times["run"][0], "run_cpu_s": times["run"][1], "startup_s": times["validate"][0],
            "stages_s": stages}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--note", default="")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "torch_threads.json")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="torch_threads_"))
    write_images(work / "images", args.images, args.size)
    load_before = list(os.getloadavg())
    runs: dict[int, list[dict]] = {t: [] for t in args.threads}
    for i in range(args.repeats):
        for t in args.threads:
            r = once(work, work / "images", args.size, t, i)
            runs[t].append(r)
            print(f"repeat {i} threads {t}: run {r['run_s']:.1f} s (cpu {r['run_cpu_s']:.1f} s), "
                  + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(r["stages_s"].items())))
    shutil.rmtree(work, ignore_errors=True)
    med = statistics.median
    rows = []
    base = med(r["run_s"] - r["startup_s"] for r in runs[args.threads[0]])
    for t, rs in runs.items():
        kinds = sorted({k for r in rs for k in r["stages_s"]})
        stage_med = {k: med(r["stages_s"].get(k, 0.0) for r in rs) for k in kinds}
        work_s = med(r["run_s"] - r["startup_s"] for r in rs)
        rows.append({"threads": t, "run_s": med(r["run_s"] for r in rs), "run_cpu_s": med(r["run_cpu_s"] for r in rs),
                     "startup_s": med(r["startup_s"] for r in rs), "run_beyond_startup_s": work_s,
                     "speedup_vs_first": base / work_s, "stage_seconds": stage_med,
                     "all_stages_s": med(sum(r["stages_s"].values()) for r in rs), "repeats": rs})
        print(f"threads {t}: run {rows[-1]['run_s']:.1f} s, beyond start-up {work_s:.1f} s "
              f"({rows[-1]['speedup_vs_first']:.2f}x of {args.threads[0]} thread(s)), stages {rows[-1]['all_stages_s']:.1f} s, "
              f"cpu {rows[-1]['run_cpu_s']:.1f} s")
    best = min(rows, key=lambda r: r["run_beyond_startup_s"])["threads"]
    print(f"fastest: {best} thread(s) per process")
    write_json(args.out, {"images": args.images, "size": args.size, "matrix": MATRIX, "rows": rows, "fastest": best,
                          "load_average_before": load_before, "load_average_after": list(os.getloadavg()),
                          "note": args.note})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
