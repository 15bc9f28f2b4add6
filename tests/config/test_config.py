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
    assert len(c.attacks) == 6 and len(c.defenses) == 2
    assert c.n_cells == 24   # each attack also runs adaptively (its +adaptive twin) against each jpeg
    assert sorted({a.resolved()["eps"] for a in c.attacks}) == pytest.approx([2 / 255, 8 / 255, 0.1])
    assert c.attacks[0].label == "pgd(eps=2/255,steps=5)"


def test_quickstart_is_valid():
    c = load_config(ROOT / "examples" / "quickstart.toml")
    assert {s.name for s in c.defenses} >= {"identity", "jpeg", "pixel_deflection"}


@pytest.mark.parametrize("attack,defense,key,match", [
    ("epss = 0.1", "", "attacks[0].epss", "did you mean 'eps'"),
    ('eps = "a lot"', "", "attacks[0].eps", "expected a number or a fraction"),
    ("steps = 2.5", "", "attacks[0].steps", "expected an integer"),
    ("eps = -0.1", "", "attacks[0].eps", r"eps must be a number within \(0, 1\], got -0.1"),
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
    out = capsys.readouterr().out
    assert "valid; 2 cells" in out and "adaptive by default: pgd(eps=8/255) also run(s) adaptively" in out  # transfer + twin


# -- canonical parameters and labels (issue #13) ---------------------------------------------------
def test_a_default_written_out_is_the_same_entry_with_the_same_label(tmp_path):
    plain, explicit = cfg(tmp_path), cfg(tmp_path, attack='eps = "8/255"\nsteps = 10', defense="quality = 50")
    for a, b in ((plain.attacks[0], explicit.attacks[0]), (plain.defenses[0], explicit.defenses[0])):
        assert a.label == b.label and a.key() == b.key() and a.params == b.params
    # label: the parameters that differ from the defaults, plus an attack's strength parameter, in signature order
    assert plain.attacks[0].label == "pgd(eps=8/255)" and plain.defenses[0].label == "jpeg"
    assert plain.attacks[0].params == {} and plain.attacks[0].resolved()["steps"] == 10
    c = cfg(tmp_path, attack='steps = 5\neps = "2/255"\nrestarts = 1', defense="quality = 30")
    assert c.attacks[0].label == "pgd(eps=2/255,steps=5)" and c.defenses[0].label == "jpeg(quality=30)"


def test_duplicates_are_found_on_resolved_parameters(tmp_path):
    with pytest.raises(ConfigError, match="duplicate entries: jpeg again, as in defenses.0.") as err:
        load_config(write_config(tmp_path, BASE.format(attack="", defense="") + '[[defenses]]\nname = "jpeg"\n'
                                 "quality = 50\n"))
    assert err.value.key == "defenses[1]"
    with pytest.raises(ConfigError, match="duplicate entries") as err:
        cfg(tmp_path, attack='eps = ["8/255", 0.03137254901960784]')   # the same float, written twice
    assert err.value.key == "attacks[0]"
    # the same parameters under two labels are still one attack computed twice: refused
    with pytest.raises(ConfigError, match="duplicate entries"):
        load_config(write_config(tmp_path, BASE.format(attack='label = "a"', defense="") +
                                 '[[attacks]]\nname = "pgd"\nlabel = "b"\n'))


@pytest.mark.parametrize("value,text", [(8 / 255, "8/255"), (10 / 255, "10/255"), (0.2, "0.2"), (0.5, "0.5"),
                                        (1 / 510, "1/510"), (1e-3, "0.001"), (0.12, "0.12"), (1 / 3, "85/255"),
                                        (0.1234567891, "0.1234567891"), (100.0, "100")])
def test_numbers_print_as_people_write_them(value, text):
    from benchmark.registry import number_text

    assert number_text(value) == text


# -- hostile and careless values (issue #13): one ConfigError naming the key -------------------------
TABLES = """
[run]
name = "t"
{run}
[[datasets]]
name = "{dataset}"
{dparams}
[[metrics]]
name = "{metric}"
{mparams}
[[attacks]]
name = "{attack}"
{aparams}
[[defenses]]
name = "{defense}"
{fparams}
"""


def matrix(tmp_path, run="", dataset="synthetic", dparams="", metric="default", mparams="", attack="pgd",
           aparams="", defense="jpeg", fparams=""):
    return write_config(tmp_path, TABLES.format(run=run, dataset=dataset, dparams=dparams, metric=metric,
                                                mparams=mparams, attack=attack, aparams=aparams, defense=defense,
                                                fparams=fparams))


HOSTILE = [
    (dict(aparams="eps = nan"), "attacks[0].eps", "expected a finite number, got nan"),
    (dict(aparams="alpha = inf"), "attacks[0].alpha", "expected a finite number, got inf"),
    (dict(aparams='eps = "1e400"'), "attacks[0].eps", "expected a finite number"),
    (dict(aparams="eps = -inf"), "attacks[0].eps", "expected a finite number"),
    (dict(fparams="quality = nan"), "defenses[0].quality", "expected a finite number"),
    (dict(aparams="eps = " + "[" * 500 + "1" + "]" * 500), None, "nested too deeply"),
    (dict(aparams="eps = " + "[" * 30 + "1" + "]" * 30), "attacks[0].eps" + "[0]" * 14, "nested more than 16 levels"),
    (dict(aparams="steps = " + "9" * 5000), None, "an integer with thousands of digits"),
    (dict(aparams="steps = " + "9" * 25), "attacks[0].steps", "integer out of range"),
    (dict(aparams="alpha = -0.01"), "attacks[0].alpha", r"alpha must be a number within \(0, 1\]"),
    (dict(attack="mifgsm", aparams="alpha = -0.01"), "attacks[0].alpha", r"alpha must be a number within \(0, 1\]"),
    (dict(aparams="eps = 2"), "attacks[0].eps", r"eps must be a number within \(0, 1\], got 2"),
    (dict(attack="fgsm", aparams="eps = 1.5"), "attacks[0]", r"eps must be within \(0, 1\]"),
    (dict(attack="square", aparams="eps = 3"), "attacks[0].eps", r"eps must be a number within \(0, 1\]"),
    (dict(run='device = "banana"'), "run.device", "'banana' is not a device name"),
    (dict(run="image_size = 100000"), "run.image_size", "within 32..4096"),
    (dict(run="image_size = [64, 5000]"), "run.image_size", "within 32..4096"),
    (dict(dparams="limit = 0"), "datasets[0].limit", "expected a number of images >= 1, got 0"),
    (dict(dparams="limit = -3"), "datasets[0].limit", ">= 1, got -3"),
    (dict(dparams="levels = []"), "datasets[0].levels", "empty list"),
    (dict(dparams="distortions = []"), "datasets[0].distortions", "empty list"),
    (dict(dparams="levels = [1, 1]"), "datasets[0].levels", "listed twice"),
    (dict(dparams='distortions = ["fog"]'), "datasets[0].distortions", "unknown distortion"),
    (dict(dparams="size = 100000"), "datasets[0].size", "within 176..4096"),
    (dict(aparams="adaptive = false\neot_samples = 4"), "attacks[0].eot_samples", "remove adaptive = false"),
    (dict(aparams="steps = [" + ",".join(map(str, range(1, 41))) + "]\nrestarts = ["
          + ",".join(map(str, range(1, 41))) + "]"), "attacks[0]", "expand into 1600 attacks"),
    (dict(aparams='"a\\nb" = 1'), 'attacks[0]."a\\nb"', "unknown parameter"),
    (dict(dataset="koniq10k", dparams='root = "."\ntrain_fraction = 1.0'), "datasets[0].train_fraction",
     "0 < train_fraction < 1"),
]


@pytest.mark.parametrize("tables,key,match", HOSTILE, ids=[h[2][:30] for h in HOSTILE])
def test_hostile_values_are_one_config_error_naming_the_key(tmp_path, tables, key, match):
    with pytest.raises(ConfigError, match=match) as err:
        load_config(matrix(tmp_path, **tables))
    assert err.value.key == key and err.value.file.endswith("matrix.toml")
    assert "\n" not in str(err.value)


def test_metric_and_dataset_values_are_checked_without_loading_them(tmp_path, monkeypatch):
    import torch

    calls = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(a) or {})
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"not read at validation")
    with pytest.raises(ConfigError, match=r"expected \[lo, hi\] with lo < hi, got \[5, 5\]") as err:
        load_config(matrix(tmp_path, metric="cnniqa", mparams='weights = "w.pt"\nscore_range = [5, 5]'))
    assert err.value.key == "metrics[0].score_range"
    with pytest.raises(ConfigError, match="expected a file, got the folder") as err:
        load_config(matrix(tmp_path, metric="cnniqa", mparams=f'weights = "{tmp_path}"'))
    assert err.value.key == "metrics[0].weights"
    with pytest.raises(ConfigError, match="'package.module:Class'") as err:
        load_config(matrix(tmp_path, metric="torch_module", mparams='factory = "not a factory"\nscore_range = [0, 1]'))
    assert err.value.key == "metrics[0].factory"
    with pytest.raises(ConfigError, match="expected a folder, got the file") as err:
        load_config(matrix(tmp_path, dataset="folder", dparams='root = "w.pt"'))
    assert err.value.key == "datasets[0].root"
    c = load_config(matrix(tmp_path, metric="cnniqa", mparams='weights = "w.pt"\nscore_range = [0, 10]'))
    assert c.metrics[0].label == "cnniqa(weights=w.pt,score_range=[0,10])" and calls == []


def test_folder_mos_range_is_checked_and_used(tmp_path, image_folder):
    from benchmark.datasets.folder import ImageFolder
    from benchmark.errors import DataError

    with pytest.raises(ConfigError, match="give mos_csv too") as err:
        load_config(matrix(tmp_path, dataset="folder", dparams=f'root = "{image_folder}"\nmos_range = [0, 100]'))
    assert err.value.key == "datasets[0].mos_range"
    with pytest.raises(ConfigError, match="lo < hi") as err:
        load_config(matrix(tmp_path, dataset="folder", dparams=f'root = "{image_folder}"\nmos_csv = '
                           f'"{image_folder / "mos.csv"}"\nmos_range = [1, 0]'))
    assert err.value.key == "datasets[0].mos_range"
    # the tiny folder's MOS are 100 - 500·noise + i: within [0, 110], not within [0, 50]
    ds = ImageFolder(image_folder, mos_csv=image_folder / "mos.csv", mos_range=(0.0, 110.0))
    assert len(ds) == 6 and ds.mos_range == (0.0, 110.0)
    with pytest.raises(DataError, match=r"mos.csv: MOS \d+(\.\d+)? of 'img\d\d.png' lies outside mos_range \[0, 50\]"):
        ImageFolder(image_folder, mos_csv=image_folder / "mos.csv", mos_range=(0.0, 50.0))


def test_pyiqa_weights_given_in_options_or_as_a_parameter_are_one_entry(tmp_path):
    import torch

    torch.save({"params": {"w": torch.zeros(2)}}, tmp_path / "niqe.pth")
    options = 'metric = "niqe"\noptions = {pretrained_model_path = "niqe.pth"}'
    top = 'metric = "niqe"\npretrained_model_path = "niqe.pth"'
    a = load_config(matrix(tmp_path, metric="pyiqa", mparams=options)).metrics[0]
    b = load_config(matrix(tmp_path, metric="pyiqa", mparams=top)).metrics[0]
    assert a.key() == b.key() and a.label == b.label == "pyiqa(metric=niqe,pretrained_model_path=niqe.pth)"
    assert a.params["pretrained_model_path"] == tmp_path / "niqe.pth"
    for bad, key, match in [('metric = "nqe"', "metrics[0].metric", r"unknown pyiqa metric 'nqe'; did you mean"),
                            ('metric = "musiq"\noptions = {device = "cuda"}', "metrics[0].options.device",
                             "set by the benchmark"),
                            ('metric = "niqe"\noptions = {pretrained_model_path = "gone.pth"}',
                             "metrics[0].options.pretrained_model_path", "no such file or folder: .*gone.pth")]:
        with pytest.raises(ConfigError, match=match) as err:
            load_config(matrix(tmp_path, metric="pyiqa", mparams=bad))
        assert err.value.key == key


def test_optional_entries_with_missing_files_are_left_out_with_the_reason(tmp_path):
    c = load_config(matrix(tmp_path, mparams="", defense="jpeg") )
    assert c.skipped == []
    body = TABLES.format(run="", dataset="synthetic", dparams="", metric="default", mparams="", attack="pgd",
                         aparams="", defense="jpeg", fparams="")
    body += '[[metrics]]\nname = "cnniqa"\nweights = "absent.pt"\noptional = true\n'
    c = load_config(write_config(tmp_path, body))
    assert [m.name for m in c.metrics] == ["default"] and c.n_cells == 2   # pgd, and pgd+adaptive
    assert c.skipped == [{"what": "metric cnniqa(weights=absent.pt)", "key": "metrics[1].weights",
                          "reason": f"metric 'cnniqa': no such file or folder: {tmp_path / 'absent.pt'} "
                                    "(named by 'metrics[1].weights')"}]
    from benchmark.config import describe_config

    assert f"skipped  metric cnniqa(weights=absent.pt) (optional): metric 'cnniqa': no such file or folder: " \
           f"{tmp_path / 'absent.pt'}" in describe_config(c)
    with pytest.raises(ConfigError, match="every .*metrics.* entry is optional and unavailable") as err:
        load_config(write_config(tmp_path, body.replace('name = "default"', 'name = "cnniqa"\nweights = "x.pt"\n'
                                                                             "optional = true")))
    assert err.value.key == "metrics"


def test_device_is_checked_and_the_command_line_wins(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = matrix(tmp_path, run='device = "cuda"')
    with pytest.raises(ConfigError, match="CUDA is not available on this machine") as err:
        load_config(path)
    assert err.value.key == "run.device"
    assert load_config(path, device="cpu").run.device == "cpu"
    with pytest.raises(ConfigError, match="CUDA is not available") as err:
        load_config(matrix(tmp_path), device="cuda:0")
    assert err.value.key == "--device" and err.value.file == "command line"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    path = matrix(tmp_path, run='device = "cuda"')
    assert load_config(path).run.device == "cuda"
    with pytest.raises(ConfigError, match="has 1 CUDA device"):
        load_config(path, device="cuda:3")
