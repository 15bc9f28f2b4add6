"""The realesrgan purifier: the RRDBNet of Real-ESRGAN x4plus against BasicSR's own module (a verbatim copy,
tests/defenses/reference/basicsr_rrdbnet.py) with the same weights, OpenCV's Lanczos-4 resize reproduced in
torch, the study's pipeline (×4, clamp, Lanczos back to the input size), the release's ``params_ema`` layout,
and the missing-file error."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import benchmark.defenses.realesrgan as plugin
from benchmark.defenses.realesrgan import (
    FILE,
    URL,
    RealESRGANPurifier,
    RRDBNet,
    lanczos4_resize,
)
from benchmark.errors import MissingWeightsError

sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))
from purifier_common import (
    import_reference,
    one_thread,
    seeded_state,
    shapes_of,
    validate_exit,
)

cv2 = pytest.importorskip("cv2")  # pyiqa's dependency: OpenCV, whose resize the study used
single_thread = pytest.fixture(scope="module", autouse=True)(one_thread)
SMALL = {"num_feat": 16, "num_block": 2, "num_grow_ch": 8}  # the same code, narrower (for the pipeline tests)


def official(**config):
    ref = import_reference("basicsr_rrdbnet")
    cfg = {"num_feat": 64, "num_block": 23, "num_grow_ch": 32, **config}
    return ref.RRDBNet(num_in_ch=3, num_out_ch=3, scale=4, **cfg).eval()


def test_x4plus_equals_basicsr_with_the_same_weights():
    torch.manual_seed(0)
    ref = official()                                    # RealESRGAN_x4plus: 64 features, 23 RRDBs, growth 32
    mine = RRDBNet().eval()
    assert shapes_of(mine) == shapes_of(ref) and list(mine.state_dict()) == list(ref.state_dict())
    mine.load_state_dict(ref.state_dict())              # BasicSR's own initialisation (kaiming ×0.1)
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = ref(x), mine(x)
    assert got.shape == (2, 3, 48, 48)
    assert (got - want).abs().max() < 1e-5 and want.std() > 0.01


@pytest.mark.parametrize("src, dst", [((64, 48), (16, 12)), ((37, 50), (20, 13)), ((20, 16), (33, 40))])
def test_lanczos4_resize_is_opencv_s(src, dst):
    a = np.random.default_rng(0).random((*src, 3)).astype(np.float32)
    want = cv2.resize(a, (dst[1], dst[0]), interpolation=cv2.INTER_LANCZOS4)
    got = lanczos4_resize(torch.from_numpy(a).permute(2, 0, 1)[None], dst)[0].permute(1, 2, 0).numpy()
    assert np.abs(got - want).max() < 1e-5


def defense_from_release(tmp_path: Path, monkeypatch, **params) -> tuple[RealESRGANPurifier, torch.nn.Module]:
    """The plugin from a checkpoint in the release's layout ({'params_ema': state}), narrow for speed."""
    ref = official(**SMALL)
    ref.load_state_dict(seeded_state(shapes_of(ref), seed=3))
    path = tmp_path / FILE
    torch.save({"params_ema": ref.state_dict()}, path)
    monkeypatch.setattr(plugin, "RRDBNet", lambda: RRDBNet(**SMALL))
    return RealESRGANPurifier(path, **params).eval(), ref


def test_the_study_s_pipeline_super_resolves_and_resizes_back(tmp_path, monkeypatch):
    defense, ref = defense_from_release(tmp_path, monkeypatch)
    assert defense.differentiable and not defense.stochastic
    x = torch.rand(2, 3, 14, 18, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        y = defense(x)
        big = ref(x).clamp(0, 1)                        # RealESRGANer.enhance: ×4, clamp
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    for i in range(2):                                  # ... then cv2.resize(..., INTER_LANCZOS4) to (w, h)
        want = cv2.resize(big[i].permute(1, 2, 0).numpy(), (18, 14), interpolation=cv2.INTER_LANCZOS4).clip(0, 1)
        assert np.abs(y[i].permute(1, 2, 0).numpy() - want).max() < 1e-5
    assert (y - x).abs().mean() > 0.01
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(defense(xg).sum(), xg)
    assert g.abs().sum() > 0


def test_downscale_first_keeps_the_input_size(tmp_path, monkeypatch):
    defense, _ = defense_from_release(tmp_path, monkeypatch, downscale_first=True)
    x = torch.rand(1, 3, 18, 22, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        y = defense(x)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1


def test_a_missing_file_names_it_and_the_release(tmp_path, capsys):
    with pytest.raises(MissingWeightsError, match=FILE) as exc:
        RealESRGANPurifier(tmp_path / FILE)
    assert URL in str(exc.value)
    code, err = validate_exit(tmp_path, capsys, "realesrgan", tmp_path / FILE)
    assert code == 2 and FILE in err and URL in err and "defenses[0].weights" in err
