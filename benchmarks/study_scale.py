"""A matrix of the Guardians benchmark's shape, made small enough for 2 CPU cores: what the harness costs per cell.

    python benchmarks/study_scale.py [--images 3] [--size 48] [--metrics 9] [--attacks 14] [--defenses 30]
                                     [--threads 1] [--gpu-pass-ms 0.5] [--keep DIR] [--ray-workers 2]

The Guardians benchmark (msu-video-group/adversarial-defenses-for-iqa) runs 30 defenses × 14 attacks × 9
metrics on 1,000 images at 384×512. Here the same shape runs on a folder of tiny photographs (48 px: CNNIQA's
32-px patch grid needs sides over 32), with cheap attack settings (2 steps, a few dozen queries, transfer
only, as the Guardians protocol) and small models: the shipped ``default`` model, the real CNNIQA of
../shared when it is there, and random-initialised CNNIQA networks of several widths (``torch_module``).
Smaller counts (``--metrics``, ``--attacks``, ``--defenses``) take the first ones of each list.

Measured, from the run's own records: each stage's ``stage_seconds`` and model passes (``passes.json``); the
metric's cost per image forward and forward+backward (timed here on the same images); hence each stage's
time beyond the model passes (its overhead), summed per stage kind and divided by the cells. Then the wall
time of ``run`` and of ``report`` (less the CLI's import time) and the size of what ``report`` writes.

With ``--ray-workers N`` the same matrix runs a second time on a Ray instance of N single-CPU workers
(``run --executor ray``), each stage a task sent out as soon as the stages it reads are stored; the JSON gets
its wall time beside the local run's and whether the records are equal.

Projection to 1,000 images at 384×512 on one GPU: the per-image host costs that grow with the image (PNG
encode of x', PNG decode of x' once per attack for all its defenses, each CPU-bound defense on D(x) once per
(dataset, defense) and on every D(x'), full-reference quality on the CPU) are timed here at 384×512 on the
CPU, multiplied by how often the present stage graph does each (read from this run's passes.json), and
added to the per-stage overhead measured above; model passes are counted (scaled from this run per image)
and costed at ``--gpu-pass-ms`` per image-pass, an assumption (no GPU was measured), stated as such.
Writes benchmarks/results/study_scale.json with machine metadata and the load average.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import write_json

CNNIQA_LIVE = ROOT.parent / "shared" / "models" / "cnniqa-live" / "CNNIQA-LIVE"
NET = "benchmark.metrics.cnniqa:CNNIQANet"


def metric_tables() -> list[str]:
    out = ['name = "default"']
    if CNNIQA_LIVE.is_file():
        out.append(f'name = "cnniqa"\nweights = "{CNNIQA_LIVE}"')
    for i, (ch, kers, n) in enumerate([(3, 8, 32), (3, 16, 64), (1, 8, 32), (1, 16, 64), (3, 32, 128),
                                       (1, 32, 128), (3, 50, 256), (1, 50, 256)]):
        out.append(f'name = "torch_module"\nlabel = "net{i}"\nfactory = "{NET}"\nscore_range = [-1, 1]\n'
                   f'kwargs = {{in_channels = {ch}, n_kers = {kers}, n1 = {n}, n2 = {n}}}')
    return out


ATTACKS = ['name = "fgsm"\neps = "4/255"', 'name = "ifgsm"\nsteps = 2', 'name = "pgd"\nsteps = 2',
           'name = "mifgsm"\nsteps = 2', 'name = "amifgsm"\nsteps = 2', 'name = "ioi"',
           'name = "korhonen"\nsteps = 2', 'name = "madc"\nsteps = 2', 'name = "ssah"\nsteps = 2',
           'name = "zhang"\ndistance = "ssim"\nsteps = 2', 'name = "advcf"\nsteps = 2\npieces = 8',
           'name = "stadv"\nsteps = 1', 'name = "square"\nqueries = 20', 'name = "parsimonious"\nqueries = 20']

DEFENSES = (['name = "identity"'] + [f'name = "jpeg"\nquality = {q}' for q in (30, 50, 70, 90)]
            + [f'name = "median"\nkernel = {k}' for k in (3, 5)] + ['name = "flip"', 'name = "bilateral"']
            + [f'name = "gaussian_blur"\nsigma = {s}' for s in (0.5, 1.0, 2.0)]
            + [f'name = "quantize"\nbits = {b}' for b in (3, 4, 5, 6)]
            + [f'name = "random_crop"\nscale = {s}' for s in (0.8, 0.9)]
            + [f'name = "random_noise"\nsigma = {s}' for s in (0.01, 0.03)] + ['name = "random_rotate"']
            + [f'name = "resize"\nscale = {s}' for s in (0.5, 0.75)]
            + ['name = "tv"', 'name = "nlm"', 'name = "unsharp"', 'name = "diffjpeg"',
               'name = "median_smoothing"\nn = 8\nsample_batch = 8',
               'name = "cohen_smoothing"\nn0 = 4\nn = 8\nsample_batch = 8', 'name = "tv"\nweight = 0.1'])
# defenses whose work is host (CPU library) work even on a GPU run: PIL, scikit-image
HOST_DEFENSES = ("jpeg", "tv", "nlm")


def write_images(folder: Path, n: int, size: int) -> None:
    from PIL import Image

    from benchmark.photos import TEST_PHOTOS, TRAIN_PHOTOS, load_photo, square

    folder.mkdir(parents=True)
    photos = (TEST_PHOTOS + TRAIN_PHOTOS)[:n]
    with (folder / "mos.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "mos"])
        for i, p in enumerate(photos):
            arr = (square(load_photo(p), size) * 255).round().byte().permute(1, 2, 0).numpy()
            Image.fromarray(arr).save(folder / f"{p}.png")
            w.writerow([f"{p}.png", 50 + 10 * i])


def config(work: Path, args) -> Path:
    tables = [f'[run]\nname = "study"\noutput_dir = "{work / "runs"}"\ndevice = "cpu"\nbatch_size = 4\n'
              f'image_size = {args.size}\nseed = 0\n',
              f'[[datasets]]\nname = "folder"\nroot = "{work / "images"}"\nmos_csv = "{work / "images" / "mos.csv"}"\n']
    tables += [f"[[metrics]]\n{t}\n" for t in metric_tables()[:args.metrics]]
    tables += [f"[[attacks]]\n{t}\nadaptive = false\n" for t in ATTACKS[:args.attacks]]
    defenses = DEFENSES[:args.defenses]
    tables += [f"[[defenses]]\n{t}\n" + ('label = "tv-w0.1"\n' if t.endswith("0.1") and "tv" in t else "")
               for t in defenses]
    path = work / "study.toml"
    path.write_text("\n".join(tables))
    return path


def cli(args: list[str], threads: int) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "benchmark", "-q", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=False)
    return time.perf_counter() - t0, proc


def stage_records(run: Path) -> list[dict]:
    out = []
    for f in sorted((run / "stages").glob("*/*.json")):
        r = json.loads(f.read_text())
        if "stage_seconds" in r:
            out.append({"kind": r.get("kind", f.parent.name), "seconds": r["stage_seconds"],
                        "passes": r.get("model_passes") or {}, "metric": r.get("metric"),
                        "defense": r.get("defense"), "attack": r.get("attack")})
    return out


def pass_costs(cfg_path: Path, images: torch.Tensor, repeats: int = 5) -> dict[str, dict[str, float]]:
    """Seconds per image of each metric's forward pass, and of its backward pass, on this run's images."""
    from benchmark.config import load_config

    costs = {}
    for spec in load_config(cfg_path).metrics:
        m = spec.build().eval()
        fwd, both = [], []
        for _ in range(repeats):
            with torch.no_grad():
                t0 = time.perf_counter()
                m(images)
                fwd.append(time.perf_counter() - t0)
            x = images.clone().requires_grad_(True)
            t0 = time.perf_counter()
            m(x).sum().backward()
            both.append(time.perf_counter() - t0)
        f, fb = statistics.median(fwd) / len(images), statistics.median(both) / len(images)
        costs[spec.label] = {"forward_s": f, "backward_s": max(fb - f, 0.0)}
    return costs


def host_costs(h: int, w: int, repeats: int = 3) -> dict[str, float]:
    """Seconds per image of the host work that grows with the image, at h×w on this CPU."""
    import numpy as np
    from PIL import Image

    from benchmark import quality
    from benchmark.photos import load_photo
    from benchmark.registry import DEFENSES

    photo = torch.from_numpy(load_photo("astronaut")).permute(2, 0, 1).float() / 255
    x = torch.nn.functional.interpolate(photo[None], size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)
    xa = (x + 4 / 255 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)).sign()).clamp(0, 1)
    arr = (xa[0] * 255).round().byte().permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    data = buf.getvalue()

    def med(fn):
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    out = {"png_encode": med(lambda: Image.fromarray(arr).save(io.BytesIO(), format="PNG")),
           "png_decode": med(lambda: np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))),
           "pair_quality_cpu": med(lambda: quality.pair_quality(xa, x))}
    for name in HOST_DEFENSES:
        d = DEFENSES.get(name)()
        out[f"defense_{name}"] = med(lambda d=d: d(xa))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--metrics", type=int, default=9)
    ap.add_argument("--attacks", type=int, default=14)
    ap.add_argument("--defenses", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the run (OMP_NUM_THREADS)")
    ap.add_argument("--study-images", type=int, default=1000)
    ap.add_argument("--study-size", default="384x512")
    ap.add_argument("--gpu-pass-ms", type=float, default=0.5,
                    help="assumed GPU milliseconds per image-pass at the study size (not measured here)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the run here (default: a temporary folder)")
    ap.add_argument("--note", default="", help="a remark stored in the JSON (e.g. the machine's load)")
    ap.add_argument("--ray-workers", type=int, default=0, help="also run on a Ray instance of this many workers")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "study_scale.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="study_scale_")) if args.keep is None else args.keep
    if work.exists() and args.keep is not None:
        shutil.rmtree(work)
    write_images(work / "images", args.images, args.size)
    cfg = config(work, args)
    load_before = list(os.getloadavg())

    t_import, _ = cli(["validate", str(cfg)], args.threads)  # start-up: imports, config, plugins
    t_run, proc = cli(["run", str(cfg)], args.threads)
    run = work / "runs" / "study"
    if proc.returncode not in (0, 1):
        print(proc.stderr[-4000:], file=sys.stderr)
        return proc.returncode
    t_report, rep = cli(["report", str(run)], args.threads)
    if rep.returncode != 0:
        print(rep.stderr[-4000:], file=sys.stderr)
    written = {p: p.stat().st_size for p in run.rglob("*") if p.is_file() and p.stat().st_mtime >= time.time() - t_report - 1
               and "stages" not in p.parts}
    html = {str(p.relative_to(run)): s for p, s in written.items() if p.suffix in (".html", ".png", ".svg", ".csv", ".md")}

    cells = json.loads((run / "cells.json").read_text())
    n_cells = len(cells) if isinstance(cells, list) else len(cells.get("cells", []))
    passes = json.loads((run / "passes.json").read_text())
    records = stage_records(run)
    from PIL import Image

    images = torch.stack([torch.from_numpy(__import__("numpy").asarray(Image.open(p).convert("RGB")).copy())
                          .permute(2, 0, 1).float() / 255 for p in sorted((work / "images").glob("*.png"))])
    costs = pass_costs(cfg, images)
    kinds: dict[str, dict[str, float]] = {}
    for r in records:
        c = costs.get(r["metric"]) or {"forward_s": 0.0, "backward_s": 0.0}
        model = r["passes"].get("forward", 0) * c["forward_s"] + r["passes"].get("backward", 0) * c["backward_s"]
        k = kinds.setdefault(r["kind"], {"stages": 0, "seconds": 0.0, "model_s": 0.0, "overheads": []})
        k["stages"] += 1
        k["seconds"] += r["seconds"]
        k["model_s"] += model
        k["overheads"].append(r["seconds"] - model)
    for k in kinds.values():
        ov = k.pop("overheads")
        k.update(overhead_s=sum(ov), overhead_median_s=statistics.median(ov), overhead_per_stage_s=sum(ov) / len(ov))
    stage_total = sum(k["seconds"] for k in kinds.values())
    model_total = sum(k["model_s"] for k in kinds.values())
    overhead_total = sum(k["overhead_s"] for k in kinds.values())
    per_cell = {"wall_s": (t_run - t_import) / n_cells, "stage_s": stage_total / n_cells,
                "model_s": model_total / n_cells, "overhead_in_stages_s": overhead_total / n_cells,
                "outside_stages_s": (t_run - t_import - stage_total) / n_cells}
    print(f"{n_cells} cells, {len(records)} stages: run {t_run:.1f} s (import {t_import:.1f} s), stages {stage_total:.1f} s, "
          f"model passes {model_total:.1f} s; per cell {per_cell['wall_s'] * 1e3:.1f} ms wall, "
          f"{per_cell['overhead_in_stages_s'] * 1e3:.1f} ms overhead in stages, "
          f"{per_cell['outside_stages_s'] * 1e3:.1f} ms outside stages")
    report = {"wall_s": t_report, "beyond_import_s": t_report - t_import, "files": len(html),
              "bytes": sum(html.values()), "largest": sorted(html.items(), key=lambda kv: -kv[1])[:5]}
    print(f"report {t_report:.1f} s ({report['beyond_import_s']:.1f} s beyond import), {len(html)} files, "
          f"{report['bytes'] / 1e6:.2f} MB")

    # projection: the present stage graph at study size
    h, w = (int(v) for v in args.study_size.split("x"))
    host = host_costs(h, w)
    n_img, n_m, n_a, n_d = args.study_images, 9, 14, 30
    n_def_adv, n_def_clean, n_attack = n_m * n_a * n_d, n_m * n_d, n_m * n_a
    t_all = passes["totals"]["all"]
    # how often this run decoded an attacked image per image of each attack stage, and purified a clean image
    # per (dataset, defense): 1.0 each when the stage graph does no work twice
    decodes_per_attack_image = t_all["decodes"] / max(1, passes["totals"]["attack"]["stages"] * args.images)
    dx_per_defense_image = (passes["totals"].get("def_quality", {}).get("defense_passes", 0)
                            + passes["totals"]["def_clean"].get("defense_passes", 0)) / max(1, args.defenses * args.images)
    fixed = {k: v["overhead_median_s"] for k, v in kinds.items()}
    names = [d.split('"')[1] for d in DEFENSES]  # the 30 defenses above; the CPU-library ones cost host time
    n_host_def = sum(1 for d in names if d in HOST_DEFENSES)
    mean_host_def = sum(host[f"defense_{d}"] for d in names if d in HOST_DEFENSES) / len(names)
    per_image = passes["totals"]["all"]
    fwd_per_img = per_image["forward"] / args.images / n_cells * (n_m * n_a * n_d)
    bwd_per_img = per_image["backward"] / args.images / n_cells * (n_m * n_a * n_d)
    parts = {  # host work on a GPU run, measured (per-stage overhead here; per-image costs at the study size)
        "stage_fixed_overhead": (n_def_adv * fixed.get("def_adv", 0) + n_def_clean * fixed.get("def_clean", 0)
                                 + n_d * fixed.get("def_quality", 0) + n_attack * fixed.get("attack", 0)
                                 + n_m * fixed.get("clean", 0) + n_def_adv * fixed.get("strip", 0)),
        "png_decode_x_adv": n_attack * n_img * decodes_per_attack_image * host["png_decode"],
        "png_encode_x_adv": n_attack * n_img * host["png_encode"],
        "host_defenses_D(x)_and_D(x')": (n_d * dx_per_defense_image + n_def_adv) * n_img * mean_host_def,
    }
    device = {  # device work: model passes at an assumed cost; quality as it costs on this CPU (a bound)
        "model_passes_at_assumed_gpu_cost": (fwd_per_img + bwd_per_img) * n_img * args.gpu_pass_ms / 1e3,
        "pair_quality_if_computed_on_this_cpu": (n_def_adv + n_d + n_attack) * n_img * host["pair_quality_cpu"],
    }
    projection = {"images": n_img, "size": [h, w], "metrics": n_m, "attacks": n_a, "defenses": n_d,
                  "cells": n_def_adv, "stages": {"clean": n_m, "def_quality": n_d, "attack": n_attack,
                                                 "def_clean": n_def_clean, "def_adv": n_def_adv, "strip": n_def_adv},
                  "decodes_per_attack_image": decodes_per_attack_image,
                  "defense_passes_per_clean_image": dx_per_defense_image,
                  "host_costs_per_image_s": host, "host_defenses_of_30": n_host_def,
                  "stage_overhead_median_s": fixed,
                  "model_passes_scaled": {"forward": fwd_per_img * n_img, "backward": bwd_per_img * n_img,
                                          "note": "this run's cheap attack settings (2 steps, 20 queries), per image"},
                  "gpu_pass_ms_assumed": args.gpu_pass_ms, "host_hours": {k: v / 3600 for k, v in parts.items()},
                  "host_total_hours": sum(parts.values()) / 3600, "host_dominant": max(parts, key=parts.get),
                  "device_hours": {k: v / 3600 for k, v in device.items()}}
    ray_run = None
    if args.ray_workers:
        t_ray, rproc = cli(["run", str(cfg), "--executor", "ray", "--ray-workers", str(args.ray_workers),
                            "--output-dir", str(work / "ray")], args.threads)
        same = None
        if rproc.returncode in (0, 1):
            from benchmark.records import load_records

            keys = ["dataset", "metric", "attack", "defense", "image_id"]
            a, b = (r[[c for c in r.columns if "seconds" not in c]].sort_values(keys).reset_index(drop=True)
                    for r in (load_records(d) for d in (run, work / "ray" / "study")))
            same = bool(a.equals(b))
        else:
            print(rproc.stderr[-4000:], file=sys.stderr)
        ray_run = {"workers": args.ray_workers, "wall_s": t_ray, "exit": rproc.returncode, "records_equal_local": same}
        print(f"ray, {args.ray_workers} workers by stage: {t_ray:.1f} s (local {t_run:.1f} s), records equal: {same}")
    for k, v in {**parts, **device}.items():
        print(f"  {k:40s} {v / 3600:10.1f} h")
    print(f"projection: host work {projection['host_total_hours']:.1f} h, dominated by {projection['host_dominant']}")
    write_json(args.out, {"images": args.images, "size": args.size, "threads": args.threads,
                          "metrics": args.metrics, "attacks": args.attacks, "defenses": args.defenses,
                          "cells": n_cells, "stage_records": len(records), "failed_or_skipped_exit": proc.returncode,
                          "load_average_before": load_before, "load_average_after": list(os.getloadavg()),
                          "note": args.note, "run_wall_s": t_run, "cli_import_s": t_import,
                          "stage_seconds_total": stage_total, "model_seconds_total": model_total,
                          "per_stage_kind": kinds, "per_cell": per_cell, "pass_costs_per_image": costs,
                          "passes_totals": passes["totals"], "report": report, "ray": ray_run,
                          "projection": projection})
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
