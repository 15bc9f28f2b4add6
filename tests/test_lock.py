"""The run directory's lock, with two real processes: a second writer is refused naming the holder and
deletes nothing; a reader (``report``) may read a run in progress; a killed holder leaves no stale lock."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.store import RunLock, RunLocked

from conftest import ROOT, write_config

HOLD_PLUGIN = '''
import os
import time
from pathlib import Path

from benchmark.defenses.base import Defense
from benchmark.registry import DEFENSES


@DEFENSES.register("hold_for_lock_test")
class Hold(Defense):
    """The identity, which waits while the file ``hold`` exists (so that a run stays in progress)."""

    def __init__(self, hold: str = ""):
        super().__init__()
        self.hold = hold

    def forward(self, x, *, generator=None):
        Path(self.hold + ".started").touch()
        t0 = time.time()
        while os.path.exists(self.hold) and time.time() - t0 < 300:
            time.sleep(0.05)
        return x
'''


def start_run(cfg: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "BENCHMARK_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "benchmark", "run", str(cfg), "--no-progress", *extra],
                            cwd=cfg.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    t0 = time.time()
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended early (rc {proc.returncode}):\n{proc.stdout.read()}")
        if time.time() - t0 > timeout:
            proc.kill()
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def hold_plugin(tmp_path_factory) -> Path:
    """One plugin file for the module: a file is imported once per process, under a name from its path."""
    path = tmp_path_factory.mktemp("plugin") / "hold_plugin.py"
    path.write_text(HOLD_PLUGIN)
    return path


@pytest.fixture
def held_config(tmp_path, image_folder, hold_plugin) -> tuple[Path, Path]:
    hold = tmp_path / "HOLD"
    cfg = write_config(tmp_path, f"""
[run]
name = "locked"
output_dir = "{tmp_path / 'runs'}"
image_size = 64
plugins = ["{hold_plugin}"]
[[datasets]]
name = "folder"
root = "{image_folder}"
limit = 2
[[metrics]]
name = "default"
[[attacks]]
name = "fgsm"
adaptive = false
[[defenses]]
name = "hold_for_lock_test"
hold = "{hold}"
""")
    return cfg, hold


def snapshot(run_dir: Path) -> dict[str, int]:
    return {str(p.relative_to(run_dir)): p.stat().st_mtime_ns for p in run_dir.rglob("*")
            if p.is_file() and p.name != ".lock"}


def test_second_writer_is_refused_naming_the_holder(held_config, capsys):
    cfg, hold = held_config
    run_dir = cfg.parent / "runs" / "locked"
    hold.touch()
    holder = start_run(cfg)
    try:
        wait_for(Path(str(hold) + ".started"), holder)        # the holder is inside its run, lock held
        info = json.loads((run_dir / ".lock").read_text())
        assert info["pid"] == holder.pid and info["host"] and info["started"]
        before = snapshot(run_dir)
        assert "manifest.json" in before and any(k.startswith("stages") for k in before)
        for flag in ("--resume", "--overwrite"):
            assert main(["run", str(cfg), flag, "--no-progress"]) == 2
            err = capsys.readouterr().err
            assert f"is in use by process {holder.pid}" in err and str(run_dir) in err and "Traceback" not in err
            assert snapshot(run_dir) == before                   # nothing deleted, nothing rewritten
        # a reader may read a run in progress
        assert main(["report", str(run_dir)]) == 0 and (run_dir / "report.html").is_file()
        with pytest.raises(RunLocked, match=f"process {holder.pid}"):
            RunLock(run_dir).acquire()
    finally:
        hold.unlink(missing_ok=True)
        out, _ = holder.communicate(timeout=300)
    assert holder.returncode == 0, out
    # the holder is gone: the lock is free again (its file stays, with the last holder written in it)
    assert main(["run", str(cfg), "--resume", "--no-progress"]) == 0
    assert json.loads((run_dir / ".lock").read_text())["pid"] == os.getpid()


def test_a_killed_holder_leaves_no_stale_lock(held_config):
    cfg, hold = held_config
    run_dir = cfg.parent / "runs" / "locked"
    hold.touch()
    holder = start_run(cfg)
    wait_for(Path(str(hold) + ".started"), holder)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=60)
    assert json.loads((run_dir / ".lock").read_text())["pid"] == holder.pid   # its details are still there
    with RunLock(run_dir) as lock:                                           # but the kernel released the lock
        assert lock.path == run_dir / ".lock"
    hold.unlink()
    assert main(["run", str(cfg), "--resume", "--no-progress"]) == 0
