"""Wall time of `report` on a study-sized run, and the size of the pages it writes.

    python benchmarks/report_timing.py [--datasets 2] [--metrics 9] [--families 7] [--budgets 2]
                                       [--adaptive-families 2] [--defenses 40] [--images 20] [--side 256]
                                       [--repeats 2] [--keep DIR]
    python benchmarks/report_timing.py --run runs/<name>        # an existing run instead (copied, never modified)

Writes ``benchmarks/results/report_timing.json`` (``--out``).

By default it builds a synthetic run directory of datasets × metrics × attacks × defenses cells (2 × 9 × 14 × 40 =
10,080: the Guardians benchmark's 30 defenses × 14 attacks × 9 metrics, on two datasets and with more defenses),
with no model: a manifest, cells.json, every stage record (clean, attack, def_clean, def_adv: ``--images`` rows
each with the columns a real run stores, scores drawn from a fixed seed) and every cell's stored ``strip`` (its
record and its PNG files, hard links to a few strips made by :mod:`benchmark.stages.strip`'s own encoder from a
photograph at ``--side`` px). ``--adaptive-families`` of the attack families are adaptive (one attack stage per
defense, as a real run stores them).

Measured, each ``--repeats`` times in a fresh process (imports included), wall and CPU seconds (the CPU time says
what the wall time means on a shared machine):

- ``import``: ``python -c "import benchmark.cli, benchmark.reports"``, the floor under the commands;
- ``report (first)``: ``python -m benchmark report`` with the run's ``cache/`` removed (the stored cell summaries and
  what the table files were written from), as the rendering at the end of ``run``; ``report``: a later rendering;
- ``leaderboard``: ``python -m benchmark leaderboard`` of the run (its summary.csv reused);

and, once in this process, each step of ``build_report`` (records, summary, ranks, pages). Then the pages:
report.html and every report/*.html (count, largest, median, total). Writes benchmarks/results/report_timing.json
with machine metadata and the load average, and prints Markdown tables.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import write_json  # noqa: E402

QUALITY = ("psnr", "ssim", "ms_ssim", "psnr_skimage", "ssim_skimage")


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, allow_nan=True))


def strip_pool(side: int, n: int = 3) -> list[dict[str, bytes]]:
    """``n`` strips (name -> PNG bytes) made by the strip stage's encoder: a photograph, a 4/255 sign perturbation,
    a blur as the defense."""
    import torch
    import torch.nn.functional as F

    from benchmark.photos import load_photo, square
    from benchmark.stages.strip import amplification, crops, difference, largest_region, png

    pool = []
    for k, photo in enumerate(("astronaut", "coffee", "rocket")[:n]):
        x = square(load_photo(photo), side)
        g = torch.Generator().manual_seed(k)
        xa = (x + 4 / 255 * torch.sign(torch.randn(x.shape, generator=g))).clamp(0, 1).mul(255).round().div(255)
        d = F.avg_pool2d(xa[None], 3, 1, 1, count_include_pad=False)[0]
        region = largest_region(xa - x)
        pool.append({name: png(t, None if name == "zoom" else 256)[0] for name, t in {
            "clean": x, "attacked": xa, "purified": d, "diff_attacked": difference(xa, x, amplification(xa - x)),
            "diff_purified": difference(d, x, amplification(d - x)), "zoom": crops([x, xa, d], region)}.items()})
    return pool


def synthetic_run(run: Path, *, datasets: int, metrics: int, families: int, budgets: int, adaptive_families: int,
                  defenses: int, images: int, side: int) -> int:
    """Write a synthetic run directory into ``run`` (see the module docstring); returns its number of cells."""
    from benchmark.store import TOOL, content_key

    rng = np.random.default_rng(0)
    ids = [f"img{i:04d}.png" for i in range(images)]
    eps = [2 * (b + 1) for b in range(budgets)]
    attacks = [(f"att{f}(eps={e}/255)" + ("+adaptive" if f >= families - adaptive_families else ""), f, e)
               for f in range(families) for e in eps]
    defs = ["identity"] + [f"def{d}(strength={d})" for d in range(1, defenses)]
    manifest = {"tool": TOOL, "name": run.name, "written": "2026-01-01T00:00:00+00:00", "device": "cpu",
                "versions": {TOOL: "synthetic"}, "git_commit": None,
                "run": {"seed": 0, "batch_size": 8, "image_size": [side, side], "size_policy": "resize", "device": "cpu"},
                "plugins": {
                    "datasets": [{"name": "synthetic", "label": f"ds{i}", "params": {}} for i in range(datasets)],
                    "metrics": [{"name": f"m{i}", "label": f"m{i}", "params": {}} for i in range(metrics)],
                    "attacks": [{"name": f"att{f}", "label": a, "params": {"eps": e / 255},
                                 "resolved_params": {"eps": e / 255, "direction": "increase"}} for a, f, e in attacks],
                    "defenses": [{"name": d.split("(")[0], "label": d, "params": {}} for d in defs]}}
    _write(run / "manifest.json", manifest)
    pool = [{name: run / "pool" / f"{k}-{name}.png" for name in p} for k, p in enumerate(strip_pool(side))]
    for k, p in enumerate(strip_pool(side)):
        for name, data in p.items():
            pool[k][name].parent.mkdir(parents=True, exist_ok=True)
            pool[k][name].write_bytes(data)
    sizes = {name: os.path.getsize(path) for name, path in pool[0].items()}
    st = run / "stages"
    cells = []
    mos = rng.uniform(20, 80, images)
    for di in range(datasets):
        ds = f"ds{di}"
        for mi in range(metrics):
            m, lower = f"m{mi}", mi % 2 == 1
            sign = -1.0 if lower else 1.0
            s = (100 - mos if lower else mos) + rng.normal(0, 8, images)
            clean_key = content_key({"stage": "clean", "d": ds, "m": m})
            _write(st / "clean" / f"{clean_key}.json", {
                "key": clean_key, "kind": "clean", "dataset": ds, "metric": m, "mos_lower_better": False,
                "metric_meta": {"lower_better": lower, "range_lo": 0.0, "range_hi": 100.0, "differentiable": True},
                "records": [{"image_id": i, "score": float(v), "mos": float(o)} for i, v, o in zip(ids, s, mos)]})
            shifts = {d: rng.normal(0, 1 + k % 5, images) for k, d in enumerate(defs)}
            dc_keys = {}
            for k, d in enumerate(defs):
                dc_keys[d] = content_key({"stage": "def_clean", "d": ds, "m": m, "f": d})
                sd = s + (0 if k == 0 else shifts[d])
                _write(st / "def_clean" / f"{dc_keys[d]}.json", {
                    "key": dc_keys[d], "kind": "def_clean", "dataset": ds, "metric": m, "defense": d,
                    "defense_meta": {"baseline": k == 0, "stochastic": k % 3 == 1, "changes_geometry": False,
                                     "certified": False, "differentiable": True},
                    "records": [{"image_id": i, "score_def": float(v), "seconds_def_clean": 0.01,
                                 **{f"{q}_def_clean{a}": (100.0 if k == 0 else 30.0 + k % 7) if q.startswith("psnr")
                                    else (1.0 if k == 0 else 0.9) for q in QUALITY for a in ("", "_aligned")}}
                                for i, v in zip(ids, sd)]})
            for a, f, e in attacks:
                adaptive = a.endswith("+adaptive")
                gain = rng.uniform(2, 15, images) * e / 4
                att_keys = {d: content_key({"stage": "attack", "d": ds, "m": m, "a": a, **({"f": d} if adaptive else {})})
                            for d in defs}
                for d in (defs if adaptive else defs[:1]):
                    _write(st / "attack" / f"{att_keys[d]}.json", {
                        "key": att_keys[d], "kind": "attack", "dataset": ds, "metric": m, "attack": a,
                        "attack_meta": {"adaptive": adaptive, "budget": e / 255, "budget_unit": "linf",
                                        "threat_model": "linf", "eot_samples": 1 if adaptive else 0,
                                        "image_format": "png"},
                        "records": [{"image_id": i, "score_adv": float(v + sign * g), "linf_attack": e / 255,
                                     "l2_attack": 0.5, **{f"{q}_attack": 40.0 if q.startswith("psnr") else 0.98
                                                          for q in QUALITY}} for i, v, g in zip(ids, s, gain)]})
                for k, d in enumerate(defs):
                    keys = {"clean": clean_key, "attack": att_keys[d if adaptive else defs[0]],
                            "def_clean": dc_keys[d],
                            "def_adv": content_key({"stage": "def_adv", "d": ds, "m": m, "a": a, "f": d})}
                    keys["strip"] = content_key({"stage": "strip", "def_adv": keys["def_adv"]})
                    removed = 0.0 if k == 0 else (k % 10) / 10
                    sad = s + (0 if k == 0 else shifts[d]) + sign * gain * (1 - removed)
                    _write(st / "def_adv" / f"{keys['def_adv']}.json", {
                        "key": keys["def_adv"], "kind": "def_adv", "dataset": ds, "metric": m, "attack": a, "defense": d,
                        "defense_meta": {"baseline": k == 0, "stochastic": k % 3 == 1, "changes_geometry": False,
                                         "certified": False, "differentiable": True},
                        "records": [{"image_id": i, "score_adv_def": float(v), "seconds_def_adv": 0.01,
                                     **{f"{q}_def_adv{x}": (40.0 if k == 0 else 30.0 + k % 7) if q.startswith("psnr")
                                        else (0.98 if k == 0 else 0.9) for q in QUALITY for x in ("", "_aligned")}}
                                    for i, v in zip(ids, sad)]})
                    p = pool[(di + mi) % len(pool)]
                    names = [n for n in p if k or n not in ("purified", "diff_purified")]
                    folder = st / "strip" / keys["strip"]
                    folder.mkdir(parents=True)
                    files = {}
                    for n in names:
                        fname = f"{n}-{keys['strip'][:10]}.png"
                        os.link(p[n], folder / fname)
                        files[n] = {"file": fname, "width": side if n != "zoom" else 32 * 3 + 2,
                                    "height": side if n != "zoom" else 32, "bytes": sizes[n]}
                    _write(st / "strip" / f"{keys['strip']}.json", {
                        "key": keys["strip"], "kind": "strip", "dataset": ds, "metric": m, "attack": a, "defense": d,
                        "version": 1, "image_id": ids[len(ids) // 2], "pick": "the median clean score",
                        "width": side, "height": side, "scaled": False, "max_side": 256, "zoom": 4,
                        "files": files, "why": "", "why_purified": "" if k else "D(x') = x'",
                        "scores": {"score": 50.0, "score_adv": 60.0, "score_def": 51.0, "score_adv_def": 55.0},
                        "psnr": {"attack": {"stored": 40.0}, "def_adv": {"stored": 31.0}}, "amp": {"attacked": 32,
                                 "purified": 4}, "linf": {"attacked": e / 255, "purified": 0.1},
                        "region": [0, 0, 32], "changes_geometry": False})
                    cells.append({"dataset": ds, "metric": m, "attack": a, "defense": d, "keys": keys})
    _write(run / "cells.json", cells)
    _write(run / "skipped.json", [])
    return len(cells)


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the child's) of one command."""
    import resource

    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def phases(run: Path) -> dict[str, dict[str, float]]:
    """Wall and CPU seconds of each step of ``build_report``, in this process (imports done)."""
    from benchmark.records import load_records
    from benchmark.reports.html import render_html
    from benchmark.reports.runinfo import attach_direction, complete_summary
    from benchmark.reports.summaries import cell_summaries
    from benchmark.reports.tables import with_ranks

    out, state = {}, {}

    def step(name, fn):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        out[name] = {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}
        return result

    records = step("load_records", lambda: attach_direction(load_records(run), run))
    summary = step("summary (stored rows)", lambda: complete_summary(cell_summaries(records, run), records, run))
    summary, by_cell, ranked = step("bootstrap and ranks", lambda: with_ranks(summary, records, run))
    step("render_html", lambda: render_html(run, summary, records, by_cell=by_cell, ranked=ranked))
    state["records"] = len(records)
    return out, state


def page_sizes(run: Path) -> dict:
    pages = sorted((run / "report").glob("*.html")) if (run / "report").is_dir() else []
    sizes = [p.stat().st_size for p in pages]
    return {"report_html_bytes": (run / "report.html").stat().st_size, "section_pages": len(pages),
            "section_page_bytes": {"max": max(sizes, default=0), "median": statistics.median(sizes) if sizes else 0,
                                   "total": sum(sizes)}}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, help="time this run (copied) instead of a synthetic one")
    for name, default in (("datasets", 2), ("metrics", 9), ("families", 7), ("budgets", 2), ("adaptive-families", 2),
                          ("defenses", 40), ("images", 20), ("side", 256), ("repeats", 2)):
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--keep", type=Path, help="build the synthetic run here and keep it")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "report_timing.json")
    args = ap.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "BENCHMARK_OFFLINE": "1"}
    os.environ.update(HF_HUB_OFFLINE="1", BENCHMARK_OFFLINE="1")
    with tempfile.TemporaryDirectory() as tmp:
        run = (args.keep or Path(tmp)) / "study"
        shape = None
        t0 = time.perf_counter()
        if args.run:
            shutil.copytree(args.run, run)
        else:
            if run.exists():
                shutil.rmtree(run)
            shape = {k: getattr(args, k) for k in ("datasets", "metrics", "families", "budgets", "adaptive_families",
                                                    "defenses", "images", "side")}
            synthetic_run(run, **shape)
        build_s = time.perf_counter() - t0
        py = [sys.executable, "-m", "benchmark", "-q"]
        steps = {"import": [sys.executable, "-c", "import benchmark.cli, benchmark.reports"],
                 "report (first)": py + ["report", str(run)], "report": py + ["report", str(run)],
                 "leaderboard": py + ["leaderboard", str(run), "-o", str(Path(tmp) / "site")]}
        rows: dict[str, list[tuple[float, float]]] = {k: [] for k in steps}
        for _ in range(args.repeats):
            for name, cmd in steps.items():
                if name == "report (first)":   # as at the end of `run`: no cell summary stored yet
                    shutil.rmtree(run / "cache", ignore_errors=True)
                rows[name].append(timed(cmd, env))
        in_process, state = phases(run)
        pages = page_sizes(run)
        cells = len(json.loads((run / "cells.json").read_text()))
    result = {"run": str(args.run) if args.run else "synthetic", "shape": shape, "cells": cells,
              "records": state["records"], "build_s": build_s, "repeats": args.repeats,
              "in_process_s": in_process, **pages,
              "seconds": {k: {"median_wall": statistics.median(w for w, _ in v), "min_wall": min(w for w, _ in v),
                              "median_cpu": statistics.median(c for _, c in v)} for k, v in rows.items()},
              "load_average": os.getloadavg()}
    write_json(args.out, result)
    print(f"{cells} cells, {state['records']} records; built in {build_s:.0f} s; load average {os.getloadavg()[0]:.1f}")
    print(f"report.html {pages['report_html_bytes'] / 1e6:.2f} MB; {pages['section_pages']} section pages, largest "
          f"{pages['section_page_bytes']['max'] / 1e6:.2f} MB, median {pages['section_page_bytes']['median'] / 1e6:.2f} "
          f"MB, total {pages['section_page_bytes']['total'] / 1e6:.1f} MB")
    print("| step (in process) | wall s | CPU s |\n| --- | ---: | ---: |")
    for k, v in in_process.items():
        print(f"| {k} | {v['wall']:.1f} | {v['cpu']:.1f} |")
    print("| command (fresh process) | median wall s | min wall s | median CPU s |\n| --- | ---: | ---: | ---: |")
    for k, v in result["seconds"].items():
        print(f"| {k} | {v['median_wall']:.1f} | {v['min_wall']:.1f} | {v['median_cpu']:.1f} |")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
