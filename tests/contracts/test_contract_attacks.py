"""The attack contract, checked for every registered attack without its author writing a test: one hook
(``perturb``; ``__call__`` is the base class's); built from its defaults with a declared budget unit; on the
real default model, an output of the input's shape in [0, 1]; the same output for the same generator seed; the
budget kept after 8-bit quantisation, measured in the attack's own unit; the score objective not lowered
(image-specific attacks); the call's passes counted as the stage counter counts them, and no backward pass when
it declares ``needs_gradient = False``; scores handed back (``last_scores``) that are the output's. What makes
each attack itself (its gain, agreement with a reference implementation) is in tests/attacks/."""
from __future__ import annotations

import pytest
import torch

from benchmark import passes
from benchmark.attacks.base import BUDGET_UNITS, Attack
from benchmark.errors import MissingWeightsError
from benchmark.registry import ATTACKS
from benchmark.training import trainset

from contract_helpers import build, builtin, default_metric, gen, images, small_kwargs

NAMES = builtin("attacks")
# Trained attacks fit a perturbation or a generator first: slow tests (CI still runs them).
RUNS = [pytest.param(n, marks=pytest.mark.slow) if ATTACKS.get(n).needs_fit else n for n in NAMES]


@pytest.mark.parametrize("name", NAMES)
def test_one_hook(name):
    cls = ATTACKS.get(name)
    assert cls.perturb is not Attack.perturb, f"{name} does not implement perturb"
    assert cls.__call__ is Attack.__call__ and not any("__call__" in vars(c) for c in cls.__mro__ if c is not Attack)


@pytest.mark.parametrize("name", NAMES)
def test_builds_from_defaults(name):
    a = build("attacks", name)
    assert isinstance(a, Attack)
    assert a.budget_unit in BUDGET_UNITS
    assert isinstance(a.needs_gradient, bool) and isinstance(a.needs_fit, bool)
    assert a.direction == "increase"


@pytest.fixture
def small_trainset(monkeypatch):
    """Trained attacks fit on 8 images of the training split instead of 190 (their own tests train fully)."""
    full = trainset.uap_images
    monkeypatch.setattr(trainset, "uap_images", lambda size: tuple(v[:8] for v in full(size)))


def run(name, artifacts, seed=0):
    a = build("attacks", name, **small_kwargs("attacks", name))
    model = passes.instrument(default_metric())
    x = images()
    try:
        if a.needs_fit:
            a.fit(model, generator=gen(1), artifact=artifacts / f"{name}.pt", provenance={"test": name},
                  progress=False)
        with passes.counting() as count:
            out = a(model, x, generator=gen(seed), output_8bit=True)
    except MissingWeightsError as exc:  # e.g. zhang's DISTS/LPIPS backbones, not on this machine
        pytest.skip(f"needs weights that are not here: {exc}")
    return a, model, x, out, count


@pytest.mark.parametrize("name", RUNS)
def test_output_budget_and_objective(name, tmp_path, small_trainset):
    a, model, x, x_adv, count = run(name, tmp_path)
    assert x_adv.shape == x.shape and torch.isfinite(x_adv).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert torch.equal(torch.round(x_adv * 255), x_adv * 255) or torch.allclose(torch.round(x_adv * 255) / 255, x_adv,
                                                                                  atol=1e-6), "not on the 8-bit grid"
    if a.budget is not None:
        try:
            spent = a.measured_budget(x_adv, x)
        except NotImplementedError:
            spent = None
        if spent is not None:
            assert float(spent.max()) <= float(a.budget) * (1 + 1e-5) + 1e-6, (a.describe_budget(), spent)
    if not a.needs_fit:  # a fitted perturbation or generator is universal: it need not help every unseen image,
        with torch.no_grad():  # least of all after the contract's one-epoch fit on 8 images
            gain = (a.objective(model, x_adv) - a.objective(model, x)).mean()
        assert float(gain) >= -1e-4, f"{name} lowered the objective on average: {float(gain)}"
    assert a.last_passes == {"forward": count.forward, "backward": count.backward}
    if not a.needs_gradient:
        assert count.backward == 0, f"{name} declares needs_gradient = False but ran {count.backward} backward passes"
    if a.last_scores is not None:  # scored in the attack's own batches: equal up to float rounding of batch size
        with torch.no_grad():
            fresh = model(x_adv)
        assert a.last_scores.shape == fresh.shape and torch.allclose(a.last_scores, fresh, rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", RUNS)
def test_same_seed_same_output(name, tmp_path, small_trainset):
    _, _, _, first, _ = run(name, tmp_path, seed=7)
    _, _, _, second, _ = run(name, tmp_path, seed=7)
    assert torch.equal(first, second)
