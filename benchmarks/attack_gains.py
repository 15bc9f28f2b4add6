"""Gains of every attack on the default model, each at budgets in its own unit: runs examples/attack_gains.toml
and writes benchmarks/results/attack_gains.{json,md} (the budget in the attack's unit, the measured L∞, PSNR and
SSIM, the gains, and the metric's forward/backward passes per image in the attack stage). About 25 minutes on 2
busy CPU cores.

    python benchmarks/attack_gains.py [--config examples/attack_gains.toml] [--device cuda] [--only madc ...]

``--only`` runs the named attacks of the config alone (the same tables, the others left out), into a run of
its own beside the config (removed afterwards), to re-measure some rows after a change to those attacks.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import write_json  # noqa: E402

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from benchmark.attacks.base import BUDGET_UNITS  # noqa: E402
from benchmark.cli import main as cli  # noqa: E402
from benchmark.registry import number_text  # noqa: E402


def budget_text(b: float) -> str:
    """``8/255`` where a budget below 1 is k/255 (also when written as a decimal), else 4 significant digits."""
    k = round(b * 255)
    if 0 < b < 1 and abs(b * 255 - k) < 1e-6:
        return f"{k}/255"
    text = number_text(b)
    return text if "/" in text or len(text) <= 6 else f"{b:.4g}"


def only(config: Path, names: list[str]) -> Path:
    """A copy of ``config`` beside it (relative paths keep their meaning) with only the ``[[attacks]]`` tables
    named ``names``, and its run named ``<name>-only``."""
    chunks, cur = [], []
    for line in config.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.startswith("["):
            chunks.append(cur)
            cur = []
        cur.append(line)
    chunks.append(cur)
    kept = [c for c in chunks if not (c and c[0].split("#")[0].strip() == "[[attacks]]" and not any(
        line.split("#")[0].strip() in (f'name = "{n}"' for n in names) for line in c))]
    text = "".join(line for c in kept for line in c)
    run_name = tomllib.loads(text)["run"]["name"]
    text = text.replace(f'name = "{run_name}"', f'name = "{run_name}-only"', 1)
    out = config.with_name(f".{config.stem}-only.toml")
    out.write_text(text, encoding="utf-8")
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", type=Path, default=ROOT / "examples" / "attack_gains.toml")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--device", default=None)
    ap.add_argument("--only", nargs="+", default=None, metavar="ATTACK", help="run only these attacks' tables")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    t0 = time.perf_counter()
    config = only(args.config, args.only) if args.only else args.config
    try:
        argv = ["-q", "run", str(config), "--output-dir", str(args.out / "runs"), "--resume", "--no-progress"]
        rc = cli(argv + (["--device", args.device] if args.device else []))
        run_dir = args.out / "runs" / tomllib.loads(config.read_text(encoding="utf-8"))["run"]["name"]
    finally:
        if config != args.config:
            config.unlink()
    s = pd.read_csv(run_dir / "summary.csv")
    s = s[s["defense"] == "identity"] if "identity" in set(s["defense"]) else s
    units = pd.read_csv(run_dir / "records.csv", usecols=["attack", "budget_unit"]).groupby("attack")[
        "budget_unit"].first()
    passes: dict[str, dict] = {}
    for st in json.loads((run_dir / "passes.json").read_text())["stages"]:
        if st["stage"] == "attack":
            p = passes.setdefault(st["attack"], {"forward": 0, "backward": 0})
            p["forward"] += st["forward"]
            p["backward"] += st["backward"]
    rows = []
    for _, r in s.iterrows():
        unit = units.get(r["attack"], "")
        n, p = int(r["n_images"]), passes.get(r["attack"], {})
        rows.append({"attack": r["attack"].split("(")[0], "setting": r["attack"],
                     "budget": f"{budget_text(float(r['budget']))} {BUDGET_UNITS[unit][0]}"
                     if unit in BUDGET_UNITS and pd.notna(r["budget"]) else "–",
                     "mean_linf_x255": round(r["linf_attack"] * 255, 2),
                     "psnr": round(r["psnr_attack"], 2), "ssim": round(r["ssim_attack"], 4),
                     "abs_gain": round(r["abs_gain"], 4), "msu_abs_gain": round(r["msu_abs_gain"], 3),
                     "msu_ci": [round(r["msu_abs_gain_lo"], 3), round(r["msu_abs_gain_hi"], 3)],
                     "robustness_R": round(r["robustness_R"], 3),
                     "forward_per_image": round(p["forward"] / n, 1) if p and n else None,
                     "backward_per_image": round(p["backward"] / n, 1) if p and n else None})
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
