"""Streaming and attacked-image storage (issue #14): images are read batch by batch by every stage, attacked
images are stored one file per image (8-bit PNG by default, quantised before they are scored and measured,
within the L∞ budget), and a run's records are those of its stored files."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.attacked import decode, encode, file_name
from benchmark.attacks.pgd import PGD
from benchmark.cli import main
from benchmark.config import load_config
from benchmark.errors import ConfigError
from benchmark.images import apply_size_policy, quantize_8bit, to_tensor
from benchmark.metrics.default_model import DefaultModel
from benchmark.records import load_records
from benchmark.runner import Runner
from benchmark.source import ImageSource
from benchmark.store import RunStore

from conftest import folder_config

ATTACK_ONLY = """
[[metrics]]
name = "default"
[[attacks]]
name = "pgd"
eps = {eps}
steps = 2
adaptive = false
[[defenses]]
name = "identity"
[[defenses]]
name = "jpeg"
quality = 50
"""


def _run(tmp_path, image_folder, name, eps="0.01", extra=""):
    cfg = load_config(folder_config(tmp_path, name, image_folder, ATTACK_ONLY.format(eps=eps), limit=5,
                                    run_extra="batch_size = 2\n" + extra))
    run_dir = cfg.run.output_dir / cfg.run.name
    run_dir.mkdir(parents=True)
    assert Runner(cfg, run_dir, progress=False).run() == 0
    return cfg, run_dir, load_records(run_dir)


def test_quantize_8bit_keeps_the_linf_budget_and_is_idempotent():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (2, 3, 16, 16), generator=g).float() / 255
    adv = (x + (torch.rand(x.shape, generator=g) * 2 - 1) * 0.01).clamp(0, 1)
    q = quantize_8bit(adv, x, 0.01)
    assert torch.equal(torch.round(q * 255) / 255, q)                     # on the 8-bit grid
    assert float((q - x).abs().max()) <= 2 / 255 + 1e-7 < 0.01             # floor(2.55) = 2 levels
    assert torch.equal(quantize_8bit(q, x, 0.01), q)
    plain = quantize_8bit(adv, x)                                          # no budget: nearest level
    assert float((plain - x).abs().max()) == pytest.approx(3 / 255, abs=1e-7)
    q4 = quantize_8bit(x + 4 / 255 * torch.sign(adv - x), x, 4 / 255)      # a budget of k/255 keeps k levels
    assert float((q4 - x).abs().max()) == pytest.approx(4 / 255, abs=1e-7)


def test_png_round_trip_is_exact_and_file_names_are_safe():
    x = torch.randint(0, 256, (3, 20, 30), generator=torch.Generator().manual_seed(1)).float() / 255
    assert torch.equal(decode(encode(x, "png"), "png"), x)
    y = torch.rand(3, 20, 30, generator=torch.Generator().manual_seed(2))
    assert torch.equal(decode(encode(y, "float32"), "float32"), y)
    names = {file_name(i, "png") for i in ("a/b.png", "a_b.png", "../x", "ü ö", "")}
    assert len(names) == 5 and all("/" not in n and not n.startswith(".") and n.endswith(".png") for n in names)


def test_pgd_scores_its_output_as_it_will_be_stored():
    metric = DefaultModel().eval()
    x = torch.randint(0, 256, (2, 3, 64, 64), generator=torch.Generator().manual_seed(0)).float() / 255
    attack = PGD(eps=0.01, steps=2)
    adv = attack(metric, x, generator=torch.Generator().manual_seed(1), output_8bit=True)
    assert torch.equal(quantize_8bit(adv, x, 0.01), adv)
    with torch.no_grad():
        assert torch.equal(attack.last_scores, metric(adv))


def test_run_stores_each_attacked_image_as_the_png_it_scored(tmp_path, image_folder):
    cfg, run_dir, df = _run(tmp_path, image_folder, "png")
    store = RunStore(run_dir)
    (rec,) = store.stages("attack")
    assert rec["attack_meta"]["image_format"] == "png"
    files = sorted((run_dir / "stages" / "attack" / rec["key"]).iterdir())
    assert len(files) == 5 and all(f.suffix == ".png" for f in files)
    assert not list((run_dir / "stages").rglob("*.pt"))
    source = ImageSource.scan(cfg.datasets[0], cfg.run.image_size, cfg.run.size_policy, skipped=[])
    metric = DefaultModel().eval()
    by_id = df.drop_duplicates("image_id").set_index("image_id")
    for batch in source.batches(cfg.run.batch_size):
        adv = torch.stack([store.load_image("attack", rec["key"], i, "png") for i in batch.ids])
        with Image.open(store.image_path("attack", rec["key"], batch.ids[0], "png")) as im:
            assert im.mode == "RGB" and im.size == (96, 96)
        with torch.no_grad():
            scores = metric(adv)
        linf = (adv - batch.x).flatten(1).abs().amax(1)
        for j, i in enumerate(batch.ids):
            # the records are the stored file's: its score and its L∞, within the budget after quantisation
            assert by_id.loc[i, "score_adv"] == pytest.approx(float(scores[j]), abs=1e-5)
            assert by_id.loc[i, "linf_attack"] == float(linf[j]) == pytest.approx(2 / 255, abs=1e-7)
    assert (df["linf_attack"] <= 0.01).all()


def test_float32_storage_keeps_the_attack_output(tmp_path, image_folder):
    _, run_dir, df = _run(tmp_path, image_folder, "f32", eps="0.01", extra='attacked_images = "float32"')
    (rec,) = RunStore(run_dir).stages("attack")
    files = list((run_dir / "stages" / "attack" / rec["key"]).iterdir())
    assert len(files) == 5 and all(f.suffix == ".npy" for f in files)
    adv = torch.from_numpy(np.load(files[0]))
    assert not torch.equal(torch.round(adv * 255) / 255, adv)  # off the 8-bit grid
    assert df["linf_attack"].max() == pytest.approx(0.01, abs=1e-6)


def test_stages_read_images_batch_by_batch(tmp_path, image_folder, monkeypatch):
    """No stage holds the dataset: each image is decoded once per process into the scratch file, and each
    stage reads its batches back from it when it asks for them."""
    from benchmark.datasets.folder import ImageFolder

    decoded: list[str] = []
    reads: list[str] = []
    real_load, real_read = ImageFolder.load, ImageSource.read
    monkeypatch.setattr(ImageFolder, "load", lambda self, i: decoded.append(i) or real_load(self, i))
    monkeypatch.setattr(ImageSource, "read", lambda self, e: reads.append(e.image_id) or real_read(self, e))
    cfg = load_config(folder_config(tmp_path, "stream", image_folder, ATTACK_ONLY.format(eps='"4/255"'), limit=5,
                                    run_extra="batch_size = 2"))
    source = ImageSource.scan(cfg.datasets[0], cfg.run.image_size, cfg.run.size_policy, skipped=[])
    assert not any(isinstance(v, torch.Tensor) for e in source.entries for v in vars(e).values())
    assert len(decoded) == 5 and not reads
    sizes = [len(b.ids) for b in source.batches(2)]
    assert sizes == [2, 2, 1] and len(reads) == 5
    # what the scratch file gives back is the prepared image itself, bit for bit
    for e in source.entries:
        direct = apply_size_policy(to_tensor(source_image(image_folder, e.image_id)), (96, 96), "resize")
        assert torch.equal(source.read(e), direct)
    run_dir = cfg.run.output_dir / cfg.run.name
    run_dir.mkdir(parents=True)
    decoded.clear(), reads.clear()
    assert Runner(cfg, run_dir, progress=False).run() == 0
    # decoded once; clean, attack, 2 × def_quality, 2 × def_clean, 2 × def_adv: each stage reads the 5 images
    # once; the report's strip stages read at most the batch of their picked image (2 images)
    assert len(decoded) == 5 and 8 * 5 <= len(reads) <= 8 * 5 + 2 * 2


def source_image(folder, image_id):
    from benchmark.images import read_image

    return read_image(folder / image_id)


def test_attacked_images_and_executor_are_checked(tmp_path, image_folder):
    bad = folder_config(tmp_path, "bad", image_folder, ATTACK_ONLY.format(eps="0.01"),
                        run_extra='attacked_images = "jpeg"')
    with pytest.raises(ConfigError, match="attacked_images"):
        load_config(bad)
    assert main(["run", str(bad), "--no-progress"]) == 2
    bad = folder_config(tmp_path, "bad2", image_folder, ATTACK_ONLY.format(eps="0.01"), run_extra='executor = "slurm"')
    with pytest.raises(ConfigError, match="run.executor"):
        load_config(bad)
    bad = folder_config(tmp_path, "bad3", image_folder, ATTACK_ONLY.format(eps="0.01"), run_extra='ray_address = "auto"')
    with pytest.raises(ConfigError, match="ray_address"):
        load_config(bad)
    assert not (tmp_path / "runs").exists()
