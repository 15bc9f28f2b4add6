"""The attack contract (:class:`helpers.contracts.AttackContract`), run on every registered attack without its
author writing a test: the package's, installed packages' entry points', and plugin files' (examples/*.py, and
the files named in BENCHMARK_PLUGIN_FILES). What makes each attack itself (its gain, agreement with a reference
implementation) is in tests/attacks/."""
from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from benchmark.registry import ATTACKS
from helpers.contracts import AttackContract
from helpers.plugins import PLUGIN_FILES_ENV, builtin, declared, registered

from conftest import ROOT

PLUGINS = registered("attacks")


def slow(plugin) -> bool:
    """Trained attacks fit a perturbation or a generator first: slow tests (CI still runs them). A plugin file's
    attack is not imported at collection, so its own capabilities are not read here: it runs as a quick test."""
    return plugin.file is None and ATTACKS.get(plugin.name).needs_fit


class TestEveryAttack(AttackContract):
    @pytest.fixture(params=[pytest.param(p, marks=pytest.mark.slow) if slow(p) else p for p in PLUGINS], ids=str)
    def target(self, request):
        return request.param


def test_every_builtin_attack_is_checked():
    names = {p.name for p in PLUGINS}
    assert {"fgsm", "pgd", "mifgsm", "square", "nes", "onepixel", "uap"} <= set(builtin("attacks")) <= names


GOOD = '''
import torch
from benchmark.attacks.base import Attack, project_linf
from benchmark.registry import ATTACKS as A


@A.register("tiny_sign")
class TinySign(Attack):
    """One signed-gradient step of size eps (an attack written for this test)."""

    def __init__(self, eps: float = 4 / 255):
        super().__init__()
        self.eps = eps

    def perturb(self, model, x, *, generator=None):
        grad, _ = self.gradient(model, x)
        return project_linf(x + self.eps * grad.sign(), x, self.eps)
'''
BAD = '''
import torch
from benchmark.attacks.base import Attack
from benchmark.registry import ATTACKS


@ATTACKS.register("tiny_noisy")
class TinyNoisy(Attack):
    """Random noise within its budget from torch's global generator, after a backward pass through the metric
    although it declares needs_gradient = False, with an untyped parameter: breaks the contract three ways."""

    needs_gradient = False

    def __init__(self, eps=4 / 255):
        super().__init__()
        self.eps = eps

    def perturb(self, model, x, *, generator=None):
        x = x.detach().requires_grad_(True)
        model(x).sum().backward()
        return (x.detach() + self.eps * (2 * torch.rand(x.shape) - 1)).clamp(0, 1)
'''


def test_a_new_plugin_file_gets_the_contract_tests(tmp_path):
    """Two attack plugin files written here, named in BENCHMARK_PLUGIN_FILES, run through this module in a fresh
    pytest: every check of the contract runs on each; the good attack passes them all, the bad one fails exactly
    where it breaks the contract."""
    good, bad = tmp_path / "tiny_sign.py", tmp_path / "tiny_noisy.py"
    good.write_text(GOOD)
    bad.write_text(BAD)
    assert declared(good) == [("attacks", "tiny_sign")] and declared(bad) == [("attacks", "tiny_noisy")]
    report = tmp_path / "junit.xml"
    env = {**os.environ, PLUGIN_FILES_ENV: os.pathsep.join([str(good), str(bad)]), "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                          "-k", "TestEveryAttack and (tiny_sign or tiny_noisy)", str(Path(__file__))],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    outcome = {}
    for case in ET.parse(report).iter("testcase"):
        kind = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        outcome[case.get("name")] = kind
    checks = sorted(n for n in dir(AttackContract) if n.startswith("test_"))
    assert sorted(outcome) == sorted(f"{c}[{p}]" for c in checks for p in ("tiny_sign", "tiny_noisy")), \
        res.stdout[-3000:]
    assert {n: k for n, k in outcome.items() if "tiny_sign" in n and k != "passed"} == {}, res.stdout[-3000:]
    assert {n for n, k in outcome.items() if "tiny_noisy" in n and k == "failure"} == {
        "test_output_budget_and_objective[tiny_noisy]",   # a backward pass, declaring needs_gradient = False
        "test_same_seed_same_output[tiny_noisy]",         # draws from torch's global generator, not the seed's
        "test_unknown_and_mistyped_parameters_are_config_errors[tiny_noisy]",   # `eps` is untyped
    }, res.stdout[-3000:]
