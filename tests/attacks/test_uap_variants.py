"""Cumulative and generative UAP: trained on the training split, they raise the default model's score on held-out
photographs within their budget on the 8-bit grid, and a resumed run reloads the stored perturbation."""
from __future__ import annotations

import json
import logging

import pandas as pd
import pytest
import torch
from conftest import write_config
from PIL import Image

from benchmark.attacks.cumulative_uap import CumulativeUAP
from benchmark.attacks.generative_uap import GenerativeUAP
from benchmark.attacks.uap import UAP
from benchmark.cli import main
from benchmark.metrics.default_model import DefaultModel
from benchmark.photos import TEST_PHOTOS, TRAIN_PHOTOS, load_photo, square
from benchmark.training import trainset


def held_out(size: int = 64) -> torch.Tensor:
    """The four test photographs (never in the training split) on the 8-bit grid."""
    x = torch.stack([square(load_photo(n), size) for n in TEST_PHOTOS])
    return (x * 255).round() / 255


def frozen_default() -> DefaultModel:
    model = DefaultModel().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def gain(model, x, x_adv) -> torch.Tensor:
    with torch.no_grad():
        return model(x_adv) - model(x)


def test_the_training_split_is_disjoint_from_the_held_out_photographs():
    ids, images = trainset.uap_images(64)
    assert {i.split("/")[0] for i in ids} == set(TRAIN_PHOTOS) and not set(TRAIN_PHOTOS) & set(TEST_PHOTOS)
    assert len(ids) == len(images) == 190


# test-sized settings (64 px, few epochs, a narrow generator): seconds on 2 CPU cores
VARIANTS = [
    ("cumulative_uap", lambda **kw: CumulativeUAP(size=64, epochs=2, **kw), 4.0),
    ("generative_uap", lambda **kw: GenerativeUAP(size=64, epochs=3, batch_size=16, ngf=8, lr=0.003, **kw), 2.0),
]


@pytest.mark.parametrize("name,make,min_gain", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_variant_raises_the_score_of_held_out_images_within_its_budget(name, make, min_gain, tmp_path):
    model, x = frozen_default(), held_out()
    attack = make()
    art = tmp_path / f"{name}.pt"
    delta = attack.fit(model, generator=torch.Generator().manual_seed(0), artifact=art, provenance={"t": 1},
                       progress=False)
    assert art.is_file() and json.loads(art.with_suffix(".json").read_text())["n_train"] == 190
    assert delta.shape == (3, 64, 64) and float(delta.abs().max()) <= attack.eps + 1e-7
    x_adv = attack(model, x, output_8bit=True)
    assert torch.equal(torch.round(x_adv * 255), x_adv * 255)     # on the 8-bit grid, as stored
    assert float((x_adv - x).abs().max()) <= attack.budget + 1e-6  # budget kept after quantisation
    g = gain(model, x, x_adv)
    noise = (x + attack.budget * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)).sign()).clamp(0, 1)
    assert float(g.mean()) > min_gain and float(g.mean()) > float(gain(model, x, noise).mean())
    # amplitude scales the budget; a second instance loads the stored δ instead of training
    half = make(amplitude=0.5)
    assert torch.equal(half.fit(model, generator=torch.Generator(), artifact=art, provenance={}, progress=False), delta)
    assert float((half(model, x, output_8bit=True) - x).abs().max()) <= attack.budget / 2 + 1e-6


def test_cumulative_uap_lowers_the_score_in_the_decrease_direction(tmp_path):
    model, x = frozen_default(), held_out()
    attack = CumulativeUAP(size=64, epochs=1, direction="decrease")
    attack.fit(model, generator=torch.Generator().manual_seed(0), artifact=tmp_path / "d.pt", provenance={},
               progress=False)
    assert float(gain(model, x, attack(model, x)).mean()) < -2.0


def test_cumulative_uap_steps_by_the_raw_gradient():
    """One step from δ = 0 is lr · ∇ mean L, clipped to eps (the reference's update, no optimizer)."""
    model, x = frozen_default(), held_out()
    attack = CumulativeUAP(eps=0.5, size=64, lr=3.0)
    state = attack.init_state(torch.device("cpu"), torch.Generator().manual_seed(0))
    with torch.enable_grad():
        attack.train_step(model, state, x)
    d = torch.zeros(1, 3, 64, 64, requires_grad=True)
    (g,) = torch.autograd.grad((model((x + d).clamp(0, 1)) / 100).mean(), d)
    torch.testing.assert_close(state["delta"], (3.0 * g[0]).clamp(-0.5, 0.5))


def test_uap_fit_parameters_are_unchanged_and_variants_add_theirs():
    """``uap`` artifacts stored by earlier runs keep their keys; the generator's width keys generative_uap's."""
    assert UAP().fit_params() == {"eps": 10 / 255, "size": 256, "epochs": 5, "lr": 0.001, "batch_size": 8,
                                  "direction": "increase"}
    assert GenerativeUAP(ngf=8).fit_params()["ngf"] == 8
    assert CumulativeUAP().lr == 1.0 and CumulativeUAP().needs_fit


@pytest.mark.slow
def test_a_resumed_run_reloads_the_trained_perturbation_without_training(tmp_path, caplog):
    """Run once (trains, stores the artifact), then --resume with a second amplitude: the new cell loads it."""
    folder = tmp_path / "held_out"
    folder.mkdir()
    for name, img in zip(TEST_PHOTOS, held_out()):
        Image.fromarray((img * 255).round().byte().permute(1, 2, 0).numpy()).save(folder / f"{name}.png")

    def config(amplitudes: str):
        return write_config(tmp_path, f"""
[run]
name = "cumul"
output_dir = "{tmp_path / 'runs'}"
image_size = 64
[[datasets]]
name = "folder"
root = "{folder}"
[[metrics]]
name = "default"
[[attacks]]
name = "cumulative_uap"
size = 64
epochs = 1
amplitude = {amplitudes}
[[defenses]]
name = "identity"
""")

    run = tmp_path / "runs" / "cumul"
    with caplog.at_level(logging.INFO, logger="benchmark"):
        assert main(["run", str(config("0.5")), "--no-progress"]) == 0
    assert "cumulative_uap: training on 190 images" in caplog.text
    (art,) = (run / "artifacts").glob("cumulative_uap-*.pt")
    stamp = art.stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="benchmark"):
        assert main(["run", str(config("[0.5, 1.0]")), "--resume", "--no-progress"]) == 0
    assert "training on" not in caplog.text
    assert f"cumulative_uap: loaded the trained perturbation from {art}" in caplog.text
    assert sorted((run / "artifacts").glob("cumulative_uap-*.pt")) == [art] and art.stat().st_mtime_ns == stamp
    s = pd.read_csv(run / "summary.csv").set_index("attack")
    assert len(s) == 2 and (s["signed_gain"] > 0).all()
    assert s.filter(like="amplitude=1,", axis=0)["linf_attack"].iloc[0] <= 10 / 255 + 1e-6


def test_generator_training_is_determined_by_the_fit_seed(tmp_path):
    """Dropout draws from the global RNG: training seeds it from the fit generator, so a run is reproducible."""
    model = frozen_default()

    def fit(seed, name):
        return GenerativeUAP(size=64, epochs=1, batch_size=64, ngf=4).fit(
            model, generator=torch.Generator().manual_seed(seed), artifact=tmp_path / name, provenance={},
            progress=False)

    torch.manual_seed(123)
    first = fit(0, "a.pt")
    torch.manual_seed(456)  # whatever the global RNG holds
    assert torch.equal(first, fit(0, "b.pt")) and not torch.equal(first, fit(1, "c.pt"))
