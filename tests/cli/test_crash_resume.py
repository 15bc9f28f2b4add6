"""Resume is exact after SIGKILL: a small matrix is killed at several points (after k stage records have
appeared), resumed with ``--resume`` each time, and its records.csv and summary.csv are compared with an
uninterrupted run's: equal cell for cell (timing columns aside), nothing half-written left behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from benchmark.stages.graph import RECORD_KINDS

from conftest import ROOT, fgsm_pgd_tables, write_config

pytestmark = pytest.mark.slow

SLOW_PLUGIN = '''
import time

from benchmark.defenses.base import Defense
from benchmark.registry import DEFENSES


@DEFENSES.register("slow_for_crash_test")
class Slow(Defense):
    """The identity, taking ``seconds`` per batch: widens the windows in which a kill lands mid-stage."""

    def __init__(self, seconds: float = 0.3):
        super().__init__()
        self.seconds = seconds

    def forward(self, x, *, generator=None):
        time.sleep(self.seconds)
        return x
'''
N_STAGES = 1 + 2 + 2 + 4   # clean; 2 attacks; 2 defenses on clean images; 2 × 2 on attacked images
KILL_AFTER = (1, 3, 5, 7)  # stage records stored when each SIGKILL is sent


def matrix(tmp_path: Path, image_folder: Path, output: str) -> Path:
    return write_config(tmp_path, f"""
[run]
name = "crash"
output_dir = "{tmp_path / output}"
image_size = 64
batch_size = 2
plugins = ["slow_plugin.py"]
[[datasets]]
name = "folder"
root = "{image_folder}"
mos_csv = "{image_folder / 'mos.csv'}"
limit = 4{fgsm_pgd_tables(defenses=("jpeg", "slow_for_crash_test"))}""", name=f"{output}.toml")


def command(cfg: Path, *extra: str) -> tuple[list[str], dict]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "BENCHMARK_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return [sys.executable, "-m", "benchmark", "run", str(cfg), "--no-progress", *extra], env


def stored(run_dir: Path) -> int:
    """Stored stage records of the kinds the per-image records are made of (def_quality and strip aside)."""
    return sum(len(list((run_dir / "stages" / kind).glob("*.json"))) for kind in RECORD_KINDS)


def run_and_kill(cfg: Path, run_dir: Path, k: int, *extra: str) -> tuple[bool, int]:
    """Start the run, SIGKILL it once ``k`` stage records are stored; (was it still running, records then)."""
    argv, env = command(cfg, *extra)
    proc = subprocess.Popen(argv, cwd=cfg.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while proc.poll() is None and stored(run_dir) < k and time.time() - t0 < 600:
        time.sleep(0.01)
    running = proc.poll() is None
    if running:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=120)
    return running, stored(run_dir)


def tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for name in ("records.csv", "summary.csv"):
        df = pd.read_csv(run_dir / name)
        timing = [c for c in df.columns if "seconds" in c]     # wall-clock times differ between runs
        out[name] = df.drop(columns=timing).sort_values(
            [c for c in ("dataset", "metric", "attack", "defense", "image_id") if c in df]).reset_index(drop=True)
    return out


def test_sigkill_at_several_points_then_resume_gives_the_uninterrupted_records(tmp_path, image_folder):
    (tmp_path / "slow_plugin.py").write_text(SLOW_PLUGIN)
    cfg = matrix(tmp_path, image_folder, "killed")
    run_dir = tmp_path / "killed" / "crash"
    kills = [run_and_kill(cfg, run_dir, k, *(("--resume",) if i else ())) for i, k in enumerate(KILL_AFTER)]
    # the kills landed mid-run, at growing numbers of stored stages
    assert sum(running for running, _ in kills) >= 3, kills
    assert all(n < N_STAGES for running, n in kills if running), kills
    argv, env = command(cfg, "--resume")
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert stored(run_dir) == N_STAGES and not list(run_dir.rglob("*.tmp"))

    fresh_cfg = matrix(tmp_path, image_folder, "fresh")
    argv, env = command(fresh_cfg)
    fresh = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr

    resumed, uninterrupted = tables(run_dir), tables(tmp_path / "fresh" / "crash")
    assert len(resumed["records.csv"]) == 4 * 2 * 2 and len(resumed["summary.csv"]) == 4
    for name in resumed:
        pd.testing.assert_frame_equal(resumed[name], uninterrupted[name], check_exact=True)
