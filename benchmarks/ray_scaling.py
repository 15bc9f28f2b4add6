"""The Ray executor with two single-threaded workers against one, on a local two-node Ray cluster.

    python benchmarks/ray_scaling.py [--images 16] [--size 128] [--steps 20] [--attacks 6] [--repeats 2]

Starts a Ray head and a second node on 127.0.0.1, ``--num-cpus=1`` each, of its own (its own temporary
directory, ports, HOME and token; stopped by the PIDs it started, never ``ray stop``, so that a cluster of the
user's on this machine is left alone: ``benchmark.executors.ray_cluster.LocalRayCluster``), runs the same
small matrix (a folder of scikit-image photographs, the default model, ``--attacks`` PGD budgets, identity and JPEG) on
one Ray worker and on two (each actor single-threaded: ``torch.set_num_threads(1)``), ``--repeats``
times interleaved, checks that both wrote the same records, and writes
benchmarks/results/ray_scaling.json with machine metadata and the load average around each run (other
processes on the machine take CPU from the two workers as from one). The time is the driver's wall clock
for ``Runner.run``: actor start-up (importing torch in each worker) included, cluster start-up excluded.
As a control without Ray, each repeat also times one and then two plain single-threaded processes doing the
same fixed work each (``control_throughput_ratio`` = 2 x t1 / t2: 2.0 on two free cores), which says how
much of the two cores other processes left free while the Ray runs were timed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import write_json  # noqa: E402

from benchmark.config import load_config  # noqa: E402
from benchmark.executors.ray_cluster import LocalRayCluster  # noqa: E402
from benchmark.executors.ray_executor import RayExecutor  # noqa: E402
from benchmark.records import load_records  # noqa: E402
from benchmark.runner import Runner  # noqa: E402



def photo_folder(root: Path, n: int, size: int) -> Path:
    from PIL import Image

    from benchmark.photos import load_photo, square

    names = ["astronaut", "coffee", "rocket", "chelsea", "camera", "cat"]
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        x = square(load_photo(names[i % len(names)]), size)
        Image.fromarray((x * 255).round().byte().permute(1, 2, 0).numpy()).save(root / f"img{i:02d}.png")
    return root


def matrix(path: Path, images: Path, name: str, args) -> Path:
    eps = ", ".join(f'"{k}/255"' for k in range(2, 2 * args.attacks + 1, 2))
    path.write_text(f"""
[run]
name = "{name}"
output_dir = "{path.parent / 'runs'}"
image_size = {args.size}
batch_size = 4
[[datasets]]
name = "folder"
root = "{images}"
[[metrics]]
name = "default"
[[attacks]]
name = "pgd"
eps = [{eps}]
steps = {args.steps}
[[defenses]]
name = "identity"
[[defenses]]
name = "jpeg"
quality = 50
""")
    return path


def _busy(iters: int, size: int) -> None:
    import torch

    from benchmark.metrics.default_model import DefaultModel

    torch.set_num_threads(1)
    model, x = DefaultModel().eval(), torch.rand(8, 3, size, size)
    for _ in range(iters):
        x.requires_grad_(True)
        model(x).sum().backward()


def plain_processes(n: int, iters: int, size: int) -> float:
    """Control without Ray: wall time of ``n`` plain single-threaded processes doing the same gradient passes
    (what the machine's free cores allow at that moment)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_busy, args=(iters, size)) for _ in range(n)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return time.perf_counter() - t0


def timed_run(cfg_path: Path, address: str, workers: int) -> tuple[float, list[float]]:
    cfg = load_config(cfg_path)
    run_dir = cfg.run.output_dir / cfg.run.name
    run_dir.mkdir(parents=True)
    load = [os.getloadavg()[0]]
    t0 = time.perf_counter()
    failed = Runner(cfg, run_dir, progress=False).run(RayExecutor(address=address, workers=workers))
    dt = time.perf_counter() - t0
    load.append(os.getloadavg()[0])
    if failed:
        raise SystemExit(f"{failed} cell(s) failed in {run_dir}")
    return dt, load


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--attacks", type=int, default=6, help="PGD budgets 2/255, 4/255, ... (one attack stage each)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ray_scaling.json")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ray-scaling-"))
    images = photo_folder(tmp / "images", args.images, args.size)
    rows, control = [], []
    with LocalRayCluster(2, num_cpus=1) as cluster, cluster.driver_env():  # RayStartError shows Ray's own output
        address = cluster.address
        for r in range(args.repeats):  # interleaved, so a change in the machine's load hits both alike
            for n in (1, 2):
                dt = plain_processes(n, 20, args.size)
                control.append({"processes": n, "repeat": r, "seconds": dt})
                print(f"control: {n} plain process(es), repeat {r}: {dt:.1f} s")
            for workers in (1, 2):
                name = f"w{workers}-r{r}"
                dt, load = timed_run(matrix(tmp / f"{name}.toml", images, name, args), address, workers)
                rows.append({"workers": workers, "repeat": r, "seconds": dt, "load_before_after": load})
                print(f"{workers} worker(s), repeat {r}: {dt:.1f} s (load {load[0]:.1f} -> {load[1]:.1f})")
    one = statistics.median(r["seconds"] for r in rows if r["workers"] == 1)
    two = statistics.median(r["seconds"] for r in rows if r["workers"] == 2)
    print(f"median: 1 worker {one:.1f} s, 2 workers {two:.1f} s; speed-up {one / two:.2f}x")
    c1 = statistics.median(r["seconds"] for r in control if r["processes"] == 1)
    c2 = statistics.median(r["seconds"] for r in control if r["processes"] == 2)
    print(f"control without Ray: 1 process {c1:.1f} s, 2 processes {c2:.1f} s (each the same work): "
          f"the machine allows {2 * c1 / c2:.2f}x")
    cols = ["score", "score_adv", "score_def", "score_adv_def"]
    key = ["attack", "defense", "image_id"]
    a, b = (load_records(tmp / "runs" / n).sort_values(key)[key + cols].reset_index(drop=True)
            for n in ("w1-r0", "w2-r0"))
    same = bool(((a[cols] - b[cols]).abs().max().max() <= 1e-6) and a[key].equals(b[key]))
    n_cells = args.attacks * 2
    write_json(args.out, {"matrix": {"images": args.images, "size": args.size, "pgd_steps": args.steps,
                                     "attacks": args.attacks, "defenses": 2, "cells": n_cells},
                          "runs": rows, "median_seconds": {"1": one, "2": two}, "speedup": one / two,
                          "same_records": same, "control_plain_processes": control,
                          "control_throughput_ratio": 2 * c1 / c2,
                          "note": "local Ray cluster on 127.0.0.1: a head and a second node, --num-cpus=1 each; "
                                  "--ray-workers 1 or 2 single-threaded actors, interleaved repeats, medians; wall "
                                  "clock of Runner.run on the driver (actor start-up included); load_before_after is "
                                  "the 1-minute load average (other processes share the CPUs)"})
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"written: {args.out}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
