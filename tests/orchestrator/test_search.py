"""The Φ-saturation rule and the η_c bisection, as pure logic (no training, no Ray)."""

from __future__ import annotations

import math

import pytest

from orchestrator.etac import Bracket
from phantom.outcomes import PhiSaturation, saturation_step
from phantom.config import TrialConfig

CASES = [  # (Φ trajectory, w, tol, stop step)
    ([-0.3, -0.2, 0.1, 0.105, 0.108, 0.2], 3, 0.01, 4),  # flip at 2, plateau 2..4
    ([-0.3, -0.2, -0.2, -0.2, 0.1, 0.3, 0.5], 3, 0.01, None),  # flat before the flip never counts
    ([-0.3, 0.1, 0.2, 0.201, 0.202, 0.203], 3, 0.01, 4),  # window must start at or after the flip
    ([0.2, 0.2, 0.2], 3, 0.01, 2),  # pre-resolved: flip step 0
    ([0.2, 0.2, 0.2], 4, 0.01, None),  # not enough evaluations
    ([-0.1, 0.3, 0.31, 0.33], 2, 0.015, 2),
    ([-0.1, float("nan"), 0.3, 0.3, 0.3], 3, 0.01, 4),
]


@pytest.mark.parametrize("phis,w,tol,expected", CASES)
def test_phi_saturation_rule(phis, w, tol, expected):
    assert saturation_step(phis, w, tol) == expected


def test_rule_is_incremental():
    rule = PhiSaturation(3, 0.01)
    answers = [rule.update(t, p) for t, p in enumerate([-0.3, 0.1, 0.1, 0.1, 0.1])]
    assert answers == [False, False, False, True, True]
    assert rule.flip_step == 1


def _template() -> TrialConfig:
    return TrialConfig(model="tiny-gpt2", sentence_id="longing", target="longing", competitor="yearning",
                       contexts=("x",), lr=1.0)


@pytest.mark.parametrize("true_eta", [3.3e-6, 4.7e-5, 2.2e-4, 9.1e-4])
def test_bisection_brackets_eta_c_with_fewer_trials_than_a_grid(true_eta):
    lo, hi, tol = 1e-6, 1e-3, 1.1
    b = Bracket(_template())
    rounds = 0
    while props := b.proposals(lo, hi, tol):
        rounds += 1
        for lr in props:
            b.seen[lr] = lr >= true_eta  # a monotone model: flips from η_c up
    assert b.status(lo, hi, tol) == "found"
    below, above = b.bounds()
    assert below < true_eta <= above and above / below <= tol * (1 + 1e-6)
    assert math.sqrt(below * above) == pytest.approx(true_eta, rel=0.05)
    grid = math.ceil(math.log(hi / lo) / math.log(tol)) + 1  # rates a log grid of that resolution needs
    assert len(b.seen) <= 2 + math.ceil(math.log2(math.log(hi / lo) / math.log(tol))) < grid / 7
    assert rounds == len(b.seen) - 1  # both ends in the first round, then one rate a round


def test_bisection_edges():
    lo, hi, tol = 1e-6, 1e-3, 1.1
    for flips, status in ((True, "below-range"), (False, "above-range")):
        b = Bracket(_template())
        for lr in b.proposals(lo, hi, tol):
            b.seen[lr] = flips
        assert b.status(lo, hi, tol) == status and b.proposals(lo, hi, tol) == []
    b = Bracket(_template(), pre_resolved=True)
    assert b.status(lo, hi, tol) == "pre-resolved" and b.proposals(lo, hi, tol) == []
