"""The attack contract's one call (benchmark/attacks/base.py): ``Attack.__call__`` is final and runs the attack's
one hook, ``perturb``; it puts the output on the 8-bit grid within the budget when asked, counts the model's
passes, and hands back the scores of exactly the returned images when the attack already scored them without a
gradient (``last_scores``), without the attack keeping any."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmark import passes
from benchmark.attacks.base import Attack
from benchmark.attacks.fgsm import FGSM
from benchmark.attacks.madc import MADC
from benchmark.attacks.pgd import IFGSM, PGD
from benchmark.attacks.square import Square
from benchmark.metrics.default_model import DefaultModel


@pytest.fixture(scope="module")
def metric():
    m = DefaultModel().eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def images(n=3, seed=0):
    return torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


class Drifting(nn.Module):
    """A toy metric whose score of an image rises by 1 at each forward pass: the same image gets another score
    each time it is scored (as float rounding in another batch size would give, only larger)."""

    score_scale = 1.0

    def __init__(self, lower_better=False):
        super().__init__()
        self.sign, self.calls = (-1 if lower_better else 1), 0

    def forward(self, x):
        self.calls += 1
        return x.mean((1, 2, 3)) + (self.calls - 1)


class Halve(Attack):
    """Toy attack: ``x / 2``, scored ``scorings`` times (whole batch), once more per image alone with ``alone``."""

    def __init__(self, scorings=1, alone=False, direction="increase"):
        super().__init__(direction)
        self.scorings, self.alone = scorings, alone

    def perturb(self, model, x, *, generator=None):
        y = x / 2
        with torch.no_grad():
            for _ in range(self.scorings):
                model(y)
            if self.alone:
                for i in range(len(y)):
                    model(y[i:i + 1])
        return y


# -- last_scores ---------------------------------------------------------------------------------
@pytest.mark.parametrize("attack", [PGD(eps=4 / 255, steps=2), PGD(eps=4 / 255, steps=1, restarts=3),
                                    PGD(eps=0.5, steps=2, norm="l2"), IFGSM(steps=2)])
@pytest.mark.parametrize("output_8bit", [False, True], ids=["float", "png"])
def test_pgd_hands_back_the_scores_of_the_returned_images(metric, attack, output_8bit):
    x = images()
    adv = attack(metric, x, generator=torch.Generator().manual_seed(1), output_8bit=output_8bit)
    with torch.no_grad():
        rescored = metric(adv)
    assert attack.last_scores is not None and torch.equal(attack.last_scores, rescored)
    # per restart, steps forward+backward passes and one final forward: nothing else
    n, r, s = len(x), attack.restarts, attack.steps
    assert attack.last_passes == {"forward": n * r * (s + 1), "backward": n * r * s}
    assert attack.output_8bit is False  # set for the call only
    if output_8bit:
        assert torch.equal(adv, torch.round(adv * 255) / 255)


def test_no_last_scores_when_an_image_was_never_scored_finitely(metric):
    class NaNOnFirst(torch.nn.Module):
        sign, score_scale = 1.0, 100.0

        def forward(self, x):
            s = metric(x)
            return torch.cat([torch.full_like(s[:1], float("nan")), s[1:]])

    attack = PGD(eps=4 / 255, steps=1)
    attack.last_scores = torch.zeros(2)  # stale from an earlier call: must be cleared
    x = images(2, seed=2)
    adv = attack(NaNOnFirst(), x)
    assert torch.equal(adv[0], x[0])  # never improved: returned clean, its score left to the harness
    assert attack.last_scores is None


def test_scores_taken_under_a_gradient_are_not_handed_back(metric):
    attack = FGSM(eps=2 / 255)
    attack(metric, images(1))
    assert attack.last_scores is None and attack.last_passes == {"forward": 1, "backward": 1}


def test_scores_of_float_candidates_are_not_those_of_the_8bit_output(metric):
    """Square scores float candidates: in float they are the output's scores, on the 8-bit grid they are not."""
    x = images(2, seed=3)
    attack = Square(eps=4 / 255, queries=20)
    adv = attack(metric, x, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(attack.last_scores, metric(adv))
    attack(metric, x, generator=torch.Generator().manual_seed(0), output_8bit=True)
    assert attack.last_scores is None


def test_an_image_scored_twice_takes_its_best_score_in_the_attacks_direction():
    x = images(2)
    base = x.div(2).mean((1, 2, 3))
    for lower_better, direction, extra in ((False, "increase", 1), (False, "decrease", 0), (True, "increase", 0),
                                           (True, "decrease", 1)):
        attack = Halve(scorings=2, direction=direction)
        attack(Drifting(lower_better), x)
        assert torch.allclose(attack.last_scores, base + extra, atol=1e-6), (lower_better, direction)
    # scored again image by image (passes 3 and 4): the highest scores are those of the last passes
    attack = Halve(scorings=2, alone=True)
    attack(Drifting(), x)
    assert torch.allclose(attack.last_scores, base + torch.tensor([2.0, 3.0]), atol=1e-6)
    assert attack.last_passes == {"forward": 2 + 2 + 2, "backward": 0}


def test_no_last_scores_when_some_returned_image_was_not_scored():
    class HalveFirstScored(Halve):
        def perturb(self, model, x, *, generator=None):
            y = x / 2
            with torch.no_grad():
                model(y[:1])
            return y

    attack = HalveFirstScored()
    attack(Drifting(), images(2))
    assert attack.last_scores is None and attack.last_passes == {"forward": 1, "backward": 0}


# -- passes --------------------------------------------------------------------------------------
def test_passes_agree_with_the_stage_counter(metric):
    model = passes.instrument(metric)
    attack = PGD(eps=4 / 255, steps=3)
    with passes.counting() as stage:
        attack(model, images(2), generator=torch.Generator().manual_seed(0))
    assert attack.last_passes == {"forward": stage.forward, "backward": stage.backward} == {"forward": 8,
                                                                                             "backward": 6}


def test_a_model_that_is_not_a_module_is_not_observed():
    class AddTenth(Attack):
        def perturb(self, model, x, *, generator=None):
            return (x + 0.1).clamp(0, 1)

    attack = AddTenth()
    out = attack(None, images(1))
    assert attack.last_passes is None and attack.last_scores is None and float(out.max()) <= 1


# -- output_8bit, finish, per-call state ---------------------------------------------------------
def test_output_8bit_is_set_for_the_call_only_and_finish_is_applied_once_or_twice_alike():
    seen = []

    class Noisy(Attack):
        eps = 3 / 255

        def __init__(self, prefinish):
            super().__init__()
            self.prefinish = prefinish

        def perturb(self, model, x, *, generator=None):
            seen.append(self.output_8bit)
            y = (x + 0.02 * torch.randn(x.shape, generator=generator)).clamp(0, 1)
            return self.finish(y, x) if self.prefinish else y

    x = torch.round(images(2) * 255) / 255
    raw, pre = Noisy(False), Noisy(True)
    a = raw(None, x, generator=torch.Generator().manual_seed(0), output_8bit=True)
    b = pre(None, x, generator=torch.Generator().manual_seed(0), output_8bit=True)
    c = raw(None, x, generator=torch.Generator().manual_seed(0))
    assert seen == [True, True, False] and raw.output_8bit is False and pre.output_8bit is False
    assert torch.equal(a, b) and torch.equal(a, torch.round(a * 255) / 255)
    assert float((a - x).abs().max()) == pytest.approx(3 / 255, abs=1e-7)  # the L∞ budget kept on the grid
    assert not torch.equal(c, torch.round(c * 255) / 255)  # float output untouched


@pytest.mark.parametrize("attack", [PGD(eps=0.3, norm="l2"), MADC(eps=1 / 255), FGSM(eps=2 / 255)],
                         ids=["l2", "rmse", "linf"])
def test_finish_is_idempotent(attack):
    x = torch.round(images(3) * 255) / 255
    y = (x + 0.03 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    attack.output_8bit = True
    try:
        once = attack.finish(y, x)
        assert torch.equal(attack.finish(once, x), once)
        assert float(attack.measured_budget(once, x).max()) <= attack.budget + 1e-6
    finally:
        attack.output_8bit = False


def test_output_8bit_set_on_the_instance_is_refused_not_ignored():
    attack = FGSM(eps=2 / 255)
    attack.output_8bit = True  # the harness's way before the base call took it per call
    with pytest.raises(TypeError, match="output_8bit=True"):
        attack(None, images(1))


def test_output_8bit_is_restored_when_the_attack_fails():
    class Fails(Attack):
        def perturb(self, model, x, *, generator=None):
            raise RuntimeError("boom")

    attack = Fails()
    with pytest.raises(RuntimeError, match="boom"):
        attack(None, images(1), output_8bit=True)
    assert attack.output_8bit is False


def test_per_call_state_is_cleared():
    class FlowOnce(Attack):
        """Records a flow budget on its first call only."""

        budget_unit = "flow"
        calls = 0

        def perturb(self, model, x, *, generator=None):
            self.calls += 1
            if self.calls == 1:
                self.last_budget = torch.full((len(x),), 0.5)
            return x

    attack = FlowOnce()
    x = images(2)
    attack(None, x)
    assert attack.measured_budget(x, x).tolist() == [0.5, 0.5]
    attack(None, x)
    assert attack.last_budget is None


# -- the one hook ----------------------------------------------------------------------------------
def test_call_is_final_and_perturb_is_the_hook():
    with pytest.raises(TypeError, match="implement perturb"):
        class Overrides(Attack):
            def __call__(self, model, x, *, generator=None):
                return x

    class NoHook(Attack):
        pass

    with pytest.raises(NotImplementedError, match="NoHook does not implement perturb"):
        NoHook()(None, images(1))
