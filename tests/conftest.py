"""Shared fixtures. Tests run offline: Hugging Face lookups are switched off before anything imports it."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("BENCHMARK_OFFLINE", "1")
if "BENCHMARK_CACHE_DIR" not in os.environ:  # synthetic labels cached per test session, not in ~/.cache
    import tempfile

    os.environ["BENCHMARK_CACHE_DIR"] = tempfile.mkdtemp(prefix="benchmark-cache-")

import csv  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BENCHMARK_SHARED", ROOT.parent / "shared"))
CNNIQA_WEIGHTS = SHARED / "models" / "cnniqa-live" / "CNNIQA-LIVE"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def need_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"needs {path} (the ../shared test material beside the checkout)")
    return path


@pytest.fixture
def cnniqa_weights() -> Path:
    return need_shared(CNNIQA_WEIGHTS)


def tiny_images(n: int = 6, size: int = 96) -> list[tuple[str, np.ndarray, float]]:
    """n small real photographs (scikit-image) with graded noise, and a MOS that falls with the noise."""
    from benchmark.photos import load_photo, square

    photos = ["astronaut", "coffee", "rocket", "chelsea"]
    out = []
    rng = np.random.default_rng(0)
    for i in range(n):
        x = square(load_photo(photos[i % len(photos)]), size)
        level = 0.02 * (i // len(photos) + i % 3)
        x = (x + level * torch.from_numpy(rng.standard_normal(x.shape)).float()).clamp(0, 1)
        arr = (x * 255).round().byte().permute(1, 2, 0).numpy()
        out.append((f"img{i:02d}.png", arr, 100.0 - 500 * level + i))
    return out


def write_image_folder(root: Path, n: int = 6) -> Path:
    """``root`` made a folder of ``n`` small PNGs (:func:`tiny_images`) with mos.csv (columns image, mos)."""
    root.mkdir()
    with (root / "mos.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "mos"])
        for name, arr, mos in tiny_images(n):
            Image.fromarray(arr).save(root / name)
            w.writerow([name, mos])
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A folder of 6 small PNGs with mos.csv (columns image, mos)."""
    return write_image_folder(tmp_path / "images")


def write_config(tmp_path: Path, body: str, name: str = "matrix.toml") -> Path:
    p = tmp_path / name
    p.write_text(body)
    return p


def folder_config(tmp_path: Path, name: str, image_folder: Path, tables: str, *, run_extra: str = "",
                  limit: int | None = None, mos: bool = False) -> Path:
    """A matrix on the tiny image folder at 96×96: [run] and [[datasets]] written here, the rest given."""
    dataset = f'root = "{image_folder}"'
    dataset += f"\nlimit = {limit}" if limit else ""
    dataset += f'\nmos_csv = "{image_folder / "mos.csv"}"' if mos else ""
    return write_config(tmp_path, f"""
[run]
name = "{name}"
output_dir = "{tmp_path / 'runs'}"
image_size = 96
{run_extra}
[[datasets]]
name = "folder"
{dataset}
{tables}""", name=f"{name}.toml")


def fgsm_pgd_tables(steps: int = 3, quality: int = 50, defenses: tuple[str, ...] = ("identity", "jpeg"),
                    adaptive: bool | None = False) -> str:
    """[[metrics]] default, [[attacks]] FGSM and PGD (``steps``) at 4/255, and ``defenses`` (jpeg at ``quality``).

    ``adaptive``: written into both attack tables (False, the default here: transfer attacks only, which keeps the
    tests that are about something else as fast as before adaptive attacks became the matrix's default); None
    leaves the key out (each attack then also runs adaptively against every non-baseline defense)."""
    mode = "" if adaptive is None else f"adaptive = {str(adaptive).lower()}\n"
    tables = f"""
[[metrics]]
name = "default"
[[attacks]]
name = "fgsm"
eps = "4/255"
{mode}[[attacks]]
name = "pgd"
eps = "4/255"
steps = {steps}
{mode}"""
    for d in defenses:
        tables += f'[[defenses]]\nname = "{d}"\n' + (f"quality = {quality}\n" if d == "jpeg" else "")
    return tables


DEFAULT_FGSM_IDENTITY = """
[[metrics]]
name = "default"
[[attacks]]
name = "fgsm"
[[defenses]]
name = "identity"
"""


@pytest.fixture
def small_matrix(tmp_path: Path, image_folder: Path) -> Path:
    """A 1×1×2×3 matrix on the tiny folder with the shipped default model (seconds on a CPU)."""
    return write_config(tmp_path, f"""
[run]
name = "small"
output_dir = "{tmp_path / 'runs'}"
batch_size = 4
image_size = 96

[[datasets]]
name = "folder"
root = "{image_folder}"
mos_csv = "{image_folder / 'mos.csv'}"
{fgsm_pgd_tables(steps=5, defenses=("identity", "jpeg", "median"))}""")


def example_copy(tmp_path: Path, *names: str) -> Path:
    """The examples folder copied to ``tmp_path/examples`` with the development checkout's weights linked into
    ``examples/models/`` where the examples expect a user to put them (CNNIQA-LIVE, NIQE's LIVE model); returns
    the copy's folder. Without ``../shared`` the links are left out and the examples' optional entries skip."""
    import shutil

    dst = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", dst, ignore=shutil.ignore_patterns("models", "__pycache__", "*.py"))
    for plugin in (ROOT / "examples").glob("*.py"):  # linked: the same plugin file, registered once per process
        (dst / plugin.name).symlink_to(plugin)
    (dst / "models").mkdir()
    for name, src in (("CNNIQA-LIVE", CNNIQA_WEIGHTS), ("niqe_modelparameters.mat",
                                                       SHARED / "models" / "niqe-live" / "niqe_modelparameters.mat")):
        if src.exists():
            (dst / "models" / name).symlink_to(src)
    return dst


def interrupt_defended_stages(monkeypatch, on_call: int):
    """Make the ``on_call``-th defended stage (def_clean or def_adv, counted together) raise KeyboardInterrupt, as
    a user's Ctrl-C would mid-run; returns a function that restores the stage functions."""
    from dataclasses import replace

    from benchmark.stages import defend

    calls = {"n": 0}
    originals = {"CLEAN": defend.CLEAN, "ADV": defend.ADV}

    def wrap(kind):
        def run(ctx, stage):
            calls["n"] += 1
            if calls["n"] == on_call:
                raise KeyboardInterrupt
            return kind.run(ctx, stage)
        return replace(kind, run=run)

    for name, kind in originals.items():
        monkeypatch.setattr(defend, name, wrap(kind))

    def restore():
        for name, kind in originals.items():
            monkeypatch.setattr(defend, name, kind)
    return restore
