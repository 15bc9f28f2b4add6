"""The mprnet purifier: the official MPRNet denoising architecture (key layout and outputs recorded from
swz30/MPRNet ``Denoising/MPRNet.py``, which is under a non-commercial licence and so not copied here), the
study's padding to a multiple of 8, the official checkpoint layout, and the missing-file error.

The recording (tests/defenses/reference/mprnet_official_outputs.pt: the official defaults and a narrower
configuration of the same code, same seeded weights, same input) is remade with
``python tests/defenses/test_mprnet.py PATH/TO/swz30/MPRNet/Denoising/MPRNet.py``."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from benchmark.defenses.mprnet import FILE, URL, MPRNet, MPRNetPurifier
from benchmark.errors import MissingWeightsError

sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))
from purifier_common import (
    REFERENCE,
    one_thread,
    seeded_state,
    shapes_of,
    validate_exit,
)

RECORDED = REFERENCE / "mprnet_official_outputs.pt"
GAIN = 0.5
SMALL = {"n_feat": 16, "scale_unetfeats": 8, "scale_orsnetfeats": 8, "num_cab": 2}  # the same code, narrower


single_thread = pytest.fixture(scope="module", autouse=True)(one_thread)


@pytest.fixture(scope="module")
def recorded():
    return torch.load(RECORDED, weights_only=True)


def seeded(recorded, key: str = "small_shapes", **config) -> MPRNet:
    model = MPRNet(**config).eval()
    model.load_state_dict(seeded_state({k: tuple(v) for k, v in recorded[key].items()}, seed=0, gain=GAIN))
    return model


def test_state_dict_layout_is_the_official_one(recorded):
    with torch.device("meta"):  # shapes without allocating 16M parameters
        assert shapes_of(MPRNet()) == {k: tuple(v) for k, v in recorded["shapes"].items()}
        assert shapes_of(MPRNet(**SMALL)) == {k: tuple(v) for k, v in recorded["small_shapes"].items()}
    assert len(recorded["shapes"]) == 316


def test_outputs_equal_the_official_module_with_the_same_weights(recorded):
    net = seeded(recorded, **SMALL)
    with torch.no_grad():
        out = net(recorded["input"])
    assert out.shape == recorded["small_output"].shape == (2, 3, 16, 16)
    assert (out - recorded["small_output"]).abs().max() < 1e-5
    assert (out - recorded["input"]).abs().mean() > 0.05          # the network does change the image


def test_outputs_equal_the_official_module_at_the_official_defaults(recorded):
    net = seeded(recorded, "shapes")
    with torch.no_grad():
        out = net(recorded["input"][:1])
    assert (out - recorded["output"][:1]).abs().max() < 1e-5


def test_official_checkpoint_loads_and_the_input_is_padded_to_a_multiple_of_8(tmp_path, recorded, monkeypatch):
    import benchmark.defenses.mprnet as plugin

    net = seeded(recorded, **SMALL)
    monkeypatch.setattr(plugin, "MPRNet", lambda: MPRNet(**SMALL))  # the narrow network, for speed
    # Denoising/utils/model_utils.py: {'state_dict': ...}, here saved from DataParallel ('module.' prefix)
    path = tmp_path / FILE
    torch.save({"epoch": 80, "state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    defense = MPRNetPurifier(path).eval()
    assert defense.differentiable and not defense.stochastic
    x = torch.rand(2, 3, 13, 20, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = defense(x)
        # the study's call: reflect-pad bottom/right to 16×24, restore, clamp, crop
        expected = net(F.pad(x, (0, 4, 0, 3), mode="reflect")).clamp(0, 1)[..., :13, :20]
    assert y.shape == x.shape and torch.equal(y, expected)
    assert 0 <= y.min() and y.max() <= 1
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(defense(xg).sum(), xg)
    assert g.abs().sum() > 0


def test_a_foreign_checkpoint_and_a_missing_file_are_named(tmp_path, capsys):
    from benchmark.errors import ConfigError

    foreign = tmp_path / "foreign.pth"
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, foreign)
    with pytest.raises(ConfigError, match="foreign.pth.*official architecture"):
        MPRNetPurifier(foreign)
    with pytest.raises(MissingWeightsError, match=FILE) as exc:
        MPRNetPurifier(tmp_path / FILE)
    assert URL in str(exc.value)
    code, err = validate_exit(tmp_path, capsys, "mprnet", tmp_path / FILE)
    assert code == 2 and FILE in err and URL in err and "defenses[0].weights" in err


def record(official: Path) -> None:
    """Rewrite the recording from the official file (run by hand, with the official repository at hand)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mprnet_official", official)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    out = {"source": f"swz30/MPRNet Denoising/MPRNet.py: MPRNet() defaults and MPRNet(**{SMALL}); "
                     f"weights seeded_state(seed=0, gain={GAIN})", "input": x}
    for prefix, config in (("", {}), ("small_", SMALL)):
        ref = module.MPRNet(**config).eval()
        shapes = shapes_of(ref)
        ref.load_state_dict(seeded_state(shapes, seed=0, gain=GAIN))
        with torch.no_grad():
            out[f"{prefix}output"] = ref(x)[0]
        out[f"{prefix}shapes"] = {k: list(v) for k, v in shapes.items()}
    torch.save(out, RECORDED)


if __name__ == "__main__":
    record(Path(sys.argv[1]))
