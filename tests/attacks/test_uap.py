"""Universal perturbation (Shumitskaya et al., BMVC 2022): trained on the training split, it transfers to
held-out photographs, beats random noise of the same budget, and amplitude scales the budget."""
from __future__ import annotations

import torch
from attack_helpers import frozen, linf, photos, score_gain

from benchmark.attacks.uap import UAP
from benchmark.metrics.default_model import DefaultModel


def test_uap_transfers_to_held_out_images(tmp_path):
    model = frozen(DefaultModel())
    uap = UAP(eps=8 / 255, size=64, epochs=2, batch_size=16, lr=0.005)
    art = tmp_path / "uap.pt"
    delta = uap.fit(model, generator=torch.Generator().manual_seed(0), artifact=art, provenance={"t": 1},
                    progress=False)
    assert art.is_file() and art.with_suffix(".json").is_file()
    assert float(delta.abs().max()) <= 8 / 255 + 1e-7
    x = photos(4, 96)  # held-out photographs (astronaut, coffee, rocket, chelsea at another size)
    gain = score_gain(model, x, uap(model, x)).mean()
    assert uap.last_passes == {"forward": 0, "backward": 0}  # applying δ never touches the model
    noise = (x + 8 / 255 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)).sign()).clamp(0, 1)
    assert gain > 0.5 and gain > score_gain(model, x, noise).mean()
    # amplitude scales the budget; a second UAP loads the stored perturbation instead of training
    half = UAP(eps=8 / 255, amplitude=0.5, size=64, epochs=2, batch_size=16, lr=0.005)
    half.fit(model, generator=torch.Generator(), artifact=art, provenance={}, progress=False)
    assert torch.equal(half.delta, delta)
    assert float(linf(half(model, x), x).max()) <= 4 / 255 + 1e-6
