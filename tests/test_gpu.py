"""The same matrix with ``run.device = "cuda"`` and on the CPU: every plugin family (metric, attack, adaptive
EOT attack, purifier, smoothing defenses with a denoiser) moves to the GPU, and the numbers agree with the
CPU's: exactly up to float error for deterministic defenses, within the sampling error of the median for the
smoothing defenses (on a GPU their noise is drawn there, seeded from the run's generator).
Skipped where no CUDA device is present (CI has none; run it on a GPU machine)."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from benchmark.cli import main
from benchmark.defenses.denoiser import DnCNN, save_denoiser
from benchmark.training.denoiser import main as train_denoiser

from conftest import folder_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CELL = ["attack", "defense", "image_id"]


def test_matrix_on_cuda_agrees_with_cpu(tmp_path, image_folder):
    den = tmp_path / "den.pt"
    torch.manual_seed(0)
    net = DnCNN(depth=3, channels=8)
    torch.nn.init.normal_(net.body[-1].weight, std=0.01)  # not the identity: the denoiser must run on the GPU
    save_denoiser(net, den, {"sigma": 0.12})
    tables = f"""
[[metrics]]
name = "default"
[[attacks]]
name = "pgd"
eps = "2/255"
steps = 3
adaptive = false
[[attacks]]
name = "pgd"
eps = "2/255"
steps = 2
adaptive = true
eot_samples = 2
[[defenses]]
name = "identity"
[[defenses]]
name = "jpeg"
quality = 50
[[defenses]]
name = "median_smoothing"
n = 64
[[defenses]]
name = "denoised_smoothing"
denoiser = "{den}"
n = 64
"""
    recs = {}
    for device in ("cpu", "cuda"):
        cfg = folder_config(tmp_path, device, image_folder, tables, run_extra=f'device = "{device}"', mos=True)
        assert main(["run", str(cfg), "--no-progress"]) == 0
        recs[device] = pd.read_csv(tmp_path / "runs" / device / "records.csv").set_index(CELL).sort_index()
    cpu, gpu = recs["cpu"], recs["cuda"]
    assert len(cpu) == len(gpu) == 6 * 2 * 4
    assert (cpu["score"] - gpu["score"]).abs().max() < 0.05
    smoothing = cpu.index.get_level_values("defense").str.contains("smoothing")
    diff = (cpu["score_def"] - gpu["score_def"]).abs()
    assert diff[~smoothing].max() < 0.05
    assert diff[smoothing].mean() < 0.02 * (cpu["range_hi"] - cpu["range_lo"]).iloc[0]  # medians of 64 draws
    # attacked images may differ where a gradient sign flips between devices; the gains agree closely
    gain = {d: (r["score_adv"] - r["score"]).abs().mean() for d, r in recs.items()}
    assert gain["cuda"] == pytest.approx(gain["cpu"], rel=0.1) and gain["cuda"] > 0
    assert gpu["cert_hi_clean"].notna().sum() == cpu["cert_hi_clean"].notna().sum() > 0


def test_train_denoiser_on_cuda(tmp_path, monkeypatch):
    from benchmark import photos

    monkeypatch.setattr(photos, "TRAIN_PHOTOS", ("camera",))  # one photograph keeps labelling short
    out = tmp_path / "den.pt"
    assert train_denoiser(["--metric", "default", "--epochs", "1", "--size", "64", "--crop", "48", "--depth", "3",
                           "--channels", "8", "--draws", "2", "--consistency-weight", "0.001", "--inputs", "both",
                           "--device", "cuda", "--out", str(out)]) == 0
    ck = torch.load(out, map_location="cpu", weights_only=True)
    assert ck["config"]["device"] == "cuda" and ck["config"]["epochs_done"] == 1
    assert all(v.device.type == "cpu" for v in ck["state_dict"].values())  # loadable anywhere


def test_smoothing_noise_on_cuda_is_reproducible_and_gaussian():
    from benchmark.defenses.median_smoothing import MedianSmoothing

    ms = MedianSmoothing(sigma=0.12, n=8)
    x = torch.full((8, 3, 64, 64), 0.5, device="cuda")
    a, b = (ms.noisy(x, torch.Generator().manual_seed(3)) for _ in range(2))
    assert a.device.type == "cuda" and torch.equal(a, b)
    assert not torch.equal(a, ms.noisy(x, torch.Generator().manual_seed(4)))
    assert (a - 0.5).std().item() == pytest.approx(0.12, abs=0.003)
