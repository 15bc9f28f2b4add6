"""Expected runtime failures and bad scores.

- A write that fails (the disk full mid-file, a file-size limit of the real filesystem) or a lost device ends
  ``run`` and ``report`` with one line that names the file (exit 3), leaves no partial file, and a resume then
  gives the records of an uninterrupted run, bit for bit.
- A metric that returns NaN or infinity for some images fails nothing: each such image is listed with its
  reason (every one, in every batch) and left out of its cells' measures; every other number is kept.
"""
from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import benchmark.store as store_mod
from benchmark.cli import main
from benchmark.errors import EXIT_STOPPED
from benchmark.records import load_records

from conftest import ROOT, folder_config

TABLES = """
[[metrics]]
name = "default"
[[attacks]]
name = "fgsm"
eps = "4/255"
adaptive = false
[[defenses]]
name = "identity"
[[defenses]]
name = "jpeg"
quality = 50
"""


@pytest.fixture(autouse=True)
def no_report(monkeypatch):
    """The report is rendered by the tests that write it on purpose only (it costs seconds)."""
    if os.environ.get("_KEEP_REPORT") != "1":
        monkeypatch.setattr("benchmark.reports.build_report", lambda run_dir, **_: Path(run_dir) / "report.html")


def _records(run_dir: Path) -> pd.DataFrame:
    rec = load_records(run_dir)
    rec = rec[[c for c in rec.columns if "seconds" not in c]]  # wall-clock times differ by nature
    return rec.sort_values(["dataset", "metric", "attack", "defense", "image_id"]).reset_index(drop=True)


def _files(run_dir: Path) -> dict[str, bytes]:
    """The attacked images, by path inside the run."""
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in (run_dir / "stages" / "attack").rglob("*.png")}


def _temp_files(run_dir: Path) -> list[Path]:
    return [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The records and attacked images of an uninterrupted run of the matrix."""
    tmp = tmp_path_factory.mktemp("reference")
    from conftest import write_image_folder

    images = write_image_folder(tmp / "images")
    cfg = folder_config(tmp, "ref", images, TABLES, limit=2, run_extra="batch_size = 1")
    mp = pytest.MonkeyPatch()
    mp.setattr("benchmark.reports.build_report", lambda run_dir, **_: Path(run_dir) / "report.html")
    try:
        assert main(["run", str(cfg), "--no-progress"]) == 0
    finally:
        mp.undo()
    run_dir = tmp / "runs" / "ref"
    return images, _records(run_dir), _files(run_dir)


class FullDisk:
    """``os.fdopen`` of benchmark.store whose files take ``room`` more bytes in all, then fail with ENOSPC after
    writing what fits: a disk that fills in the middle of a file."""

    def __init__(self, room: int, when=lambda path: True):
        self.room, self.when, self.hit = room, when, None
        self.fdopen = os.fdopen

    def __call__(self, fd, mode="r", *a, **k):
        fh = self.fdopen(fd, mode, *a, **k)
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if not self.when(path):
            return fh
        disk = self

        class Writer:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                fh.close()

            def write(self, data):
                n = min(len(data), max(disk.room, 0))
                fh.write(data[:n])
                disk.room -= len(data)
                if n < len(data):
                    fh.flush()
                    disk.hit = path
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return n

            def __getattr__(self, name):
                return getattr(fh, name)

        return Writer()


@pytest.mark.parametrize("room,where", [
    (20000, "an attacked image"),      # inside the attack stage, part of an image written
    (3000, "a stage record"),          # later: part of a stage's JSON written
])
def test_disk_full_mid_run_ends_in_one_line_and_resume_is_exact(room, where, reference, tmp_path, monkeypatch,
                                                                  capsys):
    images, ref_records, ref_files = reference
    cfg = folder_config(tmp_path, "full", images, TABLES, limit=2, run_extra="batch_size = 1")
    run_dir = tmp_path / "runs" / "full"
    kind = ".png" if where == "an attacked image" else ".json"
    disk = FullDisk(room, when=lambda p: "stages" in p.parts and p.name.rsplit(".", 2)[0].endswith(kind))
    monkeypatch.setattr(store_mod.os, "fdopen", disk)
    assert main(["run", str(cfg), "--no-progress"]) == EXIT_STOPPED
    line = _one_line(capsys.readouterr().err)
    final = disk.hit.parent / disk.hit.name[1:].rsplit(".", 2)[0]  # .<name>.<hex>.tmp -> <name>
    assert f"cannot write {final}: No space left on device" in line
    assert f"kept in {run_dir}" in line and "--resume" in line
    assert not _temp_files(run_dir) and not final.exists()  # the partial file is gone, nothing half-written
    assert not (run_dir / "errors").exists()  # the disk failed, not a stage: nothing recorded as failed
    for p in (run_dir / "stages").rglob("*.json"):
        json.loads(p.read_text())
    n_before = len(list((run_dir / "stages").rglob("*.json")))
    monkeypatch.undo()
    monkeypatch.setattr("benchmark.reports.build_report", lambda run_dir, **_: Path(run_dir) / "report.html")
    assert main(["run", str(cfg), "--no-progress", "--resume"]) == 0
    assert len(list((run_dir / "stages").rglob("*.json"))) > n_before
    pd.testing.assert_frame_equal(_records(run_dir), ref_records, check_exact=True)
    assert {k.replace("full", "ref"): v for k, v in _files(run_dir).items()} == ref_files


DEVICE_LOST = '''
from pathlib import Path

import torch

from benchmark.metrics.default_model import DefaultModel
from benchmark.registry import METRICS


@METRICS.register("lost_device_for_test")
class LostDevice(DefaultModel):
    """The default model, whose device fails at its ``fail_at``-th forward pass while the file ``armed`` exists."""

    def __init__(self, armed: str, fail_at: int = 6):
        super().__init__()
        self.armed, self.fail_at, self.calls = armed, fail_at, 0

    def forward(self, x):
        self.calls += 1
        if Path(self.armed).exists() and self.calls == self.fail_at:
            raise torch.AcceleratorError("CUDA error: unspecified launch failure") if hasattr(
                torch, "AcceleratorError") else RuntimeError("CUDA error: unspecified launch failure")
        return super().forward(x)
'''


def test_a_lost_device_stops_the_run_and_resume_completes_it(reference, tmp_path, capsys):
    images, ref_records, _ = reference
    (tmp_path / "lost.py").write_text(DEVICE_LOST)
    armed = tmp_path / "armed"
    armed.touch()
    tables = TABLES.replace('name = "default"', f'name = "lost_device_for_test"\nlabel = "default"\narmed = "{armed}"')
    cfg = folder_config(tmp_path, "lost", images, tables, limit=2,
                        run_extra=f'batch_size = 1\nplugins = ["{tmp_path / "lost.py"}"]')
    assert main(["run", str(cfg), "--no-progress"]) == EXIT_STOPPED
    line = _one_line(capsys.readouterr().err)
    assert "the device failed: CUDA error: unspecified launch failure" in line and "--resume" in line
    run_dir = tmp_path / "runs" / "lost"
    assert not (run_dir / "errors").exists() and not _temp_files(run_dir)
    armed.unlink()
    assert main(["run", str(cfg), "--no-progress", "--resume"]) == 0
    got = _records(run_dir)
    assert set(got["metric"]) == {"default"}
    pd.testing.assert_frame_equal(got, ref_records, check_exact=True)


def _limited(limit: int):
    """A child process whose files may not grow past ``limit`` bytes (RLIMIT_FSIZE): a write past it fails with
    EFBIG, as on a filesystem that is full."""
    def setup():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    return setup


@pytest.mark.slow
def test_report_on_a_real_size_limit_ends_in_one_line(reference, tmp_path, monkeypatch):
    """The file-size limit of the operating system, not a mock: ``run`` writes every stage (small files) and
    stops at the report (a large file); ``report`` likewise; both recover once there is room."""
    images, ref_records, _ = reference
    cfg = folder_config(tmp_path, "fsize", images, TABLES, limit=2, run_extra="batch_size = 1")
    run_dir = tmp_path / "runs" / "fsize"
    import torch

    # as many torch threads as this process (float32 sums in the same order as the reference run)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(torch.get_num_threads())}
    limit = 150_000  # above every stage file and the scratch file of 2 images at 96 px; below report.html
    res = subprocess.run([sys.executable, "-m", "benchmark", "run", str(cfg), "--no-progress"], env=env, check=False,
                         capture_output=True, text=True, timeout=600, preexec_fn=_limited(limit))
    assert res.returncode == EXIT_STOPPED, res.stderr
    line = _one_line(res.stderr)
    assert "File too large" in line and str(run_dir) in line and "--resume" in line
    assert not _temp_files(run_dir)
    pd.testing.assert_frame_equal(_records(run_dir), ref_records, check_exact=True)  # every stage was stored
    res = subprocess.run([sys.executable, "-m", "benchmark", "report", str(run_dir)], env=env, check=False,
                         capture_output=True, text=True, timeout=600, preexec_fn=_limited(limit))
    assert res.returncode == EXIT_STOPPED and "report" in _one_line(res.stderr) and not _temp_files(run_dir)
    res = subprocess.run([sys.executable, "-m", "benchmark", "report", str(run_dir)], env=env, check=False,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert (run_dir / "report.html").stat().st_size > limit


# -- non-finite scores ---------------------------------------------------------------------------
NAN_METRIC = '''
import torch

from benchmark.metrics.default_model import DefaultModel
from benchmark.registry import METRICS


@METRICS.register("NAME")
class NaNOnSome(DefaultModel):
    """The default model, except ``value`` (NaN, inf) for images whose mean red value is one of ``reds``
    (comma-separated; every image when empty)."""

    def __init__(self, reds: str = "", value: float = float("nan")):
        super().__init__()
        self.reds, self.value = [float(r) for r in reds.split(",") if r], value

    def forward(self, x):
        s = super().forward(x)
        red = x[:, 0].mean(dim=(1, 2))
        bad = torch.ones_like(s, dtype=torch.bool) if not self.reds else torch.stack(
            [(red - r).abs() < 1e-5 for r in self.reds]).any(dim=0)
        fill = torch.tensor(self.value, dtype=torch.float64).to(s.dtype)  # 1e39: inf in float32
        return torch.where(bad, fill, s)
'''


def nan_plugin(tmp_path: Path, name: str) -> str:
    (tmp_path / f"{name}.py").write_text(NAN_METRIC.replace("NAME", name))
    return f'plugins = ["{tmp_path / f"{name}.py"}"]'


def test_nan_scores_are_left_out_per_image_and_everything_else_is_kept(tmp_path, image_folder):
    from benchmark.config import load_config
    from benchmark.measures import summarize
    from benchmark.source import ImageSource

    # NaN for the first image of the first batch and the second of the second: in two batches
    probe = load_config(folder_config(tmp_path, "probe", image_folder, TABLES, limit=4, run_extra="batch_size = 2"))
    src = ImageSource.scan(probe.datasets[0], probe.run.image_size, probe.run.size_policy, skipped=[])
    batches = list(src.batches(2))
    bad = sorted([batches[0].ids[0], batches[1].ids[1]])
    reds = ",".join(repr(float(b.x[j, 0].mean())) for b, j in ((batches[0], 0), (batches[1], 1)))
    tables = TABLES.replace('name = "default"', f'name = "nan_for_test"\nlabel = "nanny"\nreds = "{reds}"')
    tables += '[[metrics]]\nname = "default"\n'
    cfg = folder_config(tmp_path, "nan", image_folder, tables, limit=4, mos=True,
                        run_extra=f"batch_size = 2\n{nan_plugin(tmp_path, 'nan_for_test')}")
    assert main(["run", str(cfg), "--no-progress"]) == 0  # no cell fails
    run_dir = tmp_path / "runs" / "nan"
    assert not (run_dir / "errors").exists()
    rec = load_records(run_dir).sort_values(["metric", "defense", "image_id"])
    nanny, default = rec[rec["metric"] == "nanny"], rec[rec["metric"] == "default"]
    assert len(nanny) == 4 * 2 and nanny.loc[nanny["image_id"].isin(bad), "score"].isna().all()
    # the metric's finite scores are kept: the default model's on the same images
    keep = ~nanny["image_id"].isin(bad)
    assert keep.sum() == 4 and nanny.loc[keep, "score"].notna().all()
    for col in ("score", "score_adv", "score_def", "score_adv_def"):  # no NaN leaked into a batch's other image
        assert (nanny.loc[keep, col].to_numpy() == default.loc[keep.to_numpy(), col].to_numpy()).all(), col
    # every non-finite image listed with its reason, once per stage whose scores were not finite: the clean
    # stage and the attack's (the attack's gradient on those images is NaN); JPEG changes the red mean, so the
    # purified images score finite (the images stay left out: their clean score is NaN)
    skipped = json.loads((run_dir / "skipped.json").read_text())
    listed = [s for s in skipped if s.get("metric") == "nanny"]
    assert {s["stage"] for s in listed} == {"clean", "attack"}
    for stage in ("clean", "attack"):
        assert sorted(s["image_id"] for s in listed if s["stage"] == stage) == bad, stage
    assert all("score is nan" in s["reason"] and s["image_id"] in s["what"] for s in listed)
    # the summary leaves exactly those images out: it equals the default model's summary on the other images
    summary = summarize(rec).set_index(["metric", "defense"])
    assert (summary.loc["nanny", "n_images"] == 2).all() and (summary.loc["default", "n_images"] == 4).all()
    assert all(f"2 image(s) left out for a NaN or infinite score: {bad[0]} (score" in r
               for r in summary.loc["nanny", "nan_reasons"])
    ref = summarize(default[~default["image_id"].isin(bad)]).set_index(["metric", "defense"])
    cols = [c for c in ref.columns if c != "nan_reasons" and "seconds" not in c]
    pd.testing.assert_frame_equal(summary.loc["nanny"][cols], ref.loc["default"][cols], check_exact=True)


def test_a_cell_without_any_finite_score_has_nan_measures(tmp_path, image_folder):
    from benchmark.measures import summarize

    # 1e39 is finite in the config and +inf in float32
    tables = TABLES.replace('name = "default"', 'name = "inf_for_test"\nvalue = 1e39')
    cfg = folder_config(tmp_path, "inf", image_folder, tables, limit=2, run_extra=nan_plugin(tmp_path, "inf_for_test"))
    assert main(["run", str(cfg), "--no-progress"]) == 0
    rec = load_records(tmp_path / "runs" / "inf")
    summary = summarize(rec)
    assert len(summary) == 2 and (summary["n_images"] == 0).all() and summary["abs_gain"].isna().all()
    assert all("2 image(s) left out" in r for r in summary["nan_reasons"])
    skipped = json.loads((tmp_path / "runs" / "inf" / "skipped.json").read_text())
    assert {s["image_id"] for s in skipped if s["stage"] == "clean"} == set(rec["image_id"]) and len(rec) == 4
    assert all("score is inf" in s["reason"] for s in skipped)
