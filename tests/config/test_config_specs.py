"""One validation route for the four plugin families (``benchmark.config_specs``): every entry of a matrix goes
through its class's ``check_params``, which each family's base class declares (attacks and defenses build the
plugin; datasets and metrics check without reading) and plugins override; every error names the file, the key
and what was expected, and ``validate`` lists them all."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.attacks.base import Attack
from benchmark.cli import main
from benchmark.config import load_config
from benchmark.datasets.base import Dataset
from benchmark.defenses.base import CheckpointDefense, Defense
from benchmark.errors import ConfigError
from benchmark.metrics.base import Metric

from conftest import write_config

PLUGINS = '''
from benchmark.attacks.base import Attack
from benchmark.datasets.base import Dataset
from benchmark.defenses.base import Defense
from benchmark.errors import ConfigError
from benchmark.metrics.base import Metric
from benchmark.registry import ATTACKS, DATASETS, DEFENSES, METRICS


class AtMostFive:
    """Each family's plugin below extends its base's check_params the same way."""

    @classmethod
    def check_params(cls, params, base):
        if params["x"] > 5:
            raise ConfigError(f"x must be at most 5, got {params['x']}", key="x")
        return super().check_params(params, base)


@DATASETS.register("route_dataset")
class RouteDataset(AtMostFive, Dataset):
    def __init__(self, x: int = 1, limit: int | None = None):
        raise AssertionError("validate builds no dataset without deep")


@METRICS.register("route_metric")
class RouteMetric(AtMostFive, Metric):
    def __init__(self, x: int = 1):
        raise AssertionError("validate builds no metric without deep")


@ATTACKS.register("route_attack")
class RouteAttack(AtMostFive, Attack):
    def __init__(self, x: int = 1, eps: float = 0.1):
        super().__init__()
        if not 0 < eps <= 1:
            raise ValueError(f"eps must be within (0, 1], got {eps}")
        self.x, self.eps = x, eps


@DEFENSES.register("route_defense")
class RouteDefense(AtMostFive, Defense):
    def __init__(self, x: int = 1):
        super().__init__()
        self.x = x
'''


@pytest.fixture(scope="module")
def plugin_file(tmp_path_factory) -> Path:
    """One file for the module's tests: a second path would register the same names from another module."""
    path = tmp_path_factory.mktemp("route") / "route_plugins.py"
    path.write_text(PLUGINS)
    return path


def route_config(tmp_path: Path, plugin: Path, dataset: str, metric: str, attack: str, defense: str) -> Path:
    return write_config(tmp_path, f'[run]\nname = "route"\nplugins = ["{plugin}"]\n'
                                  f'[[datasets]]\nname = "route_dataset"\n{dataset}\n'
                                  f'[[metrics]]\nname = "route_metric"\n{metric}\n'
                                  f'[[attacks]]\nname = "route_attack"\nadaptive = false\n{attack}\n'
                                  f'[[defenses]]\nname = "route_defense"\n{defense}\n')


def test_every_family_goes_through_check_params_and_every_error_is_listed(tmp_path, plugin_file, capsys):
    path = route_config(tmp_path, plugin_file, "x = 6", "x = 7", "x = [2, 8]\neps = [0.5, 3.0]", "x = 9")
    assert main(["validate", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"error: {path}, key 'datasets[0].x': dataset 'route_dataset': x must be at most 5, got 6",
        f"error: {path}, key 'metrics[0].x': metric 'route_metric': x must be at most 5, got 7",
        f"error: {path}, key 'attacks[0]': invalid value for attack 'route_attack': eps must be within (0, 1], "
        "got 3.0",
        f"error: {path}, key 'attacks[0].x': attack 'route_attack': x must be at most 5, got 8",
        f"error: {path}, key 'defenses[0].x': defense 'route_defense': x must be at most 5, got 9",
    ]


def test_the_route_accepts_good_values_without_building_datasets_or_metrics(tmp_path, plugin_file):
    cfg = load_config(route_config(tmp_path, plugin_file, "x = 5", "x = 2", "x = [2, 3]", "x = 4"))
    assert [a.label for a in cfg.attacks] == ["route_attack(x=2,eps=0.1)", "route_attack(x=3,eps=0.1)"]
    assert [(s.name, s.params) for s in (cfg.datasets[0], cfg.metrics[0], cfg.defenses[0])] == [
        ("route_dataset", {"x": 5}), ("route_metric", {"x": 2}), ("route_defense", {"x": 4})]


def test_each_family_base_declares_the_route_and_what_it_checks(tmp_path):
    from benchmark.defenses.jpeg import JPEG
    from benchmark.metrics.default_model import DefaultModel

    for base in (Dataset, Metric, Attack, Defense):
        assert "check_params" in vars(base), base
    for base in (Dataset, Metric):  # validate's deep check: what they read, opened
        assert "check_files" in vars(base), base
    # attacks and defenses: built, so their constructors' range checks run
    with pytest.raises(ValueError, match="JPEG quality must be within 1..95, got 500"):
        JPEG.check_params({"quality": 500, "surrogate": "identity"}, tmp_path)
    assert JPEG.check_params({"quality": 40, "surrogate": "identity"}, tmp_path) == {"quality": 40,
                                                                                    "surrogate": "identity"}
    # metrics: the keywords bound to the constructor, nothing read
    absent = {"weights": tmp_path / "absent.pt"}
    assert DefaultModel.check_params(dict(absent), tmp_path) == absent
    with pytest.raises(TypeError, match="weightz"):
        DefaultModel.check_params({"weightz": None}, tmp_path)
    # datasets: limit >= 1
    from benchmark.datasets.synthetic import SyntheticDistortions

    with pytest.raises(ConfigError, match="expected a number of images >= 1, got 0"):
        SyntheticDistortions.check_params({"limit": 0}, tmp_path)


def test_a_defense_whose_file_is_missing_is_not_built_by_its_check(tmp_path):
    built = []

    class NeedsWeights(CheckpointDefense):
        def __init__(self, weights: Path):
            super().__init__()
            built.append(weights)

    absent, present = tmp_path / "absent.pt", tmp_path / "present.pt"
    present.write_bytes(b"")
    assert NeedsWeights.check_params({"weights": absent}, tmp_path) == {"weights": absent}
    assert built == []   # the config layer names the missing file (or skips an optional entry)
    NeedsWeights.check_params({"weights": present}, tmp_path)
    assert built == [present]
    with pytest.raises(ConfigError, match="expected a file, got the folder"):
        NeedsWeights.check_params({"weights": tmp_path}, tmp_path)


def test_a_built_plugin_does_not_depend_on_what_was_drawn_before(tmp_path):
    """A plugin whose constructor draws (a randomly initialised network) is built the same in any process and
    after any other draws: its spec seeds the build, and the caller's generator state is left as it was."""
    import torch

    cfg_path = write_config(tmp_path, """
[[datasets]]
name = "synthetic"
limit = 2
[[metrics]]
name = "torch_module"
factory = "benchmark.metrics.cnniqa:CNNIQANet"
score_range = [-1, 1]
[[attacks]]
name = "fgsm"
[[defenses]]
name = "identity"
""")
    spec = load_config(cfg_path).metrics[0]
    torch.manual_seed(1)
    a = spec.build().state_dict()
    torch.rand(1000)   # other draws in between
    state = torch.random.get_rng_state()
    b = spec.build().state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
