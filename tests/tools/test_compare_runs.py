"""compare_runs on real tiny runs: a copy and a rerun are identical (timing aside), another seed or a stage that
failed on one side only is a difference, a path that is not a run directory is bad input."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import write_config, write_image_folder

from benchmark.config import load_config
from benchmark.records import load_records
from benchmark.runner import Runner
from benchmark.store import RunStore
from benchmark.tools.compare_runs import compare, is_timing, main

MATRIX = """
[run]
name = "{name}"
output_dir = "{out}"
image_size = 48
batch_size = 2
seed = {seed}

[[datasets]]
name = "folder"
root = "{images}"
limit = 2

[[metrics]]
name = "default"

[[attacks]]
name = "fgsm"
eps = "4/255"
adaptive = false

[[attacks]]
name = "pgd"
eps = "4/255"
steps = 2
adaptive = false

[[defenses]]
name = "identity"

[[defenses]]
name = "jpeg"
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Three runs of one 2-image matrix: ``a``, its rerun ``rerun`` (same seed) and ``seed1`` (another seed: PGD's
    random start moves, FGSM has none)."""
    root = tmp_path_factory.mktemp("compare")
    images = write_image_folder(root / "images", n=2)
    out = {}
    for name, seed in (("a", 0), ("rerun", 0), ("seed1", 1)):
        cfg = write_config(root, MATRIX.format(name=name, out=root / "runs", seed=seed, images=images), f"{name}.toml")
        out[name] = root / "runs" / name
        assert Runner(load_config(cfg), out[name], progress=False).run() == 0   # the records; no report needed
    return out


def test_a_copy_is_identical(runs, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(runs["a"], copy)
    assert main([str(runs["a"]), str(copy)]) == 0
    text = capsys.readouterr().out
    n_rows, n_cols = len(load_records(runs["a"])), len(load_records(runs["a"]).columns)
    assert n_rows == 2 * 2 * 2   # 2 images x 2 attacks x 2 defenses
    compared = n_cols - 5 - 2    # less the key (cell + image) and the two timing columns
    assert f"records: {n_rows} rows x {compared} columns = {n_rows * compared} cells compared" in text
    assert "planned cells: 4 in A, 4 in B, the same" in text
    assert text.rstrip().endswith("IDENTICAL")


def test_a_rerun_is_identical_timing_aside(runs):
    ra, rb = load_records(runs["a"]), load_records(runs["rerun"])
    cmp = compare(runs["a"], runs["rerun"])
    assert cmp.identical, cmp.cells[:3]
    assert set(cmp.ignored) == {"seconds_def_clean", "seconds_def_adv"}
    assert "score_adv" in cmp.columns and not any(is_timing(c) for c in cmp.columns)
    assert len(ra) == len(rb) == cmp.rows


def test_another_seed_changes_pgd_scores_only(runs, capsys):
    assert main([str(runs["a"]), str(runs["seed1"]), "--show", "2"]) == 1
    text = capsys.readouterr().out
    cmp = compare(runs["a"], runs["seed1"])
    changed_attacks = {key[2] for _, key, _, _ in cmp.cells}
    assert changed_attacks == {"pgd(eps=4/255,steps=2)"}   # FGSM has no random start: its rows are the same
    assert {"score_adv", "score_adv_def"} <= {c for c, *_ in cmp.cells}
    assert not any(cmp.rows_only) and not any(cmp.columns_only)
    c, key, x, y = cmp.cells[0]
    assert x != y and f"{c} {list(key)}: A {x!r}, B {y!r}" in text
    assert f"differing cells: {len(cmp.cells)} in " in text and text.rstrip().endswith("DIFFERENT")


def test_a_stage_failed_on_one_side_only_is_a_difference(runs, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(runs["a"], copy)
    RunStore(copy).save_error("0123abcd", {"stage": "def_adv", "dataset": "folder", "metric": "default",
                                           "attack": "fgsm(eps=4/255)", "defense": "jpeg",
                                           "error": "RuntimeError: boom", "traceback": "..."})
    assert main([str(runs["a"]), str(copy)]) == 1
    text = capsys.readouterr().out
    assert "failed stages: 0 in A, 1 in B" in text and "RuntimeError: boom" in text


def test_a_missing_run_is_bad_input(runs, tmp_path, capsys):
    assert main([str(runs["a"]), str(tmp_path / "nowhere")]) == 2
    assert f"RUN_B {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err
    assert main([str(tmp_path), str(runs["a"])]) == 2
    assert "is not a run directory (no cells.json)" in capsys.readouterr().err


def test_timing_columns_come_from_the_schema():
    assert is_timing("seconds_def_adv") and is_timing("seconds_def_clean")  # the schema's "cost" group
    assert is_timing("seconds_attack") and is_timing("stage_seconds")       # names the schema does not list yet
    assert not is_timing("score_adv") and not is_timing("psnr_def_adv")
