from __future__ import annotations

import pytest

from benchmark.cli import main
from benchmark.config import load_config
from benchmark.errors import ConfigError

from conftest import ROOT, write_config

BASE = """
[run]
name = "t"
[[datasets]]
name = "synthetic"
[[metrics]]
name = "default"
[[attacks]]
name = "pgd"
{attack}
[[defenses]]
name = "jpeg"
{defense}
"""


def cfg(tmp_path, attack="", defense=""):
    return load_config(write_config(tmp_path, BASE.format(attack=attack, defense=defense)))


def test_lists_expand_into_a_product_and_fractions_parse(tmp_path):
    c = cfg(tmp_path, attack='eps = ["2/255", "8/255", 0.1]\nsteps = [5, 10]', defense="quality = [30, 70]")
    assert len(c.attacks) == 6 and len(c.defenses) == 2 and c.n_cells == 12
    assert sorted({a.params["eps"] for a in c.attacks}) == pytest.approx([2 / 255, 8 / 255, 0.1])
    assert c.attacks[0].label == "pgd(eps=2/255,steps=5)"


def test_quickstart_is_valid():
    c = load_config(ROOT / "examples" / "quickstart.toml")
    assert {s.name for s in c.defenses} >= {"identity", "jpeg", "pixel_deflection"}


@pytest.mark.parametrize("attack,defense,key,match", [
    ("epss = 0.1", "", "attacks[0].epss", "did you mean 'eps'"),
    ('eps = "a lot"', "", "attacks[0].eps", "expected a number or a fraction"),
    ("steps = 2.5", "", "attacks[0].steps", "expected an integer"),
    ("eps = -0.1", "", "attacks[0]", "need eps > 0"),
    ("", "quality = 150", "defenses[0]", "quality must be within"),
    ("", 'quality = "high"', "defenses[0].quality", "expected an integer"),
    ("direction = \"sideways\"", "", "attacks[0].direction", "expected one of"),
])
def test_bad_values_name_the_key(tmp_path, attack, defense, key, match):
    with pytest.raises(ConfigError, match=match) as err:
        cfg(tmp_path, attack, defense)
    assert err.value.key == key and err.value.file.endswith("matrix.toml")


def test_unknown_plugin_missing_section_unknown_keys(tmp_path):
    with pytest.raises(ConfigError, match="unknown attack 'pgdd'.*did you mean 'pgd'") as err:
        load_config(write_config(tmp_path, BASE.format(attack="", defense="").replace('"pgd"', '"pgdd"')))
    assert err.value.key == "attacks[0].name"
    with pytest.raises(ConfigError, match=r"missing section \[\[metrics\]\]"):
        load_config(write_config(tmp_path, '[[datasets]]\nname="synthetic"\n'))
    with pytest.raises(ConfigError, match="unknown key") as err:
        load_config(write_config(tmp_path, BASE.format(attack="", defense="").replace('name = "t"', 'nme = "t"')))
    assert err.value.key == "run.nme"
    with pytest.raises(ConfigError, match="unknown top-level key"):
        load_config(write_config(tmp_path, BASE.format(attack="", defense="") + "\n[extras]\nx = 1\n"))
    with pytest.raises(ConfigError, match="missing required key 'name'"):
        load_config(write_config(tmp_path, BASE.format(attack="", defense="") + "\n[[attacks]]\neps = 0.1\n"))


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write_config(tmp_path, "[run\nname = 1"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.toml")


def test_duplicate_entries_rejected(tmp_path):
    with pytest.raises(ConfigError, match="duplicate entries"):
        cfg(tmp_path, attack='eps = ["8/255", "8/255"]')


def test_cli_prints_one_clear_line_and_no_traceback(tmp_path, capsys):
    path = write_config(tmp_path, BASE.format(attack="steps = 'ten'", defense=""))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert "matrix.toml" in err and "attacks[0].steps" in err and "expected an integer" in err


def test_cli_validate_ok(tmp_path, capsys):
    assert main(["validate", str(write_config(tmp_path, BASE.format(attack="", defense="")))]) == 0
    assert "valid; 1 cells" in capsys.readouterr().out
