"""The Ray executor on a real two-node Ray cluster on 127.0.0.1 of the tests' own (``ray start`` in its own
temporary directory, ports, HOME and token: :class:`~benchmark.executors.ray_cluster.LocalRayCluster`): the same
records as the local executor, a worker killed mid-stage and retried, and the user error without Ray. The
cluster starts although the user's ``~/.ray/auth_token`` holds a stale token, stops only its own processes (an
unrelated process that ``ray stop`` would kill survives), and a local Ray instance of the executor writes no
``~/.ray/auth_token``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchmark.cli import main
from benchmark.executors.ray_cluster import AUTH_VARS, LocalRayCluster, RayStartError, ray_cli
from benchmark.records import load_records

from conftest import fgsm_pgd_tables, folder_config, interrupt_defended_stages

CELL = ["dataset", "metric", "attack", "defense", "image_id"]

MATRIX = fgsm_pgd_tables()

CRASH_ONCE = '''
"""Test plugin: the first call anywhere kills its own worker process (no cleanup, as a crash would)."""
import os
from pathlib import Path

from benchmark.defenses.base import Defense
from benchmark.registry import DEFENSES


@DEFENSES.register("crash_once_for_test")
class CrashOnce(Defense):
    """Identity, except that the first forward (marked by the file ``flag``) ends the process."""

    def __init__(self, flag: str):
        super().__init__()
        self.flag = flag

    def forward(self, x, *, generator=None):
        if not Path(self.flag).exists():
            Path(self.flag).write_text(str(os.getpid()))
            os._exit(1)
        return x
'''


def bystanders(root: Path) -> list[subprocess.Popen]:
    """Processes that are not this test's but look like Ray's to ``ray stop`` (a user's own Ray): one whose command
    line names ``default_worker.py``, one whose process name is ``raylet``."""
    raylet = root / "raylet"
    raylet.symlink_to(sys.executable)
    sleep = ["-c", "import time; time.sleep(3600)"]
    return [subprocess.Popen([sys.executable, *sleep, "default_worker.py"], start_new_session=True),
            subprocess.Popen([str(raylet), *sleep], start_new_session=True)]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A head and a second node on 127.0.0.1, one CPU each, of this module's own; always stopped afterwards.

    The user's HOME (a temporary one here) holds a stale ``~/.ray/auth_token``, as an earlier ``ray.init()`` of
    Ray 2.60 leaves it, and two Ray-looking processes run beside: the token must not matter, and after the
    cluster is stopped the token file and those processes must be as they were."""
    pytest.importorskip("ray")
    if ray_cli() is None:
        pytest.skip("the ray command is not installed")
    home = tmp_path_factory.mktemp("home")
    token = home / ".ray" / "auth_token"
    token.parent.mkdir()
    token.write_text("a-stale-token-of-an-earlier-ray-init")
    others = bystanders(tmp_path_factory.mktemp("bystanders"))
    mp = pytest.MonkeyPatch()
    mp.setenv("HOME", str(home))
    for k in AUTH_VARS:
        mp.delenv(k, raising=False)
    cluster = LocalRayCluster(2, num_cpus=1)
    try:
        try:
            cluster.start()
        except RayStartError as exc:  # Ray's own output, not a CalledProcessError
            pytest.fail(str(exc))
        with cluster.driver_env():
            yield cluster.address
    finally:
        cluster.stop()
        mp.undo()
        survived = [p.poll() is None for p in others]
        for p in others:
            p.kill()
            p.wait()
    assert survived == [True, True], "the cluster's teardown stopped a process that was not its own"
    assert token.read_text() == "a-stale-token-of-an-earlier-ray-init" and os.listdir(token.parent) == ["auth_token"]
    assert not cluster.root.exists()


@pytest.fixture(autouse=True)
def records_only(monkeypatch):
    """These tests are about where stages run: the report (tested elsewhere) is not rendered."""
    monkeypatch.setattr("benchmark.reports.build_report", lambda run_dir, **_: Path(run_dir) / "report.html")


@contextmanager
def torch_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _records(run_dir: Path) -> pd.DataFrame:
    rec = load_records(run_dir)
    rec = rec[[c for c in rec.columns if "seconds" not in c]]  # wall-clock times differ by nature
    return rec.sort_values(CELL).reset_index(drop=True)


def _assert_same_records(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    # both sides single-threaded, so float32 sums run in the same order: equal to the last bit
    # (with another thread count they differ in the last bit, relative 1e-7)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def _passes(run_dir: Path) -> dict:
    out = json.loads((run_dir / "passes.json").read_text())
    return {r["key"]: (r["forward"], r["backward"], r["repeat"], r["min_forward"]) for r in out["stages"]}


@pytest.mark.slow
def test_ray_cluster_gives_the_local_records(ray_cluster, tmp_path, image_folder):
    local = folder_config(tmp_path, "local", image_folder, MATRIX, limit=4, mos=True)
    remote = folder_config(tmp_path, "remote", image_folder, MATRIX, limit=4, mos=True)
    with torch_threads(1):  # as each Ray worker (one CPU each): the same float32 summation order
        assert main(["run", str(local), "--no-progress"]) == 0
    assert main(["run", str(remote), "--no-progress", "--executor", "ray", "--address", ray_cluster]) == 0
    a, b = _records(tmp_path / "runs" / "local"), _records(tmp_path / "runs" / "remote")
    assert len(a) == 4 * 2 * 2 and a["score_adv"].notna().all()
    _assert_same_records(a, b)
    # the model passes of every stage are counted where it ran, and are the same
    assert _passes(tmp_path / "runs" / "local") == _passes(tmp_path / "runs" / "remote") != {}
    # every stage computed once: 1 clean, 2 attacks, 2 defended clean, 4 defended attacked
    stages = tmp_path / "runs" / "remote" / "stages"
    assert [len(list((stages / k).glob("*.json"))) for k in ("clean", "attack", "def_clean", "def_adv")] == [1, 2, 2, 4]
    # the attacked images, written through the driver's file actor, are the local run's files byte for byte
    local_files = {p.relative_to(tmp_path / "runs" / "local"): p.read_bytes()
                   for p in (tmp_path / "runs" / "local" / "stages" / "attack").rglob("*.png")}
    assert len(local_files) == 2 * 4 and local_files == {
        p.relative_to(tmp_path / "runs" / "remote"): p.read_bytes() for p in (stages / "attack").rglob("*.png")}
    assert not (tmp_path / "runs" / "remote" / "errors").exists() or not any((tmp_path / "runs" / "remote" / "errors").iterdir())
    # a resume on the cluster has nothing left to do and changes nothing
    before = {p: p.stat().st_mtime_ns for p in stages.rglob("*.json")}
    assert main(["run", str(remote), "--resume", "--no-progress", "--executor", "ray", "--address", ray_cluster]) == 0
    assert {p: p.stat().st_mtime_ns for p in stages.rglob("*.json")} == before


@pytest.mark.slow
def test_ray_runs_independent_stages_of_one_cell_at_once(ray_cluster, tmp_path, image_folder):
    """Stages are the unit of scheduling: with two workers, two stages of one cell (its clean scores and its
    defense's D(x), which need nothing else) are in flight at the same time, and the records equal the local run's."""
    from benchmark.config import load_config
    from benchmark.executors.ray_executor import RayExecutor
    from benchmark.runner import Runner, plan

    runs = {}
    for name in ("local", "remote"):
        cfg = load_config(folder_config(tmp_path, name, image_folder, MATRIX, limit=2))
        run_dir = cfg.run.output_dir / cfg.run.name
        run_dir.mkdir(parents=True)
        executor = RayExecutor(address=ray_cluster, workers=2) if name == "remote" else None
        with torch_threads(1):
            assert Runner(cfg, run_dir, progress=False).run(executor) == 0
        runs[name] = _records(run_dir)
    _assert_same_records(runs["local"], runs["remote"])
    start = {key: t for event, _, key, t in executor.trace if event == "start"}
    end = {key: t for event, _, key, t in executor.trace if event == "end"}
    assert start.keys() == end.keys() and len(start) > 4
    overlapping = [(c.labels(), a, b) for c in plan(cfg) for a in c.keys.values() for b in c.keys.values()
                   if a < b and a in start and b in start and start[a] < end[b] and start[b] < end[a]]
    assert overlapping, executor.trace


@pytest.mark.slow
def test_killed_worker_is_restarted_and_the_run_completes(ray_cluster, tmp_path, image_folder):
    (tmp_path / "crash_once.py").write_text(CRASH_ONCE)
    ran, fresh = tmp_path / "already-crashed", tmp_path / "crash-flag"
    ran.write_text("local run: no crash")

    def matrix(name: str, flag: Path) -> Path:
        tables = MATRIX.split("[[defenses]]")[0] + f"""
[[defenses]]
name = "crash_once_for_test"
label = "crash_once"
flag = "{flag}"
"""
        extra = 'plugins = ["crash_once.py"]'
        return folder_config(tmp_path, name, image_folder, tables, limit=4, run_extra=extra)

    with torch_threads(1):
        assert main(["run", str(matrix("local", ran)), "--no-progress"]) == 0
    assert main(["run", str(matrix("remote", fresh)), "--no-progress", "--executor", "ray",
                 "--address", ray_cluster]) == 0
    assert fresh.is_file()  # a worker did die in the defense stage, and the retry finished it
    _assert_same_records(_records(tmp_path / "runs" / "local"), _records(tmp_path / "runs" / "remote"))


def test_ray_executor_without_ray_is_a_user_error(tmp_path, image_folder, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    cfg = folder_config(tmp_path, "noray", image_folder, MATRIX, limit=2)
    assert main(["run", str(cfg), "--executor", "ray"]) == 2
    assert "pip install -e '.[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "noray").exists()


BROKEN = '''
from benchmark.defenses.base import Defense
from benchmark.registry import DEFENSES


@DEFENSES.register("broken_for_ray_test")
class Broken(Defense):
    """Fails on purpose."""

    def forward(self, x, *, generator=None):
        raise RuntimeError("purifier exploded")
'''


@pytest.mark.slow
def test_failures_and_skips_on_ray_are_recorded_as_locally(ray_cluster, tmp_path, image_folder):
    (tmp_path / "broken.py").write_text(BROKEN)
    tables = """
[[metrics]]
name = "default"
[[metrics]]
name = "cnniqa"
weights = "absent.pt"
optional = true
[[attacks]]
name = "fgsm"
adaptive = false
[[defenses]]
name = "identity"
[[defenses]]
name = "broken_for_ray_test"
"""
    runs = {}
    for name, extra in (("local", []), ("remote", ["--executor", "ray", "--address", ray_cluster])):
        cfg = folder_config(tmp_path, name, image_folder, tables, limit=2, run_extra='plugins = ["broken.py"]')
        with torch_threads(1):
            assert main(["run", str(cfg), "--no-progress", *extra]) == 1  # the broken defense's cell failed
        run_dir = tmp_path / "runs" / name
        errors = sorted((e["stage"], e["defense"], e["error"]) for e in
                        (json.loads(p.read_text()) for p in (run_dir / "errors").glob("*.json")))
        runs[name] = (errors, json.loads((run_dir / "skipped.json").read_text()), _records(run_dir))
    (le, ls, lr), (re_, rs, rr) = runs["local"], runs["remote"]
    assert le == re_ and len(le) == 1 and "purifier exploded" in le[0][2]
    assert ls == rs and "absent.pt" in rs[0]["reason"]
    _assert_same_records(lr, rr)
    assert set(rr["defense"]) == {"identity"} and len(rr) == 2


@pytest.mark.slow
def test_ray_resumes_a_run_interrupted_locally(ray_cluster, tmp_path, image_folder, monkeypatch):
    from benchmark.config import load_config
    from benchmark.runner import Runner

    path = folder_config(tmp_path, "resumed", image_folder, MATRIX, limit=4)
    cfg = load_config(path)
    run_dir = cfg.run.output_dir / cfg.run.name
    run_dir.mkdir(parents=True)
    restore = interrupt_defended_stages(monkeypatch, 3)
    with torch_threads(1), pytest.raises(KeyboardInterrupt):
        Runner(cfg, run_dir, progress=False).run()
    restore()
    stored = {p: p.stat().st_mtime_ns for p in (run_dir / "stages").rglob("*.json")}
    assert stored and len(load_records(run_dir)) < 16
    assert main(["run", str(path), "--resume", "--no-progress", "--executor", "ray", "--address", ray_cluster]) == 0
    assert all(p.stat().st_mtime_ns == t for p, t in stored.items())  # nothing stored was recomputed
    fresh = folder_config(tmp_path, "fresh", image_folder, MATRIX, limit=4)
    with torch_threads(1):
        assert main(["run", str(fresh), "--no-progress"]) == 0
    _assert_same_records(_records(run_dir), _records(tmp_path / "runs" / "fresh"))


@pytest.mark.slow
def test_a_local_ray_instance_writes_no_token_file(tmp_path, image_folder, monkeypatch):
    """``--executor ray`` without an address starts a Ray instance of its own: token authentication with a token
    of this process in the environment, nothing written to ``~/.ray``, the environment restored afterwards."""
    pytest.importorskip("ray")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for k in (*AUTH_VARS, "RAY_ADDRESS"):
        monkeypatch.delenv(k, raising=False)
    cfg = folder_config(tmp_path, "own", image_folder, DEFAULT_TABLES, limit=2)
    assert main(["run", str(cfg), "--no-progress", "--executor", "ray", "--ray-workers", "1"]) == 0
    assert len(load_records(tmp_path / "runs" / "own")) == 2
    assert not (tmp_path / "home" / ".ray").exists()
    assert not any(k in os.environ for k in AUTH_VARS)


DEFAULT_TABLES = """
[[metrics]]
name = "default"
[[attacks]]
name = "fgsm"
adaptive = false
[[defenses]]
name = "identity"
"""
