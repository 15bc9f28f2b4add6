"""The metrics of the two reference studies by name (linearity, spaq, koncept512, metaiqa).

Each test writes random weights in the *official* checkpoint's key layout (built by tests/helpers/weights.py
from torchvision / timm modules and the head definitions of the official code, independently of the plugin
classes), loads them back through a matrix config, and checks output shape, direction, score scale and that
one FGSM step moves the score the way it was asked to.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from benchmark.attacks.fgsm import FGSM
from benchmark.config import parse_config
from benchmark.errors import BenchmarkError, ConfigError, MissingWeightsError
from benchmark.metrics.checkpoints import CheckpointError, resize
from benchmark.metrics.koncept512 import MAX_SIDE, MIN_SIDE, feature_side
from benchmark.metrics.spaq import adaptive_size, patch_starts
from benchmark.registry import METRICS

from conftest import tiny_images
from helpers.weights import koncept_checkpoint, linearity_checkpoint, metaiqa_checkpoint, spaq_checkpoint


def images(n: int, size: int) -> torch.Tensor:
    return torch.stack([torch.from_numpy(a.copy()).permute(2, 0, 1).float() / 255 for _, a, _ in tiny_images(n, size)])


def build(tmp_path: Path, metric: dict) -> list:
    """The metrics of a matrix config with this one [[metrics]] table, built as the runner builds them."""
    raw = {"datasets": [{"name": "synthetic"}], "attacks": [{"name": "fgsm"}], "defenses": [{"name": "identity"}],
           "metrics": [metric]}
    cfg = parse_config(raw, tmp_path / "matrix.toml")
    return [spec.build().eval() for spec in cfg.metrics]


def check_metric(metric, x: torch.Tensor, lo: float, hi: float) -> None:
    """Shape, direction, declared scale, and one FGSM step up and one down."""
    assert metric.lower_better is False and metric.differentiable is True
    assert tuple(metric.score_range) == (lo, hi)
    with torch.no_grad():
        s = metric(x)
    assert s.shape == (x.shape[0],) and torch.isfinite(s).all()
    assert ((s > lo) & (s < hi)).all(), s
    # Random-weight networks barely react to their input: float64 resolves the direction of the change.
    metric, x = metric.double(), x.double()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        s = metric(x)
        up = metric(FGSM(eps=2 / 255)(metric, x, generator=g))
        down = metric(FGSM(eps=2 / 255, direction="decrease")(metric, x, generator=g))
    assert (up > s).all() and (down < s).all(), (s, up, down)
    metric.float()


# -- tests ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_linearity_loads_the_official_layout_and_is_attackable(tmp_path):
    weights = linearity_checkpoint(tmp_path / "p1q2.pth")
    native, resized = build(tmp_path, {"name": "linearity", "weights": "p1q2.pth", "resize": [False, True],
                                       "input_size": [64, 96]})
    assert (native.resize_input, resized.resize_input) == (False, True) and resized.input_size == (64, 96)
    assert (native.k, native.b) == (10.0, 50.0)
    x = images(1, 64)
    check_metric(native, x, 0.0, 100.0)
    with torch.no_grad():  # the official --resize: the same network on the image resized to input_size
        assert torch.allclose(resized(x), native(resize(x, (64, 96))), rtol=0, atol=1e-5)
    assert weights.is_file()


def test_spaq_loads_the_official_layout_and_is_attackable(tmp_path):
    spaq_checkpoint(tmp_path / "BL_release.pt")
    (metric,) = build(tmp_path, {"name": "spaq", "weights": "BL_release.pt", "short_side": 240})
    check_metric(metric, images(1, 224), 0.0, 100.0)  # one 224×224 patch (a side below 240: no resize)
    x = images(1, 256)  # both sides ≥ 240: resized to 240×240, then 224×224 patches at 0 and 16 (stride 112)
    with torch.no_grad():
        resized = nn.functional.interpolate(x, size=(240, 240), mode="bilinear", align_corners=False, antialias=True)
        crops = torch.cat([resized[:, :, i:i + 224, j:j + 224] for i in (0, 16) for j in (0, 16)])
        assert torch.allclose(metric(x), metric.net(crops).mean().reshape(1), atol=1e-4)


@pytest.mark.slow
def test_koncept512_loads_the_official_layout_and_is_attackable(tmp_path):
    koncept_checkpoint(tmp_path / "KonCept512.pth")
    (metric,) = build(tmp_path, {"name": "koncept512", "weights": "KonCept512.pth", "input_size": [299, 299]})
    check_metric(metric, images(1, 128), 0.0, 100.0)


def test_metaiqa_loads_the_msu_layout_through_pyiqa_and_is_attackable(tmp_path):
    metaiqa_checkpoint(tmp_path / "metaiqa.pth")
    resized, native = build(tmp_path, {"name": "metaiqa", "weights": "metaiqa.pth", "resize": [True, False]})
    assert type(resized.net).__module__.startswith("pyiqa.")
    check_metric(resized, images(2, 96), 0.0, 1.0)
    x = images(1, 96)
    with torch.no_grad():  # pyiqa's own preprocess: 224×224 bilinear, then ImageNet normalisation
        x224 = nn.functional.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
        assert torch.allclose(resized(x), native(x224), atol=1e-6)


@pytest.mark.parametrize("name,file", [("linearity", "p1q2.pth"), ("spaq", "BL_release.pt"),
                                       ("koncept512", "KonCept512.pth"), ("metaiqa", "metaiqa.pth")])
def test_missing_weights_name_the_file_and_the_release(tmp_path, name, file):
    missing = tmp_path / "models" / file
    with pytest.raises(BenchmarkError, match=re.escape(str(missing))):  # the config, or the plugin, names it
        build(tmp_path, {"name": name, "weights": f"models/{file}"})
    with pytest.raises(MissingWeightsError) as err:  # built directly: the file and where the release lives
        METRICS.get(name)(weights=missing)
    assert str(missing) in str(err.value) and "github.com/" in str(err.value)


def test_a_file_that_is_not_the_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt is not a readable torch checkpoint"):
        build(tmp_path, {"name": "spaq", "weights": "junk.pt"})
    torch.save({"model": {"w": torch.zeros(1)}}, tmp_path / "no_kb.pth")  # a state dict without k and b
    with pytest.raises(CheckpointError, match="expected a dict with 'model', 'k' and 'b'"):
        build(tmp_path, {"name": "linearity", "weights": "no_kb.pth"})
    torch.save({"state_dict": {"backbone.fc.weight": torch.zeros(1, 2048)}}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match=r"partial.pt does not match the official architecture: missing keys"):
        build(tmp_path, {"name": "spaq", "weights": "partial.pt"})
    torch.save(nn.Linear(2, 1), tmp_path / "pickled.pt")  # a whole pickled module: refused, with a fix
    with pytest.raises(CheckpointError, match="pickles Python objects.*python -c"):
        build(tmp_path, {"name": "metaiqa", "weights": "pickled.pt"})


def test_spaq_patch_grid_and_resize_follow_the_official_code():
    assert patch_starts(224, 224) == [0]
    assert patch_starts(512, 224) == [0, 112, 224, 288]  # stride 112 and the edge-aligned last patch
    assert patch_starts(682, 224) == [0, 112, 224, 336, 448, 458]
    assert adaptive_size(768, 1024, 512) == (512, 682)  # shorter side to 512, as transforms.Resize(512)
    assert adaptive_size(1024, 768, 512) == (682, 512)
    assert adaptive_size(384, 1024, 512) == (384, 1024)  # a side below 512: left as it is


def test_koncept512_input_size_must_give_one_pooling_window(tmp_path):
    assert [feature_side(n) for n in (299, 384, 512)] == [8, 10, 14]  # the port's 8×8 avgpool_1a window
    assert feature_side(MIN_SIDE - 1) < 8 and feature_side(MAX_SIDE + 1) >= 16
    (tmp_path / "KonCept512.pth").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"input_size.*expected sides within 299..554 pixels"):
        build(tmp_path, {"name": "koncept512", "weights": "KonCept512.pth", "input_size": [256, 256]})
