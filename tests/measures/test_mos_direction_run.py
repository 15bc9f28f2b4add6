"""Through real runs: the subjective scale's direction reaches the records and orients the correlations
(issue #11.1), and cells of 1–4 images with MOS give a summary and a report, never a traceback (#13)."""
from __future__ import annotations

import csv
import json
import math

import pandas as pd
import pytest

from benchmark.cli import main

from conftest import write_config


def matrix(tmp_path, name: str, datasets: str, metric: str) -> str:
    return write_config(tmp_path, f"""
[run]
name = "{name}"
output_dir = "{tmp_path / 'runs'}"
image_size = 96
{datasets}
{metric}
[[attacks]]
name = "fgsm"
eps = "2/255"
[[defenses]]
name = "identity"
""", name=f"{name}.toml")


def test_cnniqa_against_its_own_scores_as_dmos_is_plus_one(tmp_path, image_folder, cnniqa_weights):
    """The issue's reproduction: MOS = the cnniqa metric's own clean scores (a DMOS-like scale, lower is
    better) with ``mos_lower_better = true``: the metric agrees perfectly with that opinion."""
    metric = f'[[metrics]]\nname = "cnniqa"\nweights = "{cnniqa_weights}"\n'
    first = matrix(tmp_path, "scores", f'[[datasets]]\nname = "folder"\nroot = "{image_folder}"\n', metric)
    assert main(["run", str(first), "--no-progress"]) == 0
    scores = pd.read_csv(tmp_path / "runs" / "scores" / "records.csv")[["image_id", "score"]]
    assert scores["score"].nunique() == 6
    dmos = tmp_path / "dmos.csv"
    with dmos.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "dmos"])
        w.writerows(scores.itertuples(index=False))
    second = matrix(tmp_path, "dmos", f"""[[datasets]]
name = "folder"
root = "{image_folder}"
mos_csv = "{dmos}"
mos_column = "dmos"
mos_lower_better = true
""", metric)
    assert main(["run", str(second), "--no-progress"]) == 0
    run = tmp_path / "runs" / "dmos"
    (clean,) = [json.loads(p.read_text()) for p in (run / "stages" / "clean").glob("*.json")]
    assert clean["mos_lower_better"] is True and clean["metric_meta"]["lower_better"] is True
    records = pd.read_csv(run / "records.csv")
    assert records["mos_lower_better"].all()
    row = pd.read_csv(run / "summary.csv").iloc[0]
    assert f"{row['srocc_clean']:+.3f}" == "+1.000"
    for k in ("krocc_clean", "plcc_raw_clean", "plcc_clean"):
        assert row[k] == pytest.approx(1.0, abs=1e-6), k
    assert row["srocc_clean_lo"] == row["srocc_clean_hi"] == 1.0


def test_cells_of_one_to_four_images_with_mos_run_and_report(tmp_path, image_folder):
    datasets = "".join(f"""[[datasets]]
name = "folder"
root = "{image_folder}"
mos_csv = "{image_folder / 'mos.csv'}"
limit = {n}
""" for n in (1, 2, 3, 4))
    cfg = matrix(tmp_path, "small_n", datasets, '[[metrics]]\nname = "default"\n')
    assert main(["run", str(cfg), "--no-progress"]) == 0
    run = tmp_path / "runs" / "small_n"
    summary = pd.read_csv(run / "summary.csv").sort_values("n_images").set_index("n_images")
    assert list(summary.index) == [1, 2, 3, 4]
    assert summary["abs_gain"].notna().all() and summary["robust_abs_gain"].notna().all()
    assert math.isnan(summary.loc[1, "msu_abs_gain"]) and summary.loc[[2, 3, 4], "msu_abs_gain"].notna().all()
    assert summary.loc[[1, 2], "srocc_clean"].isna().all() and summary.loc[[3, 4], "srocc_clean"].notna().all()
    assert summary["plcc_clean"].isna().all() and summary["srocc_clean_lo"].isna().all()
    assert summary["nan_reasons"].str.contains("bootstrap intervals need 5").all()
    assert summary.loc[3, "nan_reasons"].count("logistic4 mapping needs 5") == 1
    (run / "summary.csv").unlink()
    (run / "report.html").unlink()
    assert main(["report", str(run)]) == 0
    assert (run / "summary.csv").is_file() and (run / "report.html").is_file()
