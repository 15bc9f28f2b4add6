"""The pyiqa zoo offline: every metric listed with its status; missing weights named fast."""
from __future__ import annotations

import json
import time

import pytest

from benchmark.cli import main
from benchmark.errors import ConfigError, MissingWeightsError
from benchmark.metrics.pyiqa_adapter import PyIQAMetric, parse_score_range
from benchmark.metrics.zoo import probe_gradient


def test_list_metrics_covers_all_of_pyiqa(capsys):
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    assert main(["-q", "list", "metrics", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["pyiqa metrics"]
    assert {r["name"] for r in rows} == set(DEFAULT_CONFIGS)
    by = {r["name"]: r for r in rows}
    assert by["niqe"]["lower_better"] and by["niqe"]["mode"] == "NR" and by["psnr"]["mode"] == "FR"
    assert by["musiq"]["weights"] in ("missing", "present") and by["musiq"]["weight_file"].endswith(".pth")
    assert by["ssim"]["weights"] == "none listed"


def test_score_range_strings():
    assert parse_score_range("~0, ~100") == (0.0, 100.0)
    assert parse_score_range("0, ~") == (0.0, None)
    assert parse_score_range("quality: 0, 1; rank: 0, 2") == (0.0, 1.0)


def test_gradient_probe():
    assert probe_gradient("ssim", "FR") == "yes"
    assert probe_gradient("psnr", "FR") == "yes"


def test_missing_weights_are_named_within_a_second(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    import importlib

    import pyiqa.utils.download_util as dl
    monkeypatch.setattr(dl, "DEFAULT_CACHE_DIR", str(tmp_path / "hub" / "pyiqa"))
    t0 = time.perf_counter()
    with pytest.raises(MissingWeightsError, match=r"pyiqa metric 'musiq'.*musiq_koniq_ckpt.*\.pth") as err:
        PyIQAMetric("musiq", download=False)
    assert time.perf_counter() - t0 < 5.0  # no network retries (the import of the architecture dominates)
    assert str(tmp_path) in str(err.value)
    importlib.invalidate_caches()


def test_pretrained_model_path_and_unknown_names(tmp_path):
    with pytest.raises(MissingWeightsError, match="nope.pth"):
        PyIQAMetric("niqe", options={"pretrained_model_path": str(tmp_path / "nope.pth")})
    with pytest.raises(ConfigError, match="did you mean"):
        PyIQAMetric("musiqq")
    with pytest.raises(ConfigError, match="open score range"):
        PyIQAMetric("mad")
