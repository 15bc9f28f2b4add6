"""The two reference studies' protocol files (examples/purification_study.toml, examples/stochastic_biqa.toml)
stay valid as the code changes: each is copied with its dataset roots, weights files and model directories
replaced by fixtures (tiny databases in their official layouts, random-weight checkpoints in the official key
layouts, a tiny diffusers DDPM, a trained-format denoiser) and must pass ``python -m benchmark validate
--device cpu`` (the protocols name ``device = "cuda"``); its
datasets must then load and its study-metric checkpoints build, as a run would."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.cli import main

from conftest import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROTOCOLS = ["purification_study.toml", "stochastic_biqa.toml", "guardians.toml"]
PATH_KEYS = ("root", "weights", "model", "model_dir", "denoiser", "pretrained_model_path", "mos_csv")


# -- databases in their official layouts ----------------------------------------------------------------
def _image(path: Path, seed: int, size=(64, 48)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


def _csv(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def koniq10k(root: Path) -> None:
    rows = []
    for i in range(10):
        name = f"{826373 + i}.jpg"
        _image(root / "512x384" / name, i)
        rows.append([name, 0, 1, 2, 3, 4, 10, 1.2 + 0.35 * i, 0.6, 0.0])
    _csv(root / "koniq10k_scores_and_distributions.csv",
         ["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "MOS_zscore"], rows)


def clive(root: Path) -> None:
    from scipy.io import savemat

    names = [f"{i + 1}.bmp" for i in range(10)]  # the first 7 are the release's training examples
    for i, n in enumerate(names):
        _image(root / "Images" / n, i)
    cell = np.empty((len(names), 1), dtype=object)
    for i, n in enumerate(names):
        cell[i, 0] = np.array([n])
    (root / "Data").mkdir(parents=True)
    savemat(root / "Data" / "AllImages_release.mat", {"AllImages_release": cell})
    savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.linspace(20, 80, len(names))[None]})


def kadid10k(root: Path) -> None:
    rows = []
    for r in range(3):
        for d in range(2):
            name = f"I{r + 1:02d}_{d + 1:02d}_01.png"
            _image(root / "images" / name, 10 * r + d)
            rows.append([name, f"I{r + 1:02d}.png", 1.0 + d + r, 0.1])
    root.mkdir(parents=True, exist_ok=True)
    _csv(root / "dmos.csv", ["dist_img", "ref_img", "dmos", "var"], rows)


def spaq(root: Path) -> None:
    import pandas as pd

    names = [f"{i + 1:05d}.jpg" for i in range(4)]
    for i, n in enumerate(names):
        _image(root / "TestImage" / n, i)
    (root / "Annotations").mkdir(parents=True)
    pd.DataFrame({"Image name": names, "MOS": [20.0, 40.0, 60.0, 80.0]}).to_excel(
        root / "Annotations" / "MOS and Image attribute scores.xlsx", index=False)


def folder(root: Path) -> None:
    for i in range(3):
        _image(root / f"img{i}.png", i)


DATASETS = {"koniq10k": koniq10k, "clive": clive, "kadid10k": kadid10k, "spaq": spaq, "folder": folder}


# -- checkpoints in the official key layouts ------------------------------------------------------------
def paq2piq_weights(path: Path) -> Path:
    """pyiqa's PAQ2PIQ (pyiqa/archs/paq2piq_arch.py) state dict: ResNet-18 body (children[:-2]) and the head."""
    from torch import nn
    from torchvision.models import resnet18

    torch.manual_seed(0)
    body = nn.Sequential(*list(resnet18(weights=None).children())[:-2])
    head = nn.Sequential(nn.Identity(), nn.Flatten(), nn.BatchNorm1d(1024), nn.Dropout(0.25), nn.Linear(1024, 512),
                         nn.ReLU(), nn.BatchNorm1d(512), nn.Dropout(0.5), nn.Linear(512, 1))
    state = {f"body.{k}": v for k, v in body.state_dict().items()}
    state.update({f"head.{k}": v for k, v in head.state_dict().items()})
    torch.save(state, path)
    return path


def load_test_module(name: str):
    """Another test module of tests/ (wherever it lives under it), loaded by its file: its fixture builders."""
    import importlib.util

    if name in sys.modules:
        return sys.modules[name]
    path = next((ROOT / "tests").rglob(f"{name}.py"))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module



def study_metric_weights(name: str, path: Path) -> Path:
    """The study metrics' random-weight checkpoints, from the helpers of test_study_metrics.py."""
    h = load_test_module("test_study_metrics")

    make = {"linearity": h.linearity_checkpoint, "spaq": h.spaq_checkpoint, "koncept512": h.koncept_checkpoint,
            "metaiqa": h.metaiqa_checkpoint}[name]
    return make(path)


class NoFixture(AssertionError):
    """A protocol names a file this module cannot fake (an optional entry's file: it is then left out)."""


class Fixtures:
    """Builds each fixture once per test module, keyed by what the protocol's table names."""

    def __init__(self, root: Path):
        self.root = root
        self.made: dict[tuple[str, str, str], Path] = {}

    def path_for(self, family: str, entry: dict, key: str) -> Path:
        name = entry["name"]
        kind = (family, entry.get("metric", name) if name == "pyiqa" else name, key)
        if family == "defenses" and key in ("model", "model_dir"):  # one diffusion model serves several defenses
            kind = (family, "ddpm", "model")
        if kind not in self.made:
            self.made[kind] = self._make(kind)
        return self.made[kind]

    def _make(self, kind) -> Path:
        family, name, key = kind
        target = self.root / "_".join(kind)
        if family == "datasets" and key == "root" and name in DATASETS:
            DATASETS[name](target)
        elif family == "metrics" and key == "weights":
            study_metric_weights(name, target)
        elif family == "metrics" and key == "pretrained_model_path" and name == "paq2piq":
            paq2piq_weights(target)
        elif family == "defenses" and (key == "denoiser" or (name == "dncnn" and key == "weights")):
            from benchmark.defenses.denoiser import DnCNN, save_denoiser

            save_denoiser(DnCNN(depth=3, channels=8), target, {"sigma": 0.12})
        elif family == "defenses" and key in ("model", "model_dir"):
            load_test_module("test_diffusion_smoothing").save_tiny_ddpm(target)
        else:
            raise NoFixture(f"no fixture for {family} '{name}' key '{key}': add one to tests/reports/test_protocol.py")
        return target


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    pytest.importorskip("diffusers", reason="diffusers not installed (pip install -e '.[diffpure]')")
    return Fixtures(tmp_path_factory.mktemp("protocol_fixtures"))


def with_fixtures(protocol: Path, fixtures: Fixtures, out: Path) -> tuple[Path, dict]:
    """The protocol's text with every path value of PATH_KEYS replaced by a fixture path (TOML basic strings)."""
    text = protocol.read_text(encoding="utf-8")
    raw = tomllib.loads(text)
    replaced: dict[str, Path] = {}
    for family in ("datasets", "metrics", "defenses"):
        for entry in raw.get(family, []):
            for key in PATH_KEYS:
                if isinstance(entry.get(key), str):
                    try:
                        new = fixtures.path_for(family, entry, key)
                    except NoFixture:
                        if not entry.get("optional"):
                            raise
                        continue  # an optional entry without a fixture here: validate leaves it out, saying so
                    assert replaced.setdefault(entry[key], new) == new, f"{entry[key]} names two kinds of file"
    for old, new in replaced.items():
        assert text.count(f'"{old}"') >= 1, old
        text = text.replace(f'"{old}"', f'"{new.as_posix()}"')
    out.write_text(text, encoding="utf-8")
    return out, replaced


@pytest.fixture
def torchvision_cache(tmp_path_factory, monkeypatch):
    """torch hub's cache with the ImageNet ResNet-18 that pyiqa's PaQ-2-PiQ builds first (random weights in the
    released key layout): offline, validate checks that file, as a user of stochastic_biqa.toml needs it."""
    import torch
    import torchvision

    home = tmp_path_factory.mktemp("torch-home")
    ckpt = home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    ckpt.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), ckpt)
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.mark.parametrize("name", PROTOCOLS)
def test_protocol_validates_with_fixtures(name, fixtures, tmp_path, capsys, torchvision_cache):
    from benchmark.config import load_config

    protocol = ROOT / "examples" / name
    assert protocol.is_file(), f"{protocol} is missing"
    cfg_path, replaced = with_fixtures(protocol, fixtures, tmp_path / name)
    assert replaced, "the protocol names no files: nothing was checked"
    assert main(["validate", str(cfg_path), "--device", "cpu"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "valid" in out
    cfg = load_config(cfg_path, device="cpu")
    # every table of the protocol is in the matrix: none was left out as optional with a missing file, except
    # the optional entries whose files have no fixture here (the purifiers' own tests check their checkpoints)
    raw = tomllib.loads(protocol.read_text(encoding="utf-8"))

    def kept(family):
        return {e["name"] for e in raw[family]
                if not e.get("optional") or all(e[k] in replaced for k in PATH_KEYS if isinstance(e.get(k), str))}

    assert {s.name for s in cfg.datasets} == kept("datasets")
    assert {s.name for s in cfg.metrics} == kept("metrics")
    assert {s.name for s in cfg.defenses} == kept("defenses")
    # as a run would: the databases load from their official layouts, the study metrics from theirs
    for spec in cfg.datasets:
        ds = spec.build()
        assert ds.ids() and ds.load(ds.ids()[0]).image.ndim == 3
    for spec in cfg.metrics:
        if spec.name != "pyiqa":  # pyiqa's PaQ-2-PiQ fetches torchvision's ImageNet ResNet-18 first (no network here)
            metric = spec.build()
            assert metric.score_range[0] < metric.score_range[1]


def test_protocol_without_its_files_names_them(tmp_path, capsys):
    """Run as shipped (without the study's files): validate stops at the first missing one, naming file and key."""
    protocol = ROOT / "examples" / "stochastic_biqa.toml"
    copy = tmp_path / "examples" / protocol.name
    copy.parent.mkdir()
    copy.write_text(protocol.read_text(encoding="utf-8"))
    assert main(["validate", str(copy), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "datasets[0].root" in err and str(tmp_path / "data" / "koniq10k") in err


# The Guardians benchmark's attack list (msu-video-group/adversarial-defenses-for-iqa, metrics/methods/) and the
# built-in attack each name maps to in examples/guardians.toml.
GUARDIANS_ATTACKS = {"cadv": "advcf", "cnn-attack": "facpa", "grad-est": "nes", "ifgsm": "ifgsm",
                     "korhonen-et-al": "korhonen", "madc": "madc", "onepixel": "onepixel",
                     "parsimonious": "parsimonious", "patch-rs": "patch_rs", "square-attack": "square",
                     "ssah": "ssah", "stadv": "stadv", "uap": "uap", "zhang-et-al-dists": "zhang"}
STUDY_ATTACKS = {"ifgsm", "mifgsm", "amifgsm", "korhonen", "madc", "ssah", "advcf", "zhang"}


def test_guardians_runs_every_guardians_attack():
    """Every Guardians attack is in the file, under its name in the header and as a table; zhang with DISTS;
    gradient attacks at the four L∞ categories of picked_presets_v1.csv; every defense built in that needs no
    file is there (those with files are optional)."""
    import inspect

    from benchmark.registry import DEFENSES

    text = (ROOT / "examples" / "guardians.toml").read_text(encoding="utf-8")
    raw = tomllib.loads(text)
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    names = [e["name"] for e in raw["attacks"]]
    for guardians, here in GUARDIANS_ATTACKS.items():
        assert f"{guardians} -> {here}" in header, guardians
        assert here in names, f"{guardians} ({here}) has no [[attacks]] table"
    assert [e["distance"] for e in raw["attacks"] if e["name"] == "zhang"] == ["dists"]
    assert sorted(e["eps"] for e in raw["attacks"] if e["name"] == "korhonen") == sorted(
        f"{k}/255" for k in (2, 4, 8, 16))
    assert raw["run"]["device"] == "cuda" and raw["run"]["image_size"] == [384, 512]
    assert raw["datasets"] == [{"name": "koniq10k", "root": "../data/koniq10k", "resolution": "512x384",
                                "split": "test", "limit": 1000}]
    listed = {e["name"] for e in raw["defenses"]}
    with_files = {e["name"] for e in raw["defenses"] if set(e) & set(PATH_KEYS)}
    assert all(e.get("optional") for e in raw["defenses"] if e["name"] in with_files)
    for name in DEFENSES.names():
        if not DEFENSES.get(name).__module__.startswith("benchmark."):
            continue  # a plugin another test registered in this process
        required = [p for p in inspect.signature(DEFENSES.get(name)).parameters.values()
                    if p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD
                    and p.name != "self"]
        if not required:
            assert name in listed, f"defense '{name}' needs no file but is not in examples/guardians.toml"


def test_purification_study_runs_its_ten_attacks():
    raw = tomllib.loads((ROOT / "examples" / "purification_study.toml").read_text(encoding="utf-8"))
    tables = raw["attacks"]
    assert {e["name"] for e in tables} == STUDY_ATTACKS
    assert all(e["adaptive"] is False for e in tables)  # the study's transfer protocol
    zhang = [e for e in tables if e["name"] == "zhang"]
    assert [sorted(e["distance"]) for e in zhang] == [["dists", "lpips", "ssim"]]
    assert sum(len(e["distance"]) if e["name"] == "zhang" else 1 for e in tables) == 10


@pytest.mark.parametrize("name", ["purification_study.toml", "stochastic_biqa.toml"])
def test_protocol_keeps_its_published_transfer_attacks(name):
    """Attacks are adaptive by default; the two seed studies' protocols say `adaptive = false` on every attack, and
    so plan only transfer attacks (x' made on the bare metric), as published (guardians.toml runs both, on purpose)."""
    from benchmark.config import load_config

    raw = tomllib.loads((ROOT / "examples" / name).read_text(encoding="utf-8"))
    assert raw["attacks"] and all(e.get("adaptive") is False for e in raw["attacks"])
    assert all("eot_samples" not in e for e in raw["attacks"])
    cfg = load_config(ROOT / "examples" / "quickstart.toml")   # the default, for contrast: twins planned
    assert any(a.adaptive for a, _ in cfg.cell_pairs()) and not any(
        a.adaptive and getattr(d.cls, "baseline", False) for a, d in cfg.cell_pairs())
