"""The defense contract (:class:`helpers.contracts.DefenseContract`), run on every registered defense without
its author writing a test: the package's, installed packages' entry points, and plugin files' (examples/*.py,
and the files named in BENCHMARK_PLUGIN_FILES). A new plugin file gets these checks by being there."""
from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from helpers.contracts import DefenseContract
from helpers.plugins import PLUGIN_FILES_ENV, builtin, declared, registered

from conftest import ROOT

PLUGINS = registered("defenses")
# defenses that run a diffusion model (a tiny random one, made here) take seconds per check: slow tests
SLOW = {"diffpure", "diffusion_smoothing"}


class TestEveryDefense(DefenseContract):
    @pytest.fixture(params=[pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW else p for p in PLUGINS],
                    ids=str)
    def target(self, request):
        return request.param


def test_the_purification_suite_and_the_example_plugin_are_checked():
    names = {p.name for p in PLUGINS}
    assert {"jpeg", "resize", "random_crop", "random_rotate", "flip", "gaussian_blur", "median", "bilateral",
            "unsharp", "quantize", "random_noise", "nlm", "tv"} <= set(builtin("defenses")) <= names
    example = next(p for p in PLUGINS if p.name == "pixel_deflection")
    assert example.file == ROOT / "examples" / "my_defense.py"


GOOD = '''
import torch
from benchmark.defenses.base import Defense
from benchmark.registry import DEFENSES as D


@D.register("tiny_shift")
class TinyShift(Defense):
    """Adds a constant to every pixel (a plugin written for this test)."""

    def __init__(self, amount: float = 0.01):
        super().__init__()
        self.amount = amount

    def forward(self, x, *, generator=None):
        return (x + self.amount).clamp(0, 1)
'''
BAD = '''
import torch
from benchmark.defenses.base import Defense
from benchmark.registry import DEFENSES


@DEFENSES.register("tiny_unbounded")
class TinyUnbounded(Defense):
    """Leaves [0, 1] and draws from torch's global generator: breaks the contract twice."""

    def __init__(self, amount=0.5):
        super().__init__()
        self.amount = amount

    def forward(self, x, *, generator=None):
        return x + self.amount * torch.rand(x.shape)
'''


def test_a_new_plugin_file_gets_the_contract_tests(tmp_path):
    """Two plugin files written here, named in BENCHMARK_PLUGIN_FILES, run through this module in a fresh
    pytest: every check of the contract runs on each; the good defense passes them all (or skips the ones
    of smoothing defenses), the bad one fails exactly where it breaks the contract."""
    good, bad = tmp_path / "tiny_shift.py", tmp_path / "tiny_unbounded.py"
    good.write_text(GOOD)
    bad.write_text(BAD)
    assert declared(good) == [("defenses", "tiny_shift")] and declared(bad) == [("defenses", "tiny_unbounded")]
    report = tmp_path / "junit.xml"
    env = {**os.environ, PLUGIN_FILES_ENV: os.pathsep.join([str(good), str(bad)]), "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                          "-k", "TestEveryDefense and (tiny_shift or tiny_unbounded)", str(Path(__file__))],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    outcome = {}
    for case in ET.parse(report).iter("testcase"):
        kind = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        outcome[case.get("name")] = kind
    checks = sorted(n for n in dir(DefenseContract) if n.startswith("test_"))
    assert sorted(outcome) == sorted(f"{c}[{p}]" for c in checks for p in ("tiny_shift", "tiny_unbounded")), \
        res.stdout[-3000:]
    assert {n: k for n, k in outcome.items() if "tiny_shift" in n and k != "passed"} == {
        "test_wraps_metric_scores_and_certifies[tiny_shift]": "skipped"}
    assert {n for n, k in outcome.items() if "tiny_unbounded" in n and k == "failure"} == {
        "test_shape_range_and_determinism[tiny_unbounded]",               # out of [0, 1], ignores the seed
        "test_unknown_and_mistyped_parameters_are_config_errors[tiny_unbounded]",   # `amount` is untyped
    }
