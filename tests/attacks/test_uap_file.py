"""``perturbation = "file.npy"``: a published universal perturbation (the MSU benchmark's layout: H×W×3 float,
RGB, on the [0, 1] scale) is applied exactly as MSU's ``run_uap`` tiles it; a bad file is a config error naming it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import write_config
from PIL import Image

from benchmark.attacks.cumulative_uap import CumulativeUAP
from benchmark.attacks.generative_uap import GenerativeUAP
from benchmark.attacks.uap import UAP
from benchmark.cli import main
from benchmark.images import quantize_8bit
from benchmark.photos import TEST_PHOTOS, load_photo, square
from benchmark.store import RunStore


def held_out(size: int = 64) -> torch.Tensor:
    x = torch.stack([square(load_photo(n), size) for n in TEST_PHOTOS])
    return (x * 255).round() / 255


def msu_like(path, h=40, w=48, peak=0.1, seed=0) -> np.ndarray:
    """An array laid out as MSU's res/*_maniqa_*.npy (there 256×256×3 float32 within ±0.1)."""
    arr = np.random.default_rng(seed).uniform(-peak, peak, (h, w, 3)).astype(np.float32)
    np.save(path, arr)
    return arr


def msu_apply(x: torch.Tensor, uap: np.ndarray, amplitude: float) -> torch.Tensor:
    """MSU's run_uap (robustness_benchmark/methods/utils/evaluate.py): np.tile over H×W, ``image + uap · k``;
    MSU scores it unclipped, the benchmark clips to [0, 1] as for every attack."""
    out = []
    for img in x.permute(0, 2, 3, 1).numpy():
        h, w = img.shape[:2]
        tiled = np.tile(uap, (h // uap.shape[0] + 1, w // uap.shape[1] + 1, 1))[:h, :w, :]
        out.append(np.clip(img + tiled * amplitude, 0, 1))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)


@pytest.mark.parametrize("cls", [UAP, CumulativeUAP, GenerativeUAP])
def test_a_published_perturbation_is_applied_exactly(cls, tmp_path):
    arr = msu_like(tmp_path / "p.npy")
    x = held_out()
    attack = cls(perturbation=tmp_path / "p.npy", amplitude=0.8)
    assert not attack.needs_fit and attack.eps == pytest.approx(float(np.abs(arr).max()))
    assert attack.budget == pytest.approx(0.8 * float(np.abs(arr).max()))
    expected = msu_apply(x, arr, 0.8)
    torch.testing.assert_close(attack(None, x), expected, rtol=0, atol=1e-7)
    # stored as 8-bit: quantised, within the budget
    x8 = attack(None, x, output_8bit=True)
    assert torch.equal(x8, quantize_8bit(expected, x, attack.budget))
    assert float((x8 - x).abs().max()) <= attack.budget + 1e-6
    # the channels-first layout is the same perturbation
    np.save(tmp_path / "chw.npy", arr.transpose(2, 0, 1))
    torch.testing.assert_close(cls(perturbation=tmp_path / "chw.npy", amplitude=0.8)(None, x), expected,
                               rtol=0, atol=1e-7)


def test_a_run_stores_the_file_perturbation_applied_to_each_image(tmp_path):
    arr = msu_like(tmp_path / "msu.npy", h=256, w=256)
    folder = tmp_path / "held_out"
    folder.mkdir()
    x = held_out()
    for name, img in zip(TEST_PHOTOS, x):
        Image.fromarray((img * 255).round().byte().permute(1, 2, 0).numpy()).save(folder / f"{name}.png")
    cfg = write_config(tmp_path, f"""
[run]
name = "file"
output_dir = "{tmp_path / 'runs'}"
image_size = 64
[[datasets]]
name = "folder"
root = "{folder}"
[[metrics]]
name = "default"
[[attacks]]
name = "uap"
perturbation = "msu.npy"
amplitude = 0.4
[[defenses]]
name = "identity"
""")
    assert main(["run", str(cfg), "--no-progress"]) == 0
    run = tmp_path / "runs" / "file"
    assert not any((run / "artifacts").glob("*.pt"))   # nothing trained
    (key,) = [d.name for d in (run / "stages" / "attack").iterdir() if d.is_dir()]
    budget = 0.4 * float(np.abs(arr).max())
    expected = quantize_8bit(msu_apply(x, arr, 0.4), x, budget)
    for i, name in enumerate(TEST_PHOTOS):
        stored = RunStore(run).load_image("attack", key, f"{name}.png", "png")
        assert torch.equal(stored, expected[i]), name


BAD_FILES = {
    "wrong shape": lambda p: np.save(p, np.zeros((16, 16, 4), np.float32) + 0.01),
    "a matrix": lambda p: np.save(p, np.full((16, 16), 0.01, np.float32)),
    "corrupt": lambda p: p.write_bytes(b"\x93NUMPY\x01\x00garbage"),
    "not numpy": lambda p: p.write_bytes(b"hello, I am a text file"),
    "0..255 scale": lambda p: np.save(p, np.full((8, 8, 3), 25.0, np.float32)),
    "integers": lambda p: np.save(p, np.ones((8, 8, 3), np.uint8)),
    "nan": lambda p: np.save(p, np.full((8, 8, 3), np.nan, np.float32)),
    "zeros": lambda p: np.save(p, np.zeros((8, 8, 3), np.float32)),
}


@pytest.mark.parametrize("problem", sorted(BAD_FILES))
def test_a_bad_perturbation_file_fails_validate_naming_it(problem, tmp_path, image_folder, capsys):
    bad = tmp_path / "bad.npy"
    BAD_FILES[problem](bad)
    cfg = write_config(tmp_path, f"""
[[datasets]]
name = "folder"
root = "{image_folder}"
[[metrics]]
name = "default"
[[attacks]]
name = "cumulative_uap"
perturbation = "bad.npy"
[[defenses]]
name = "identity"
""")
    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and "attacks[0].perturbation" in err


def test_a_missing_perturbation_file_fails_validate(tmp_path, image_folder, capsys):
    cfg = write_config(tmp_path, f"""
[[datasets]]
name = "folder"
root = "{image_folder}"
[[metrics]]
name = "default"
[[attacks]]
name = "uap"
perturbation = "nowhere.npy"
[[defenses]]
name = "identity"
""")
    assert main(["validate", str(cfg)]) == 2
    assert str(tmp_path / "nowhere.npy") in capsys.readouterr().err
