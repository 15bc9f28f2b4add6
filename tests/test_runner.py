"""End to end on a tiny matrix: records, resume after interruption, failures recorded, reports."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.config import load_config
from benchmark.records import load_records
from benchmark.runner import Runner

from conftest import DEFAULT_FGSM_IDENTITY, folder_config, interrupt_defended_stages, write_config

CELL = ["dataset", "metric", "attack", "defense", "image_id"]


def run_dir_of(cfg_path):
    cfg = load_config(cfg_path)
    return cfg, cfg.run.output_dir / cfg.run.name


def test_small_run_end_to_end(small_matrix, capsys):
    assert main(["run", str(small_matrix), "--no-progress"]) == 0
    _, run_dir = run_dir_of(small_matrix)
    for f in ("manifest.json", "records.csv", "summary.csv", "summary.md", "report.html", "cells.json"):
        assert (run_dir / f).is_file(), f
    rec = pd.read_csv(run_dir / "records.csv")
    assert len(rec) == 6 * 2 * 3 and not rec.duplicated(CELL).any()
    summ = pd.read_csv(run_dir / "summary.csv").set_index(["attack", "defense"])
    pgd, fgsm = "pgd(eps=4/255,steps=5)", "fgsm(eps=4/255)"
    # identity leaves the attack's gain untouched; JPEG takes most of it back
    assert summ.loc[(pgd, "identity"), "robust_abs_gain"] == pytest.approx(summ.loc[(pgd, "identity"), "abs_gain"])
    assert summ.loc[(pgd, "jpeg"), "robust_abs_gain"] < 0.5 * summ.loc[(pgd, "identity"), "abs_gain"]
    assert summ.loc[(pgd, "identity"), "abs_gain"] > summ.loc[(fgsm, "identity"), "abs_gain"]
    assert (rec["linf_attack"] <= 4 / 255 + 1e-6).all()
    html = (run_dir / "report.html").read_text()
    assert "<table" in html and "http" not in html.split("<h2>Provenance")[0].replace("https://", "")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["run"]["seed"] == 0 and manifest["versions"]["torch"]
    # report re-renders from the stored records alone
    (run_dir / "summary.csv").unlink()
    assert main(["report", str(run_dir)]) == 0 and (run_dir / "summary.csv").is_file()


def test_resume_after_interruption_loses_and_duplicates_nothing(small_matrix, tmp_path, monkeypatch):
    cfg, run_dir = run_dir_of(small_matrix)
    run_dir.mkdir(parents=True)
    restore = interrupt_defended_stages(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        Runner(cfg, run_dir, progress=False).run()
    partial = load_records(run_dir)
    assert 0 < len(partial) < 36
    assert not list(run_dir.rglob("*.tmp"))            # nothing half-written
    restore()
    stored = {p.name: p.stat().st_mtime_ns for p in (run_dir / "stages").rglob("*.json")}
    assert main(["run", str(small_matrix), "--resume", "--no-progress"]) == 0
    # finished stages were not recomputed
    assert all((run_dir / "stages").rglob(n).__next__().stat().st_mtime_ns == t for n, t in stored.items())
    resumed = load_records(run_dir)

    fresh_cfg = write_config(tmp_path, small_matrix.read_text().replace('name = "small"', 'name = "fresh"'),
                             name="fresh.toml")
    assert main(["run", str(fresh_cfg), "--no-progress"]) == 0
    fresh = load_records(run_dir.parent / "fresh")
    assert len(resumed) == len(fresh) == 36 and not resumed.duplicated(CELL).any()
    cols = ["score", "score_adv", "score_def", "score_adv_def"]
    a, b = resumed.sort_values(CELL).reset_index(drop=True), fresh.sort_values(CELL).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[CELL + cols], b[CELL + cols])


def test_resume_builds_no_defense_whose_stages_are_stored(small_matrix, monkeypatch):
    from benchmark.defenses.median import MedianFilter

    assert main(["run", str(small_matrix), "--no-progress"]) == 0
    run_dir = run_dir_of(small_matrix)[1]
    cells = json.loads((run_dir / "cells.json").read_text())
    redo = next(c for c in cells if c["defense"].startswith("jpeg"))
    (run_dir / "stages" / "def_adv" / f"{redo['keys']['def_adv']}.json").unlink()

    def refuse(self, *a, **k):
        raise AssertionError("the median defense was built although all its stages are stored")

    cfg = load_config(small_matrix)  # validation builds every attack and defense once; the run must not
    monkeypatch.setattr(MedianFilter, "__init__", refuse)
    assert Runner(cfg, run_dir, progress=False).run() == 0
    assert (run_dir / "stages" / "def_adv" / f"{redo['keys']['def_adv']}.json").is_file()


def test_existing_run_dir_needs_resume_or_overwrite(small_matrix, capsys):
    assert main(["run", str(small_matrix), "--no-progress"]) == 0
    assert main(["run", str(small_matrix), "--no-progress"]) == 2
    assert "--resume" in capsys.readouterr().err


def test_failing_cell_is_recorded_and_the_rest_goes_on(tmp_path, image_folder, capsys):
    plugin = tmp_path / "broken.py"
    plugin.write_text('''
from benchmark.defenses.base import Defense
from benchmark.registry import DEFENSES

@DEFENSES.register("broken_for_test")
class Broken(Defense):
    """Fails on purpose."""
    def forward(self, x, *, generator=None):
        raise RuntimeError("purifier exploded")


from benchmark.metrics.base import Metric
from benchmark.registry import METRICS


@METRICS.register("broken_metric_for_test")
class BrokenMetric(Metric):
    """Builds (validate passes it) and fails when it scores, as a metric whose weights break at run time."""
    def forward(self, x):
        raise RuntimeError("metric exploded")
''')
    cfg = write_config(tmp_path, f"""
[run]
name = "fails"
output_dir = "{tmp_path / 'runs'}"
image_size = 96
plugins = ["broken.py"]
[[datasets]]
name = "folder"
root = "{image_folder}"
limit = 3
[[metrics]]
name = "default"
[[metrics]]
name = "broken_metric_for_test"
[[attacks]]
name = "fgsm"
adaptive = false
[[defenses]]
name = "identity"
[[defenses]]
name = "broken_for_test"
""")
    assert main(["run", str(cfg), "--no-progress"]) == 1
    run_dir = tmp_path / "runs" / "fails"
    errors = [json.loads(p.read_text()) for p in (run_dir / "errors").glob("*.json")]
    msgs = " ".join(e["error"] for e in errors)
    assert "purifier exploded" in msgs and "metric exploded" in msgs
    rec = pd.read_csv(run_dir / "records.csv")
    assert set(rec["defense"]) == {"identity"} and set(rec["metric"]) == {"default"} and len(rec) == 3
    assert "purifier exploded" in (run_dir / "report.html").read_text()


def test_optional_metric_with_missing_weights_is_skipped(tmp_path, image_folder):
    cfg = folder_config(tmp_path, "opt", image_folder, """
[[metrics]]
name = "cnniqa"
weights = "absent.pt"
optional = true
""" + DEFAULT_FGSM_IDENTITY, limit=2)

    assert main(["run", str(cfg), "--no-progress"]) == 0
    skipped = json.loads((tmp_path / "runs" / "opt" / "skipped.json").read_text())
    assert "absent.pt" in skipped[0]["reason"]


def test_lpips_without_backbone_weights_names_the_file(tmp_path, image_folder, monkeypatch):
    pytest.importorskip("lpips")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    from benchmark.perceptual import lpips_model

    lpips_model.cache_clear()
    cfg = folder_config(tmp_path, "lp", image_folder, DEFAULT_FGSM_IDENTITY, run_extra="lpips = true", limit=2)

    assert main(["run", str(cfg), "--no-progress"]) == 1
    errors = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "lp" / "errors").glob("*.json")]
    assert "alexnet" in errors[0]["error"] and str(tmp_path / "torch-home") in errors[0]["error"]


def test_dists_without_weights_names_the_file(tmp_path, image_folder, monkeypatch):
    import pyiqa.utils.download_util as dl

    from benchmark.quality import fr_metric

    monkeypatch.setattr(dl, "DEFAULT_CACHE_DIR", str(tmp_path / "pyiqa-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    fr_metric.cache_clear()
    cfg = folder_config(tmp_path, "ds", image_folder, DEFAULT_FGSM_IDENTITY, run_extra="dists = true", limit=2)

    assert main(["run", str(cfg), "--no-progress"]) == 1
    errors = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "ds" / "errors").glob("*.json")]
    # the first missing file is named with where to put it (DISTS' VGG backbone, then its own weights)
    assert "'dists'" in errors[0]["error"] and str(tmp_path) in errors[0]["error"] and ".pth" in errors[0]["error"]
    fr_metric.cache_clear()
