"""The plugin contracts as test base classes, one per family (kornia's ``BaseTester``, benchopt's generic plugin
tests). ``tests/contracts/`` runs each on every registered plugin; a plugin's own test module may subclass one
to run it on particular parameters::

    from helpers.contracts import DefenseContract

    class TestMyDefense(DefenseContract):
        plugin = "my_defense"                 # the registered name
        plugin_file = Path(__file__).parent / "my_defense.py"   # where it is registered, unless in the package
        params = {"strength": 2}              # constructor keywords of the behaviour checks

What a plugin must do to pass, per family:

- every family: built from its defaults (given the files it requires); each constructor parameter typed, so
  that the config checks it: an unknown keyword and a value of the wrong type are configuration errors naming
  the key (``defenses[0].strength``), found before any work.
- defense: the batch's shape, dtype and [0, 1] range kept; the same output for the same generator seed, and a
  generator that matters exactly when it declares ``stochastic``; the image changed unless it is the
  ``baseline``; a gradient at the input through it (``differentiable``) or through BPDA (its ``surrogate``);
  ``align`` in ``forward``'s geometry; a ``wraps_metric`` defense returns one score and certificate per image.
- metric: one finite score per image, the same twice, near the declared ``score_range``; a gradient at the
  input when it declares ``differentiable``.
- dataset: uint8 RGB images with unique ids and MOS within the declared scale, the same twice; a missing
  required folder is a configuration error naming the key.
- attack: one hook (``perturb`` implemented, ``__call__`` the base class's); built from its defaults with a
  declared budget unit; on the real default model (trained attacks fitted first), an output of the input's
  shape in [0, 1] on the 8-bit grid, with the budget kept in its own unit; the score objective not lowered
  (image-specific attacks); the same output for the same generator seed; the call's passes counted
  (``last_passes``) as the pass counter counts them, and no backward pass when it declares
  ``needs_gradient = False``; scores handed back (``last_scores``) equal to a fresh scoring of the output.
"""
from __future__ import annotations

import inspect
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import numpy as np
import pytest
import torch

from benchmark import passes
from benchmark.attacks.adaptive import bpda
from benchmark.attacks.base import BUDGET_UNITS, Attack
from benchmark.cli import main
from benchmark.config import parse_config
from benchmark.datasets.base import Dataset
from benchmark.defenses.base import Defense
from benchmark.errors import ConfigError, MissingWeightsError
from benchmark.metrics.base import Metric
from benchmark.registry import constructor_params
from benchmark.training import trainset
from conftest import write_config
from helpers.plugins import Plugin, RequiredFiles, build, default_metric, gen, images

# The other families' entries of the configs the parameter checks parse (cheap, no files).
PLAIN = {"datasets": {"name": "synthetic"}, "metrics": {"name": "default"}, "attacks": {"name": "fgsm"},
         "defenses": {"name": "identity"}}
NOT_A_VALUE = {"not": "a value"}  # a TOML table: wrong for every parameter type but a table (dict) or Any


def takes_a_table(ann: Any) -> bool:
    """Whether a parameter annotated ``ann`` accepts a TOML table (dict, Any, or a union holding one)."""
    if ann is dict or ann is Any or get_origin(ann) is dict:
        return True
    return get_origin(ann) in (Union, types.UnionType) and any(takes_a_table(a) for a in get_args(ann))


def config_errors(plugin: Plugin, table: dict, folder: Path) -> dict[str, str]:
    """``{key: message}`` of the configuration errors of a config whose ``plugin.family`` has the one
    entry ``table`` (the plugin's file named in ``run.plugins``, as a user names it)."""
    raw: dict[str, Any] = {fam: [entry] for fam, entry in PLAIN.items()}
    raw[plugin.family] = [table]
    raw["run"] = {"plugins": [str(plugin.file)]} if plugin.file else {}
    with pytest.raises(ConfigError) as err:
        parse_config(raw, folder / "matrix.toml")
    return {e.key: e.detail for e in getattr(err.value, "errors", [err.value])}


class PluginContract:
    """What every family's contract shares. Subclasses set ``family``; a plugin's test sets ``plugin`` (and
    ``plugin_file``, ``params``) or overrides the ``target`` fixture (tests/contracts/ parametrises it)."""

    family: str = ""
    plugin: str | None = None
    plugin_file: str | Path | None = None
    params: dict[str, Any] | None = None

    @pytest.fixture
    def target(self) -> Plugin:
        if self.plugin is None:
            pytest.fail(f"{type(self).__name__}: set `plugin` to the registered name of the plugin to check")
        file = Path(self.plugin_file).resolve() if self.plugin_file else None
        return Plugin(self.family, self.plugin, file, self.params)

    @pytest.fixture(scope="session")
    @classmethod
    def files(cls, tmp_path_factory) -> RequiredFiles:
        return RequiredFiles(tmp_path_factory.mktemp("contract_files"))

    @staticmethod
    def from_defaults(target: Plugin, files: RequiredFiles):
        target.cls()
        return build(target.family, target.name, **files.kwargs(target))

    @staticmethod
    def small(target: Plugin, files: RequiredFiles):
        """The plugin built with the small parameters of its checks (and the files it requires)."""
        target.cls()
        return build(target.family, target.name, **{**files.kwargs(target), **target.small_params()})

    def test_unknown_and_mistyped_parameters_are_config_errors(self, target, tmp_path):
        params = constructor_params(target.cls())
        untyped = [p for p, ann, _ in params if ann is inspect.Parameter.empty]
        assert not untyped, f"parameters {untyped} have no type annotation: the config cannot check their values"
        wrong = [p for p, ann, _ in params if not takes_a_table(ann)]
        errors = config_errors(target, {"name": target.name, "no_such_parameter": 1,
                                        **{p: NOT_A_VALUE for p in wrong}}, tmp_path)
        where = f"{target.family}[0]"
        assert "unknown parameter" in errors.get(f"{where}.no_such_parameter", ""), errors
        for p in wrong:
            assert f"{where}.{p}" in errors, (p, errors)
            assert "expected" in errors[f"{where}.{p}"], errors[f"{where}.{p}"]


class DefenseContract(PluginContract):
    """The defense contract (see the module's docstring)."""

    family = "defenses"

    def test_builds_from_defaults(self, target, files):
        d = self.from_defaults(target, files)
        assert isinstance(d, Defense)
        for cap in ("stochastic", "differentiable", "baseline", "wraps_metric", "changes_geometry", "replaces_metric"):
            assert isinstance(getattr(type(d), cap), bool), cap

    @pytest.fixture
    def purifier(self, target, files) -> Defense:
        d = self.small(target, files).eval()
        if d.wraps_metric:
            pytest.skip("scores through the metric: see test_wraps_metric_scores_and_certifies")
        return d

    def test_shape_range_and_determinism(self, purifier):
        x = images()
        with torch.no_grad():
            y1, y2 = purifier(x, generator=gen(3)), purifier(x, generator=gen(3))
            others = [purifier(x, generator=gen(s)) for s in (4, 5, 6)]
        assert y1.shape == x.shape and y1.dtype == x.dtype
        assert torch.isfinite(y1).all() and y1.min() >= 0 and y1.max() <= 1
        assert torch.equal(y1, y2), "the same generator seed must give the same output"
        if purifier.stochastic:
            assert any(not torch.equal(y1, o) for o in others), "a stochastic defense must draw from the generator"
        else:
            assert all(torch.equal(y1, o) for o in others), "a deterministic defense must ignore the generator"

    def test_changes_the_image_unless_the_baseline(self, purifier):
        x = images()
        with torch.no_grad():
            y = purifier(x, generator=gen(0))
        if purifier.baseline:
            assert torch.equal(y, x), "the baseline is the undefended reference: it returns the image"
        else:
            assert not torch.equal(y, x), "a defense that leaves every image as it is purifies nothing"

    def test_gradient_reaches_the_input(self, purifier):
        x = images().requires_grad_(True)
        y = purifier(x, generator=gen(0)) if purifier.differentiable else bpda(purifier, x, gen(0))
        assert y.shape == x.shape
        (g,) = torch.autograd.grad((y * torch.linspace(0, 1, y.numel()).view_as(y)).sum(), x)
        assert torch.isfinite(g).all() and g.abs().sum() > 0

    def test_align_matches_forward_geometry(self, purifier):
        x = images()
        with torch.no_grad():
            a = purifier.align(x, generator=gen(5))
            y = purifier(x, generator=gen(5))
        assert a.shape == y.shape
        if not purifier.changes_geometry:
            assert torch.equal(a, x), "a defense that moves no pixels aligns to the clean image itself"

    def test_wraps_metric_scores_and_certifies(self, target, files):
        d = self.small(target, files).eval()
        if not d.wraps_metric:
            pytest.skip("purifies images (forward), not through the metric")
        x = images()
        with torch.no_grad():
            scores, certs = d.score(default_metric(), x, generator=gen(0))
            again, _ = d.score(default_metric(), x, generator=gen(0))
        assert scores.shape == (len(x),) and torch.isfinite(scores).all()
        assert len(certs) == len(x) and all(isinstance(c, dict) for c in certs)
        assert torch.equal(scores, again)


class MetricContract(PluginContract):
    """The metric contract (see the module's docstring)."""

    family = "metrics"

    @pytest.fixture
    def metric(self, target, files) -> Metric:
        m = self.small(target, files).eval()
        for p in m.parameters():
            p.requires_grad_(False)
        return m

    def test_builds_from_defaults_and_declares(self, target, files):
        m = self.from_defaults(target, files)
        assert isinstance(m, Metric)
        assert isinstance(m.lower_better, bool) and isinstance(m.differentiable, bool)
        lo, hi = (float(v) for v in m.score_range)
        assert lo < hi

    def test_scores_are_finite_repeatable_and_in_range(self, metric):
        lo, hi = (float(v) for v in metric.score_range)
        x = images(3, 64)
        with torch.no_grad():
            s1, s2 = metric(x), metric(x)
        assert s1.shape == (3,) and torch.isfinite(s1).all()
        assert torch.equal(s1, s2)
        r = hi - lo
        assert (s1 >= lo - 0.5 * r).all() and (s1 <= hi + 0.5 * r).all(), (s1, metric.score_range)

    def test_gradient_reaches_the_input_when_declared(self, metric):
        if not metric.differentiable:
            pytest.skip("declares differentiable = False: gradient attacks are skipped on it, with the reason")
        x = images(2, 64).requires_grad_(True)
        (g,) = torch.autograd.grad(metric(x).sum(), x)
        assert torch.isfinite(g).all() and g.abs().sum() > 0


class DatasetContract(PluginContract):
    """The dataset contract (see the module's docstring)."""

    family = "datasets"

    def test_missing_folder_is_a_config_error(self, target, tmp_path, capsys):
        if "root" not in target.required():
            pytest.skip("reads no folder")
        plugins = f'plugins = ["{target.file}"]\n' if target.file else ""
        cfg = write_config(tmp_path, f"""
[run]
output_dir = "{tmp_path / 'runs'}"
{plugins}[[datasets]]
name = "{target.name}"
root = "absent"
[[metrics]]
name = "default"
[[attacks]]
name = "fgsm"
[[defenses]]
name = "identity"
""")
        assert main(["validate", str(cfg)]) == 2
        err = capsys.readouterr().err
        assert "datasets[0].root" in err and "absent" in err, err
        assert not (tmp_path / "runs").exists()

    def test_yields_rgb_images_with_unique_ids(self, target, files):
        ds = self.small(target, files)
        assert isinstance(ds, Dataset)
        ids = ds.ids()
        assert len(ids) == len(set(ids)) >= 1
        for i in ids[:4]:
            s = ds.load(i)
            assert s.image_id == i
            assert s.image.dtype == np.uint8 and s.image.ndim == 3 and s.image.shape[2] == 3
            if s.mos is not None and ds.mos_range is not None:
                lo, hi = ds.mos_range
                assert lo <= s.mos <= hi

    def test_the_same_images_twice(self, target, files):
        first, second = self.small(target, files), self.small(target, files)
        assert first.ids() == second.ids()
        for i in first.ids()[:2]:
            a, b = first.load(i), second.load(i)
            assert np.array_equal(a.image, b.image) and a.mos == b.mos


class AttackContract(PluginContract):
    """The attack contract (see the module's docstring). What makes each attack itself (its gain, agreement
    with a reference implementation) is its own test's business (tests/attacks/)."""

    family = "attacks"

    def test_one_hook(self, target):
        cls = target.cls()
        assert cls.perturb is not Attack.perturb, f"{target} does not implement perturb"
        assert cls.__call__ is Attack.__call__, f"{target} overrides Attack.__call__"
        assert not any("__call__" in vars(c) for c in cls.__mro__ if c is not Attack), cls.__mro__

    def test_builds_from_defaults(self, target, files):
        a = self.from_defaults(target, files)
        assert isinstance(a, Attack)
        assert a.budget_unit in BUDGET_UNITS
        assert isinstance(a.needs_gradient, bool) and isinstance(a.needs_fit, bool)
        assert a.direction == "increase"

    @pytest.fixture
    def small_trainset(self, monkeypatch):
        """Trained attacks fit on 8 images of the training split instead of 190 (their own tests train fully)."""
        full = trainset.uap_images
        monkeypatch.setattr(trainset, "uap_images", lambda size: tuple(v[:8] for v in full(size)))

    def attacked(self, target, files, artifacts: Path, seed: int = 0):
        """``(attack, model, x, x', passes counted)`` of one call, with 8-bit output, of the attack built with
        its small parameters on two 64-px photographs and the pass-counted default model (fitted first when
        it ``needs_fit``); skipped when the attack needs weights that are not on this machine."""
        a = self.small(target, files)
        model = passes.instrument(default_metric())
        x = images()
        try:
            if a.needs_fit:
                a.fit(model, generator=gen(1), artifact=artifacts / f"{target.name}.pt",
                      provenance={"test": target.name}, progress=False)
            with passes.counting() as count:
                out = a(model, x, generator=gen(seed), output_8bit=True)
        except MissingWeightsError as exc:  # e.g. zhang's DISTS/LPIPS backbones, not on this machine
            pytest.skip(f"needs weights that are not here: {exc}")
        return a, model, x, out, count

    def test_output_budget_and_objective(self, target, files, tmp_path, small_trainset):
        a, model, x, x_adv, count = self.attacked(target, files, tmp_path)
        assert x_adv.shape == x.shape and torch.isfinite(x_adv).all()
        assert x_adv.min() >= 0 and x_adv.max() <= 1
        assert torch.allclose(torch.round(x_adv * 255) / 255, x_adv, rtol=0, atol=1e-6), "not on the 8-bit grid"
        if a.budget is not None:
            try:
                spent = a.measured_budget(x_adv, x)
            except NotImplementedError:  # a bound on the attack's own parameters that the call did not report
                spent = None
            if spent is not None:
                assert float(spent.max()) <= float(a.budget) * (1 + 1e-5) + 1e-6, (a.describe_budget(), spent)
        if not a.needs_fit:  # a fitted perturbation or generator is universal: it need not help every unseen
            with torch.no_grad():  # image, least of all after the contract's one-epoch fit on 8 images
                gain = (a.objective(model, x_adv) - a.objective(model, x)).mean()
            assert float(gain) >= -1e-4, f"{target} lowered the objective on average: {float(gain)}"
        assert a.last_passes == {"forward": count.forward, "backward": count.backward}
        if not a.needs_gradient:
            assert count.backward == 0, \
                f"{target} declares needs_gradient = False but ran {count.backward} backward passes"
        if a.last_scores is not None:  # scored in the attack's own batches: equal up to float rounding of batch size
            with torch.no_grad():
                fresh = model(x_adv)
            assert a.last_scores.shape == fresh.shape
            assert torch.allclose(a.last_scores, fresh, rtol=0, atol=1e-4), (a.last_scores, fresh)

    def test_same_seed_same_output(self, target, files, tmp_path, small_trainset):
        first = self.attacked(target, files, tmp_path, seed=7)[3]
        second = self.attacked(target, files, tmp_path, seed=7)[3]
        assert torch.equal(first, second), "the same generator seed must give the same output"
