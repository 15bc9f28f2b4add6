"""Median smoothing's automatic forward batch is a rule of the device and the image size, never of timing: the
records are the same whatever the machine's speed, and after a resume in a process whose clock runs otherwise.

A CNN's float32 output depends on its batch size (the default model: up to 7.6e-6 on [0, 100] between batches of
1 and 16), so a batch chosen by timing made records depend on how fast the machine was.
"""
from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from benchmark.cli import main
from benchmark.defenses import median_smoothing as msm
from benchmark.defenses.median_smoothing import MedianSmoothing, auto_sample_batch
from benchmark.metrics.default_model import DefaultModel
from benchmark.records import load_records

from conftest import folder_config


def _image(size: int, device: str = "cpu"):
    return SimpleNamespace(shape=(3, size, size), device=SimpleNamespace(type=device))


def test_the_automatic_batch_is_a_rule_of_device_and_size():
    # the largest power of two of copies holding at most 2^16 pixels (CPU) or 2^24 (GPU), capped
    assert [auto_sample_batch(1000, _image(s)) for s in (8, 32, 64, 96, 128, 256, 1024)] == [64, 64, 16, 4, 4, 1, 1]
    assert [auto_sample_batch(1000, _image(s, "cuda")) for s in (64, 224, 256, 512, 1024, 8192)] == \
        [512, 256, 256, 64, 16, 1]
    assert auto_sample_batch(3, _image(32)) == 3 and auto_sample_batch(1, _image(8, "cuda")) == 1
    assert auto_sample_batch(100, _image(64)) == 16 == 2**16 // 64**2


def test_the_model_depends_on_its_batch_so_the_batch_must_not_depend_on_timing():
    """Why the rule exists: the default model's scores of the same images in batches of 16 and of 1 differ."""
    torch.set_num_threads(1)
    model = DefaultModel().eval()
    x = torch.rand(16, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole, one_by_one = model(x), torch.cat([model(x[i:i + 1]) for i in range(16)])
    assert not torch.equal(whole, one_by_one)
    torch.testing.assert_close(whole, one_by_one, rtol=0, atol=1e-4)


class Clock:
    """A fake ``time.perf_counter``: each call advances by ``step(i)`` seconds. Constant steps make large batches
    look fast per sample, growing steps make every later (larger) batch look slow: two machines that would
    time a tuner into different choices."""

    def __init__(self, step):
        self.t, self.i, self.step = 0.0, 0, step

    def __call__(self) -> float:
        self.i += 1
        self.t += self.step(self.i)
        return self.t


FAST_BIG = lambda i: 1.0  # noqa: E731
SLOW_BIG = lambda i: 2.0 ** min(i, 60)  # noqa: E731


def test_samples_do_not_depend_on_the_clock(monkeypatch):
    torch.set_num_threads(1)
    model = DefaultModel().eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    got = []
    for clock in (FAST_BIG, SLOW_BIG):
        monkeypatch.setattr(time, "perf_counter", Clock(clock))
        got.append(MedianSmoothing(n=40).samples(model, x, torch.Generator().manual_seed(1)))
        monkeypatch.undo()
    fixed = MedianSmoothing(n=40, sample_batch=16).samples(model, x, torch.Generator().manual_seed(1))
    assert torch.equal(got[0], got[1]) and torch.equal(got[0], fixed)  # 16 = the rule at 64 px on a CPU
    other = MedianSmoothing(n=40, sample_batch=1).samples(model, x, torch.Generator().manual_seed(1))
    assert not torch.equal(other, fixed)  # a batch of 1 rounds otherwise: the batch matters, the clock does not


def test_an_out_of_memory_batch_is_halved_with_a_warning(monkeypatch, caplog):
    ms = MedianSmoothing(n=20)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    seen = []

    def metric(xb):
        seen.append(len(xb))
        if len(xb) > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return xb.mean(dim=(1, 2, 3))

    ys = ms.samples(metric, x, torch.Generator().manual_seed(2))
    ref = MedianSmoothing(n=20, sample_batch=4).samples(lambda xb: xb.mean(dim=(1, 2, 3)), x,
                                                       torch.Generator().manual_seed(2))
    assert seen[:3] == [16, 8, 4] and set(seen[3:]) == {4} and torch.equal(ys, ref)  # same noise, no copy lost
    assert "do not fit in GPU memory" in caplog.text and "set sample_batch" in caplog.text
    seen.clear()
    ms.samples(metric, x, torch.Generator().manual_seed(2))  # the halved batch is kept for that image size
    assert set(seen) == {4}
    with pytest.raises(torch.cuda.OutOfMemoryError):  # a batch the config fixed is not changed
        MedianSmoothing(n=20, sample_batch=8).samples(metric, x, torch.Generator().manual_seed(2))


TABLES = """
[[metrics]]
name = "default"
[[attacks]]
name = "fgsm"
eps = "4/255"
adaptive = false
[[defenses]]
name = "median_smoothing"
label = "smoothing"
n = 24
"""


def _records(run_dir: Path) -> pd.DataFrame:
    rec = load_records(run_dir)
    return rec[[c for c in rec.columns if "seconds" not in c]].sort_values("image_id").reset_index(drop=True)


def test_records_are_the_same_on_any_clock_and_after_a_resume(tmp_path, image_folder, monkeypatch):
    monkeypatch.setattr("benchmark.reports.build_report", lambda run_dir, **_: Path(run_dir) / "report.html")
    torch.set_num_threads(1)
    cfg = folder_config(tmp_path, "smooth", image_folder, TABLES, limit=2)  # 96 px
    run_dir = tmp_path / "runs" / "smooth"
    monkeypatch.setattr(time, "perf_counter", Clock(FAST_BIG))
    assert main(["run", str(cfg), "--no-progress"]) == 0
    first = _records(run_dir)
    assert first["cert_lo_clean"].notna().all()
    # a resume in a process whose clock runs otherwise recomputes the smoothing stages: the same records
    for kind in ("def_clean", "def_adv"):
        for p in (run_dir / "stages" / kind).glob("*.json"):
            p.unlink()
    monkeypatch.setattr(time, "perf_counter", Clock(SLOW_BIG))
    assert main(["run", str(cfg), "--no-progress", "--resume"]) == 0
    pd.testing.assert_frame_equal(_records(run_dir), first, check_exact=True)
    # the defense stages did run under the second clock, at the rule's batch (4 copies of 96 px on a CPU)
    assert len(list((run_dir / "stages" / "def_adv").glob("*.json"))) == 1
    assert msm.auto_sample_batch(24, torch.zeros(3, 96, 96)) == 4
