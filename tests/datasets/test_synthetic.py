"""The synthetic dataset computes its MS-SSIM/FSIM labels once and reads them back from the cache dir."""
from __future__ import annotations

import json
import logging

import pytest

from benchmark import quality
from benchmark.datasets import synthetic
from benchmark.datasets.synthetic import SyntheticDistortions

SMALL = {"distortions": ("blur", "noise"), "levels": (2,), "size": 176, "limit": 3}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHMARK_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def forbid_recomputation(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("label recomputed although it is cached")

    monkeypatch.setattr(quality, "reference_score", boom)


def test_labels_are_stored_once_and_identical_to_recomputation(cache, monkeypatch):
    ds = SyntheticDistortions(**SMALL)
    first = {i: ds.load(i).mos for i in ds.ids()}
    files = list((cache / "synthetic-labels").glob("*.json"))
    assert len(files) == 1 and not list((cache / "synthetic-labels").glob(".*tmp"))
    stored = json.loads(files[0].read_text())
    assert stored["labels"] == first and stored["params"]["size"] == 176
    assert set(stored["params"]["code"]) >= {"quality.py", "distortions.py", "synthetic.py", "torch", "pyiqa"}

    # recomputed from scratch (no cache), the labels are the same floats, bit for bit
    monkeypatch.setenv("BENCHMARK_CACHE_DIR", str(cache.parent / "elsewhere"))
    fresh = SyntheticDistortions(**SMALL)
    assert {i: fresh.load(i).mos for i in fresh.ids()} == first
    assert 0 < min(first.values()) and max(first.values()) <= 100

    # a new instance over the first cache reads them without computing anything
    monkeypatch.setenv("BENCHMARK_CACHE_DIR", str(cache))
    forbid_recomputation(monkeypatch)
    again = SyntheticDistortions(**SMALL)
    assert {i: again.load(i).mos for i in again.ids()} == first


def test_key_follows_parameters_and_code(cache, monkeypatch):
    a = SyntheticDistortions(**SMALL).labels
    assert SyntheticDistortions(**{**SMALL, "limit": 2}).labels.path == a.path  # same labels, subset
    assert SyntheticDistortions(**{**SMALL, "distortions": ("noise", "blur")}).labels.path == a.path
    assert SyntheticDistortions(**{**SMALL, "size": 192}).labels.path != a.path
    assert SyntheticDistortions(**{**SMALL, "levels": (2, 3)}).labels.path != a.path
    assert SyntheticDistortions(**{**SMALL, "split": "train"}).labels.path != a.path
    monkeypatch.setattr(synthetic, "label_code_version", lambda: {"quality.py": "changed"})
    assert SyntheticDistortions(**SMALL).labels.path != a.path


def test_default_dir_is_xdg_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCHMARK_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert synthetic.cache_dir() == tmp_path / "xdg" / "iqa-robustness-benchmark"


def test_corrupt_cache_is_recomputed_with_a_warning(cache, caplog):
    ds = SyntheticDistortions(**{**SMALL, "limit": 1})
    (image_id,) = ds.ids()
    want = ds.load(image_id).mos
    ds.labels.path.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="benchmark.datasets.synthetic"):
        again = SyntheticDistortions(**{**SMALL, "limit": 1})
        assert again.load(image_id).mos == want
    assert "unreadable label cache" in caplog.text
    assert json.loads(again.labels.path.read_text())["labels"] == {image_id: want}


def test_labels_of_two_instances_are_merged(cache):
    a = SyntheticDistortions(**{**SMALL, "limit": None})
    b = SyntheticDistortions(**{**SMALL, "limit": None})
    ids = a.ids()[:2]
    a.labels.get(ids[0]), b.labels.get(ids[1])  # both read the (empty) cache first
    a.load(ids[0])
    b.load(ids[1])
    assert set(json.loads(a.labels.path.read_text())["labels"]) == set(ids)
