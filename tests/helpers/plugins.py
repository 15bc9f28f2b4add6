"""Which plugins the contract tests check, and how to build one small enough for a test.

:func:`registered` lists, per family, every plugin a user can name: the package's own, those of installed
packages' entry points (``benchmark.<family>``), and those of plugin files (``examples/*.py`` and the files
named in the environment variable ``BENCHMARK_PLUGIN_FILES``, separated by ``os.pathsep``). A plugin file's
names are read from its ``@DEFENSES.register("name")`` decorators without importing it, so that collecting the
tests registers nothing; the file is loaded, through the same :func:`benchmark.registry.load_plugin_file` a
config's ``plugins = [...]`` uses, when a test of one of its plugins runs.
"""
from __future__ import annotations

import ast
import importlib.metadata
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from benchmark.registry import REGISTRIES, load_builtin_plugins, load_plugin_file
from conftest import CNNIQA_WEIGHTS, ROOT, tiny_images, write_image_folder

PLUGIN_FILES_ENV = "BENCHMARK_PLUGIN_FILES"
# the registry objects a plugin file decorates with, by the name benchmark.registry gives them
REGISTRY_NAMES = {"DATASETS": "datasets", "METRICS": "metrics", "ATTACKS": "attacks", "DEFENSES": "defenses"}

# Keywords that set how much work a plugin does: the contract tests pass these small values when the
# plugin takes them, so that every plugin runs in about a second. Building from the defaults is checked
# separately (test_builds_from_defaults).
SMALL = {"steps": 2, "queries": 40, "iters": 2, "epochs": 1, "popsize": 8, "n": 20, "n0": 10, "samples": 4,
         "max_iters": 1, "size": 64, "batch_size": 4, "block_batch": 8, "restarts": 1, "train_images": 8,
         "images": 8, "limit": 8, "t_star": 2}


@dataclass(frozen=True)
class Plugin:
    """One registered plugin as the contract tests see it: its family, its name, the plugin file that
    registers it (None: the package or an entry point), and the constructor keywords of the behaviour
    checks (None: the values of :data:`SMALL` its constructor takes)."""

    family: str
    name: str
    file: Path | None = None
    params: dict[str, Any] | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return self.name

    def cls(self) -> type:
        """The registered class (its plugin file loaded first, as ``plugins = [...]`` in a config loads it)."""
        load_builtin_plugins()
        if self.file is not None:
            load_plugin_file(self.file)
        return REGISTRIES[self.family].get(self.name)

    def required(self) -> list[str]:
        self.cls()
        return required(self.family, self.name)

    def small_params(self) -> dict[str, Any]:
        self.cls()
        return small_kwargs(self.family, self.name) if self.params is None else dict(self.params)


def plugin_files() -> list[Path]:
    """The plugin files whose plugins the contracts check: the examples' and those of BENCHMARK_PLUGIN_FILES."""
    named = [Path(p) for p in os.environ.get(PLUGIN_FILES_ENV, "").split(os.pathsep) if p]
    for p in named:
        if not p.is_file():
            raise FileNotFoundError(f"{PLUGIN_FILES_ENV} names {p}, which is not a file")
    return sorted((ROOT / "examples").glob("*.py")) + named


def declared(path: Path) -> list[tuple[str, str]]:
    """``(family, name)`` of each ``@<REGISTRY>.register("name")`` decorator in the plugin file ``path``
    (``from benchmark.registry import DEFENSES as D`` understood), read without importing the file."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=str(path))
    alias = dict(REGISTRY_NAMES)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "benchmark.registry":
            alias.update({a.asname: REGISTRY_NAMES[a.name] for a in node.names if a.asname and a.name in alias})
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "register"
                and isinstance(node.func.value, ast.Name) and node.func.value.id in alias
                and len(node.args) == 1 and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)):
            found.append((alias[node.func.value.id], node.args[0].value))
    return found


def registered(family: str) -> list[Plugin]:
    """Every plugin of ``family`` a user can name (see the module's docstring), each once, the package's first.
    Plugins that test modules register for themselves (``noop_for_test``) are not among them."""
    load_builtin_plugins()
    reg = REGISTRIES[family]
    from_entry_points = {ep.name for ep in importlib.metadata.entry_points(group=reg.entry_point_group)}
    out = [Plugin(family, n) for n in reg.names()
           if reg.get(n).__module__.startswith("benchmark.") or n in from_entry_points]
    seen = {p.name for p in out}
    for path in plugin_files():
        for fam, name in declared(path):
            if fam == family and name not in seen:
                out.append(Plugin(family, name, path.resolve()))
                seen.add(name)
    return out


def builtin(family: str) -> list[str]:
    """The names of the plugins this package registers in ``family`` (not third-party entry points)."""
    load_builtin_plugins()
    reg = REGISTRIES[family]
    return [n for n in reg.names() if reg.get(n).__module__.startswith("benchmark.")]


def required(family: str, name: str) -> list[str]:
    return [p["name"] for p in REGISTRIES[family].describe(name)["params"] if p["required"]]


def small_kwargs(family: str, name: str) -> dict:
    names = {p["name"] for p in REGISTRIES[family].describe(name)["params"]}
    return {k: v for k, v in SMALL.items() if k in names}


def build(family: str, name: str, **kwargs):
    """The plugin built with ``kwargs``; skipped, with the reason, when it needs a file the caller did not give."""
    missing = [p for p in required(family, name) if p not in kwargs]
    if missing:
        pytest.skip(f"{family[:-1]} {name} needs {missing} (a weights file or data folder): its own tests cover it")
    return REGISTRIES[family].get(name)(**kwargs)


def images(n: int = 2, size: int = 64) -> torch.Tensor:
    """``n`` real photographs with graded noise, B×3×size×size in [0, 1]."""
    return torch.stack([torch.from_numpy(a).permute(2, 0, 1).float() / 255 for _, a, _ in tiny_images(n, size)])


def default_metric():
    from benchmark.metrics.default_model import DefaultModel

    m = DefaultModel().eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def takes(cls: type, keyword: str) -> bool:
    return keyword in inspect.signature(cls.__init__).parameters


# -- files for the plugins' required parameters ------------------------------------------------------
def _denoiser(root: Path) -> Path:
    from helpers.weights import save_tiny_denoiser

    return save_tiny_denoiser(root / "denoiser.pt", untrained=False)


def _ddpm(root: Path) -> Path:
    pytest.importorskip("diffusers", reason="diffusers not installed (pip install -e '.[diffpure]')")
    from helpers.weights import save_tiny_ddpm

    return save_tiny_ddpm(root / "ddpm")


def _image_folder(root: Path) -> Path:
    return write_image_folder(root / "images", n=4)


def _cnniqa(root: Path) -> Path:
    if not CNNIQA_WEIGHTS.exists():
        pytest.skip(f"needs {CNNIQA_WEIGHTS} (the ../shared test material beside the checkout)")
    return CNNIQA_WEIGHTS


# Required parameters of built-in plugins that a test can satisfy with a small file made here (random weights);
# the other required files (official checkpoints) are their plugins' own tests' business: those skip.
MAKERS: dict[tuple[str, str, str], Callable[[Path], Path]] = {
    ("defenses", "dncnn", "weights"): _denoiser, ("defenses", "denoised_smoothing", "denoiser"): _denoiser,
    ("defenses", "diffpure", "model_dir"): _ddpm, ("defenses", "diffusion_smoothing", "model"): _ddpm,
    ("datasets", "folder", "root"): _image_folder, ("metrics", "cnniqa", "weights"): _cnniqa,
}


class RequiredFiles:
    """Makes, once per test session and on first use, the files that :data:`MAKERS` knows."""

    def __init__(self, root: Path):
        self.root = root
        self.made: dict[Callable, Path] = {}

    def kwargs(self, plugin: Plugin) -> dict[str, Path]:
        """Files for the required parameters of ``plugin`` that a test can make; the rest are left out."""
        out = {}
        for key in plugin.required():
            make = MAKERS.get((plugin.family, plugin.name, key))
            if make is not None:
                if make not in self.made:
                    self.made[make] = make(self.root)
                out[key] = self.made[make]
        return out
