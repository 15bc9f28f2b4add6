"""Every numeric parameter of every built-in attack and defense is bounded (issue #13): set to 2^63 - 1,
2^63, -1, 1e300 or 0, ``validate`` ends with exit 0 or with exit 2 and one line (it builds attacks and
defenses, so a value that would hang or crash a run later is refused now), and the extreme values
(2^63 - 1, 1e300) are always refused, with a message naming the parameter. Also: the caps at their edges,
a denoiser checkpoint whose architecture is out of bounds, and the manifest's resolved parameters.
"""
from __future__ import annotations

import contextlib
import io
import json
import types
from pathlib import Path
from typing import Union, get_args, get_origin

import pytest
import torch

from benchmark.cli import main
from benchmark.registry import ATTACKS, DEFENSES, constructor_params, load_builtin_plugins

load_builtin_plugins()

HEAD = """[run]
name = "bounds"
image_size = 64
[[datasets]]
name = "synthetic"
limit = 2
size = 176
[[metrics]]
name = "default"
"""
VALUES = {"2^63-1": "9223372036854775807", "2^63": "9223372036854775808", "-1": "-1", "1e300": "1e300", "0": "0"}
EXTREME = ("2^63-1", "1e300")
# parameters the built-in plugins require: a file or folder each (made by the fixtures below)
REQUIRED = {("defenses", "dncnn"): ("weights", "denoiser"),
            ("defenses", "denoised_smoothing"): ("denoiser", "denoiser"),
            ("defenses", "diffpure"): ("model_dir", "ddpm"), ("defenses", "diffusion_smoothing"): ("model", "ddpm")}


def is_numeric(ann) -> bool:
    if get_origin(ann) in (Union, types.UnionType):
        return any(is_numeric(a) for a in get_args(ann) if a is not type(None))
    return ann in (int, float)


CASES = [(fam, name, p) for fam, reg in (("attacks", ATTACKS), ("defenses", DEFENSES)) for name in reg.names()
         for p, ann, _ in constructor_params(reg.get(name)) if is_numeric(ann)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny denoiser checkpoint and, with diffusers installed, a tiny local DDPM directory."""
    from benchmark.defenses.denoiser import DnCNN, save_denoiser

    root = tmp_path_factory.mktemp("bounds")
    save_denoiser(DnCNN(depth=3, channels=4), root / "den.pt", {"sigma": 0.12})
    out = {"denoiser": root / "den.pt", "ddpm": None}
    try:
        from diffusers import DDPMScheduler, UNet2DModel
    except ImportError:
        return out
    torch.manual_seed(0)
    UNet2DModel(sample_size=32, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
                norm_num_groups=8, down_block_types=("DownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "UpBlock2D")).save_pretrained(root / "ddpm" / "unet")
    DDPMScheduler(num_train_timesteps=1000).save_pretrained(root / "ddpm" / "scheduler")
    out["ddpm"] = root / "ddpm"
    return out


def validate(tmp_path: Path, table: str) -> tuple[int, str, str]:
    path = tmp_path / "matrix.toml"
    path.write_text(HEAD + table)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["-q", "validate", str(path)])
    return rc, out.getvalue(), err.getvalue()


def tables(family: str, name: str, extra: str, files: dict) -> str:
    """The four sections with ``name`` (and ``extra`` lines) in ``family``'s, the simplest plugin elsewhere."""
    required = REQUIRED.get((family, name))
    if required:
        if files[required[1]] is None:
            pytest.skip("needs diffusers (pip install -e '.[diffpure]')")
        extra = f'{required[0]} = "{files[required[1]]}"\n' + extra
    mine = f'name = "{name}"\n{extra}'
    attack = mine if family == "attacks" else 'name = "fgsm"\n'
    defense = mine if family == "defenses" else 'name = "identity"\n'
    return f"[[attacks]]\n{attack}[[defenses]]\n{defense}"


def assert_one_line_error(rc: int, err: str) -> None:
    assert rc == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("family,name,param", CASES, ids=[f"{n}.{p}" for _, n, p in CASES])
def test_extreme_values_end_in_exit_0_or_one_line_exit_2(tmp_path, files, family, name, param):
    for label, literal in VALUES.items():
        rc, out, err = validate(tmp_path, tables(family, name, f"{param} = {literal}\n", files))
        assert rc in (0, 2), (label, rc, err)
        if rc == 2:
            assert_one_line_error(rc, err)
        else:
            assert err == "" and "valid;" in out, (label, out, err)
        if label in EXTREME:  # never a value a study needs: refused up front, naming the parameter
            assert rc == 2, f"{name}.{param} = {label} was accepted"
            assert param in err, err


def test_the_cases_cover_the_plugins_named_in_the_issue():
    covered = {(n, p) for _, n, p in CASES}
    assert {("median", "kernel"), ("median_smoothing", "n"), ("gaussian_blur", "sigma"), ("pgd", "steps"),
            ("pgd", "restarts"), ("square", "queries"), ("uap", "epochs")} <= covered


@pytest.mark.parametrize("table,key,message", [
    ('[[attacks]]\nname = "fgsm"\n[[defenses]]\nname = "median"\nkernel = 9223372036854775807\n',
     "defenses[0].kernel", "kernel must be an odd integer within 3..63, got 9223372036854775807"),
    ('[[attacks]]\nname = "fgsm"\n[[defenses]]\nname = "median"\nkernel = 4\n',
     "defenses[0].kernel", "kernel must be an odd integer within 3..63, got 4"),
    ('[[attacks]]\nname = "fgsm"\n[[defenses]]\nname = "median_smoothing"\nn = 1000001\n',
     "defenses[0].n", "n must be an integer within 1..1000000, got 1000001"),
    ('[[attacks]]\nname = "fgsm"\n[[defenses]]\nname = "gaussian_blur"\nsigma = 1e300\n',
     "defenses[0].sigma", "sigma must be a number within (0, 10], got 1e+300"),
    ('[[attacks]]\nname = "fgsm"\n[[defenses]]\nname = "cohen_smoothing"\nn = 600000\nn0 = 600000\n',
     "defenses[0]", "n + n0 (the noisy samples per image) must be at most 1000000, got 1200000"),
    ('[[attacks]]\nname = "korhonen"\ndilation = 4\n[[defenses]]\nname = "identity"\n',
     "attacks[0].dilation", "dilation must be an odd integer within 1..63, got 4"),
    ('[[attacks]]\nname = "pgd"\nnorm = "l2"\neps = 1e300\n[[defenses]]\nname = "identity"\n',
     "attacks[0].eps", "eps must be a number within (0, 7094.48], got 1e+300"),
    ('[[attacks]]\nname = "uap"\namplitude = 100\n[[defenses]]\nname = "identity"\n',
     "attacks[0].amplitude", "amplitude must be a number within (0, 25.5], got 100.0"),
    ('[[attacks]]\nname = "torchattacks"\noptions = {steps = 9223372036854775807}\n[[defenses]]\nname = "identity"\n',
     "attacks[0].options.steps", "options.steps must be an integer within 1..100000"),
])
def test_refusals_name_the_parameter_and_the_range(tmp_path, table, key, message):
    rc, _, err = validate(tmp_path, table)
    assert_one_line_error(rc, err)
    assert f"key '{key}'" in err and message in err, err


def test_the_caps_are_usable_at_their_edges():
    """The largest accepted values build and run on the smallest image a run allows (32 px)."""
    from benchmark.attacks.korhonen import activity_map
    from benchmark.defenses.bilateral import Bilateral
    from benchmark.defenses.gaussian_blur import GaussianBlur
    from benchmark.defenses.median import MedianFilter
    from benchmark.defenses.unsharp import UnsharpMask

    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for d in (GaussianBlur(sigma=10.0), UnsharpMask(sigma=10.0, amount=100.0), MedianFilter(kernel=63),
              Bilateral(kernel=63, sigma_space=10.0)):
        y = d(x)
        assert y.shape == x.shape and torch.isfinite(y).all()
    assert GaussianBlur(sigma=10.0)(x).std() < x.std() / 4       # a real blur, not a no-op
    assert activity_map(x, 63).shape == (1, 1, 32, 32)
    for bad in (lambda: GaussianBlur(sigma=10.01), lambda: MedianFilter(kernel=65), lambda: MedianFilter(kernel=3.0)):
        with pytest.raises(ValueError):  # a ValueError to Python callers (and a ConfigError naming the key)
            bad()


def test_a_checkpoint_with_an_out_of_bounds_architecture_is_refused_naming_the_file(tmp_path):
    """``load_denoiser`` does not trust the architecture a checkpoint declares (a million layers would
    allocate without limit): refused before any layer is built, naming the file and the key."""
    from benchmark.defenses.denoiser import CheckpointError, load_denoiser

    ck = tmp_path / "den.pt"
    for arch, message in (({"depth": 1_000_000, "channels": 48}, "depth must be an integer within 2..64"),
                          ({"depth": 8, "channels": 2**40}, "channels must be an integer within 1..512"),
                          ({"depth": 8, "layers": 3}, "is not a table of depth and channels")):
        torch.save({"arch": arch, "state_dict": {}}, ck)
        with pytest.raises(CheckpointError, match=message) as err:
            load_denoiser(ck)
        assert str(ck) in str(err.value)
        rc, _, out = validate(tmp_path, f'[[attacks]]\nname = "fgsm"\n[[defenses]]\nname = "dncnn"\nweights = "{ck}"\n')
        assert_one_line_error(rc, out)
        assert "key 'defenses[0].weights'" in out and str(ck) in out and message in out, out
        rc, _, out = validate(tmp_path, f'[[attacks]]\nname = "fgsm"\n[[defenses]]\nname = "denoised_smoothing"\n'
                                        f'denoiser = "{ck}"\n')
        assert_one_line_error(rc, out)
        assert str(ck) in out and message in out, out


def test_the_manifest_records_canonical_and_resolved_parameters(tmp_path):
    from benchmark.config import load_config
    from benchmark.manifest import write_manifest

    path = tmp_path / "matrix.toml"
    path.write_text(HEAD + '[[attacks]]\nname = "pgd"\nsteps = 3\n[[defenses]]\nname = "median"\nkernel = 3\n')
    cfg = load_config(path)
    write_manifest(tmp_path, cfg)
    plugins = json.loads((tmp_path / "manifest.json").read_text())["plugins"]
    pgd, median = plugins["attacks"][0], plugins["defenses"][0]
    assert pgd["params"] == {"steps": 3}                             # canonical: only what differs from the defaults
    assert pgd["resolved_params"] == {"eps": pytest.approx(8 / 255), "steps": 3, "alpha": None, "random_start": True,
                                      "restarts": 1, "norm": "linf", "direction": "increase"}
    assert median["params"] == {} and median["resolved_params"] == {"kernel": 3}
    dataset = plugins["datasets"][0]["resolved_params"]
    assert dataset["limit"] == 2 and dataset["size"] == 176 and "levels" in dataset
    for fam in plugins:  # the same as the config layer's resolution, for every plugin
        for entry, spec in zip(plugins[fam], getattr(cfg, fam)):
            assert entry["resolved_params"] == json.loads(json.dumps(spec.resolved(), default=str))
