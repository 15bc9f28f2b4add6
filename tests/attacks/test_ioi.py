"""IOI: one signed-gradient step hidden in weak frequencies and textured regions; agrees with a transcription of
the reference notebook, raises the default model's score on held-out photographs and keeps eps on the 8-bit grid."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import convolve2d

from benchmark.attacks.fgsm import FGSM
from benchmark.attacks.ioi import IOI, high_part, texture_mask
from benchmark.metrics.default_model import DefaultModel
from benchmark.photos import TEST_PHOTOS, load_photo, square


def held_out(size: int = 64) -> torch.Tensor:
    x = torch.stack([square(load_photo(n), size) for n in TEST_PHOTOS])
    return (x * 255).round() / 255


def frozen_default() -> DefaultModel:
    model = DefaultModel().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def reference_recombination(im: np.ndarray, perturbed: np.ndarray, keep: float = 0.07
                            ) -> tuple[np.ndarray, np.ndarray]:
    """katiashh/ioi-attack ``attack()`` after its Adam step, transcribed (H×W×3 on 0..255): the std_convoluted
    mask and the per-channel FFT split ``I_low + f·(I^p)_high + (1 − f)·I_high``, before the final 8-bit cast.
    Also returns, per channel, the largest pixel change the coefficients at the threshold magnitude can make:
    the reference puts them in neither part (a conjugate pair, whose two magnitudes differ in the last bits,
    may even be split), the benchmark puts both members of the pair in the high part."""
    img = np.moveaxis(im, -1, 0)
    kernel = np.ones((3, 3)) / 9
    mean = np.stack([convolve2d(b, kernel, mode="valid") for b in img], axis=-1)
    mean2 = np.stack([convolve2d(b, kernel, mode="valid") for b in img ** 2], axis=-1)
    mean[mean == 0] = 1
    f = np.sqrt(np.clip(mean2 - mean ** 2, 0, None)) / mean
    f = np.pad(f, ((1, 1), (1, 1), (0, 0)))
    f = f / f.max()
    f[f < 0.01] = 0.0
    f = f ** 0.5
    out, tie_bound = [], []
    for c in range(3):
        t, tp = np.fft.fft2(im[:, :, c]), np.fft.fft2(perturbed[:, :, c])
        tresh = np.sort(np.abs(t.reshape(-1)))[int(np.floor((1 - keep) * t.size))]
        low = np.fft.ifft2(t * (np.abs(t) > tresh)).real
        rest = np.abs(t) < tresh
        high = np.fft.ifft2(t * rest).real
        p_high = np.fft.ifft2(tp * rest).real
        out.append(low + p_high * f[:, :, c] + high * (1 - f[:, :, c]))
        ties = np.abs(np.abs(t) - tresh) <= 1e-9 * tresh
        tie_bound.append((np.abs(t[ties]).sum() + np.abs(tp[ties]).sum()) / t.size)
    return np.stack(out, axis=2), np.array(tie_bound)


def test_ioi_modules_agree_with_the_reference_transcription():
    x = held_out()[:2].double()
    step = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64).sign()
    xp = (x + 0.1 * step).clamp(0, 1)
    ours = x + texture_mask(x) * high_part(xp - x, x, 0.07)
    for i in range(len(x)):
        im, pert = x[i].permute(1, 2, 0).numpy() * 255, xp[i].permute(1, 2, 0).numpy() * 255
        mine = ours[i].permute(1, 2, 0).numpy() * 255
        # they differ by no more than the threshold frequencies can change a pixel (a few levels of 255)
        ref, bound = reference_recombination(im, pert)
        assert (np.abs(mine - ref).reshape(-1, 3).max(0) <= bound + 1e-8).all() and bound.max() < 8
    # a zero step leaves the image exactly as it was
    torch.testing.assert_close(x + texture_mask(x) * high_part(torch.zeros_like(x), x, 0.07), x)


@pytest.mark.parametrize("eps", [0.1, 8 / 255])
def test_ioi_raises_the_score_of_held_out_images_within_eps(eps):
    model, x = frozen_default(), held_out()
    attack = IOI(eps=eps)
    x_adv = attack(model, x, output_8bit=True)
    assert torch.equal(torch.round(x_adv * 255), x_adv * 255)
    assert float((x_adv - x).abs().max()) <= eps + 1e-6
    with torch.no_grad():
        g = model(x_adv) - model(x)
    assert float(g.mean()) > 5.0 and (g > 0).all()
    # invisible: a mean change of a level or so, well under an FGSM step of the same size
    fgsm = FGSM(eps=eps)(model, x)
    assert float((x_adv - x).abs().mean()) < min(2 / 255, 0.5 * float((fgsm - x).abs().mean()))


def test_ioi_lowers_the_score_in_the_decrease_direction():
    model, x = frozen_default(), held_out()
    with torch.no_grad():
        g = model(IOI(direction="decrease")(model, x)) - model(x)
    assert float(g.mean()) < -2.0


def test_ioi_rejects_bad_parameters():
    for kw in ({"eps": 0}, {"keep": 1.0}, {"window": 4}, {"mask_floor": -0.1}):
        with pytest.raises(ValueError):
            IOI(**kw)
