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


# -- the family's base class is required ---------------------------------------------------------------------------
def test_a_class_that_does_not_derive_from_the_family_base_is_refused_naming_both():
    class NotADefense:
        def __init__(self, quality: int = 50):
            pass

    with pytest.raises(PluginError) as err:
        DEFENSES.register("not_a_defense_for_test")(NotADefense)
    text = str(err.value)
    assert "defense 'not_a_defense_for_test'" in text
    assert f"{NotADefense.__module__}.{NotADefense.__qualname__}" in text
    assert "must derive from benchmark.defenses.base.Defense" in text
    assert "not_a_defense_for_test" not in DEFENSES.names()


def test_each_family_requires_its_own_base_class():
    from benchmark.attacks.base import Attack
    from benchmark.datasets.base import Dataset
    from benchmark.defenses.base import Defense
    from benchmark.metrics.base import Metric
    from benchmark.registry import REGISTRIES

    bases = {"datasets": Dataset, "metrics": Metric, "attacks": Attack, "defenses": Defense}
    assert {f: r.base_class() for f, r in REGISTRIES.items()} == bases
    # a defense is not an attack: the wrong family's base is refused too
    with pytest.raises(PluginError, match=r"must derive from benchmark\.attacks\.base\.Attack"):
        REGISTRIES["attacks"].add("defense_as_attack_for_test", Defense)
    load_builtin_plugins()
    for family, registry in REGISTRIES.items():  # every built-in plugin passes the check it was registered with
        assert all(issubclass(registry.get(n), bases[family]) for n in registry.names()), family


def test_an_entry_point_that_is_not_a_family_plugin_is_left_out_with_a_warning(monkeypatch, caplog):
    import importlib.metadata as md

    ep = md.EntryPoint(name="ep_not_metric", value="test_registry:_B", group="benchmark.gadgets")
    monkeypatch.setattr(md, "entry_points", lambda group=None: [ep] if group == "benchmark.gadgets" else [])
    reg = Registry("gadget", "gadgets", "benchmark.metrics.base:Metric")
    with caplog.at_level("WARNING", logger="benchmark.registry"):
        assert reg.names() == []
    assert "ep_not_metric" in caplog.text and "must derive from benchmark.metrics.base.Metric" in caplog.text


def test_a_plugin_file_with_a_class_of_no_family_is_a_config_error_naming_the_file(tmp_path, capsys):
    from benchmark.cli import main

    plugin = tmp_path / "bad_plugin.py"
    plugin.write_text("from benchmark.registry import ATTACKS\n\n\n@ATTACKS.register('plain_for_test')\n"
                      "class Plain:\n    def __init__(self, eps: float = 0.1):\n        self.eps = eps\n")
    cfg = tmp_path / "m.toml"
    cfg.write_text('[run]\nplugins = ["bad_plugin.py"]\n[[datasets]]\nname = "synthetic"\n[[metrics]]\n'
                   'name = "default"\n[[attacks]]\nname = "fgsm"\n[[defenses]]\nname = "identity"\n')
    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}, key 'run.plugins': plugin file {plugin}: attack 'plain_for_test'" in err
    assert "must derive from benchmark.attacks.base.Attack" in err and "Traceback" not in err


# -- built-in plugins are found by module convention ---------------------------------------------------------------
def test_the_family_packages_keep_no_import_list_and_every_module_is_loaded():
    import importlib
    import pkgutil
    import sys

    load_builtin_plugins()
    for family in ("datasets", "metrics", "attacks", "defenses"):
        init = (ROOT / "benchmark" / family / "__init__.py").read_text()
        assert "noqa: F401" not in init and "registration" not in init, family  # no hand-kept list of modules
        package = importlib.import_module(f"benchmark.{family}")
        modules = [m.name for m in pkgutil.iter_modules(package.__path__)]
        assert len(modules) >= 5 and all(f"benchmark.{family}.{m}" in sys.modules for m in modules), family


def test_a_new_module_in_a_family_package_is_registered_without_being_listed(tmp_path, monkeypatch):
    """The convention on a family package of its own: every module imported, helpers register nothing."""
    import sys

    package = tmp_path / "gizmos_for_test"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from benchmark.registry import Registry\n\nGIZMOS = Registry('gizmo', 'gizmos', None, 'gizmos_for_test')\n")
    (package / "helpers.py").write_text("TWO = 2\n")
    for name in ("alpha", "beta"):
        (package / f"{name}.py").write_text(
            f"from gizmos_for_test import GIZMOS\n\n\n@GIZMOS.register('{name}')\nclass Gizmo:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        from gizmos_for_test import GIZMOS

        assert GIZMOS.names() == ["alpha", "beta"]
        assert GIZMOS.get("beta").__module__ == "gizmos_for_test.beta"
        assert "gizmos_for_test.helpers" in sys.modules
    finally:
        for name in [m for m in sys.modules if m.split(".")[0] == "gizmos_for_test"]:
            del sys.modules[name]
