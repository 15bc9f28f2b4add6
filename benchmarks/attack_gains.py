"""Gains of each attack on the default model at four budgets: runs examples/attack_gains.toml and writes
benchmarks/results/attack_gains.{json,md}. About 10 minutes on 2 CPU cores.

    python benchmarks/attack_gains.py [--config examples/attack_gains.toml] [--device cuda]
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import write_json  # noqa: E402

from benchmark.cli import main as cli  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", type=Path, default=ROOT / "examples" / "attack_gains.toml")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    t0 = time.perf_counter()
    argv = ["-q", "run", str(args.config), "--output-dir", str(args.out / "runs"), "--resume", "--no-progress"]
    rc = cli(argv + (["--device", args.device] if args.device else []))
    s = pd.read_csv(args.out / "runs" / "attack-gains" / "summary.csv")
    s["family"] = s["attack"].str.split("(").str[0]
    s["budget"] = s["linf_attack"].where(s["family"] != "madc", s["psnr_attack"])
    rows = []
    for _, r in s.iterrows():
        rows.append({"attack": r["family"], "setting": r["attack"], "mean_linf_x255": round(r["linf_attack"] * 255, 2),
                     "psnr": round(r["psnr_attack"], 2), "ssim": round(r["ssim_attack"], 4),
                     "abs_gain": round(r["abs_gain"], 4), "msu_abs_gain": round(r["msu_abs_gain"], 3),
                     "msu_ci": [round(r["msu_abs_gain_lo"], 3), round(r["msu_abs_gain_hi"], 3)],
                     "robustness_R": round(r["robustness_R"], 3)})
    table = pd.DataFrame(rows)
    md = table.drop(columns=["msu_ci"]).to_markdown(index=False)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "attack_gains.md").write_text(md + "\n")
    write_json(args.out / "attack_gains.json", {"config": str(args.config), "seconds": time.perf_counter() - t0,
                                                "rows": rows})
    print(md)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
