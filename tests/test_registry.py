from __future__ import annotations

import pytest

from benchmark.errors import ConfigError, PluginError
from benchmark.registry import DEFENSES, Registry, load_builtin_plugins, load_plugin_file

from conftest import ROOT


class _A:
    """A plugin."""

    def __init__(self, x: int = 1, y: float = 0.5):
        pass


class _B:
    def __init__(self):
        pass


def test_register_get_and_describe():
    reg = Registry("widget", "widgets")
    reg.register("alpha")(_A)
    assert reg.get("alpha") is _A
    assert reg.names() == ["alpha"]
    desc = reg.describe("alpha")
    assert desc["summary"] == "A plugin."
    assert [(p["name"], p["default"]) for p in desc["params"]] == [("x", 1), ("y", 0.5)]


def test_no_silent_overwrite():
    reg = Registry("widget", "widgets")
    reg.add("alpha", _A)
    reg.add("alpha", _A)  # the same class again is fine (e.g. a module imported twice)
    with pytest.raises(PluginError, match="already registered"):
        reg.add("alpha", _B)
    assert reg.get("alpha") is _A


def test_unknown_name_suggests_closest():
    load_builtin_plugins()
    with pytest.raises(ConfigError, match=r"unknown defense 'jpg'.*did you mean 'jpeg'"):
        DEFENSES.get("jpg")


def test_entry_points_are_loaded(monkeypatch):
    import importlib.metadata as md

    ep = md.EntryPoint(name="ep_widget", value="test_registry:_B", group="benchmark.widgets")
    monkeypatch.setattr(md, "entry_points", lambda group=None: [ep] if group == "benchmark.widgets" else [])
    reg = Registry("widget", "widgets")
    assert reg.get("ep_widget") is _B


def test_builtin_families_are_populated():
    load_builtin_plugins()
    from benchmark.registry import ATTACKS, DATASETS, METRICS

    assert {"fgsm", "pgd"} <= set(ATTACKS.names())
    assert {"identity", "jpeg", "median", "flip"} <= set(DEFENSES.names())
    assert {"default", "cnniqa", "pyiqa"} <= set(METRICS.names())
    assert {"synthetic", "folder"} <= set(DATASETS.names())


def test_plugin_file_registers_and_reload_is_idempotent():
    path = ROOT / "examples" / "my_defense.py"
    load_plugin_file(path)
    load_plugin_file(path)
    assert "pixel_deflection" in DEFENSES


def test_missing_plugin_file():
    with pytest.raises(ConfigError, match="plugin file not found"):
        load_plugin_file(ROOT / "examples" / "nope.py")
