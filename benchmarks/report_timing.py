"""Wall time of `report` and `leaderboard` on the quickstart run, as a user runs them (fresh processes).

    python benchmarks/report_timing.py [--run runs/quickstart] [--repeats 3]

Without an existing run it first runs examples/quickstart.toml into a temporary folder (minutes on a CPU).
Measured, each ``--repeats`` times in a fresh ``python -m benchmark`` process (Python, torch and pandas
imports included):

- ``report (first)``: ``report`` with the clean-image cache of the image strips removed, as right after
  ``run`` when the dataset must be loaded again; ``report``: later renderings (cache present);
- ``leaderboard (stored summary)``: one run, its summary.csv newer than its stages, so it is reused;
  ``leaderboard (recomputed)``: the same after a stage file is touched, so the summary is computed from
  the records;
- ``import``: ``python -c "import benchmark.reports.leaderboard"``, the floor under every command;

and, in this process, ``build_report`` alone (imports done). Writes benchmarks/results/report_timing.json
with machine metadata and prints a Markdown table; the run directory is copied, never modified.
"""
from __future__ import annotations

import argparse
import os
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


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "quickstart")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "report_timing.json")
    args = ap.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "BENCHMARK_OFFLINE": "1"}
    py = [sys.executable, "-m", "benchmark", "-q"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run_seconds = None
        if not (args.run / "cells.json").is_file():
            print(f"{args.run} is not a run: running examples/quickstart.toml first")
            run_seconds = timed(py + ["run", "examples/quickstart.toml", "--output-dir", str(tmp / "made"),
                                      "--no-progress"], env)
            args.run = tmp / "made" / "quickstart"
        run = tmp / "runs" / "quickstart"
        shutil.copytree(args.run, run)
        stage = next((run / "stages" / "def_adv").glob("*.json"))
        rows: dict[str, list[float]] = {k: [] for k in ("import", "report (first)", "report",
                                                         "leaderboard (stored summary)", "leaderboard (recomputed)")}
        for _ in range(args.repeats):
            rows["import"].append(timed([sys.executable, "-c", "import benchmark.reports.leaderboard"], env))
            shutil.rmtree(run / "cache", ignore_errors=True)
            rows["report (first)"].append(timed(py + ["report", str(run)], env))
            rows["report"].append(timed(py + ["report", str(run)], env))
            rows["leaderboard (stored summary)"].append(timed(py + ["leaderboard", str(run), "-o", str(tmp / "site")],
                                                              env))
            os.utime(stage)  # a stage newer than summary.csv: the leaderboard recomputes the summary
            rows["leaderboard (recomputed)"].append(timed(py + ["leaderboard", str(run), "-o", str(tmp / "site")], env))
            os.utime(run / "summary.csv")
        os.environ.update(HF_HUB_OFFLINE="1", BENCHMARK_OFFLINE="1")
        from benchmark.reports import build_report

        t0 = time.perf_counter()
        build_report(run)
        in_process = time.perf_counter() - t0
        size = (run / "report.html").stat().st_size
        import pandas as pd

        summary = pd.read_csv(run / "summary.csv")
    result = {"run": str(args.run), "cells": len(summary), "images_per_cell": int(summary["n_images"].max()),
              "repeats": args.repeats, "report_bytes": size, "build_report_in_process_s": in_process,
              "quickstart_run_s": run_seconds,
              "seconds": {k: {"median": statistics.median(v), "min": min(v), "max": max(v)} for k, v in rows.items()}}
    write_json(args.out, result)
    print(f"{len(summary)} cells, report.html {size / 1e6:.2f} MB; build_report in process: {in_process:.2f} s")
    print("| command | median s | min s | max s |\n| --- | ---: | ---: | ---: |")
    for k, v in result["seconds"].items():
        print(f"| {k} | {v['median']:.2f} | {v['min']:.2f} | {v['max']:.2f} |")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
