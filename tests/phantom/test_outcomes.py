"""phantom.outcomes: the one definition of flip, Φ-saturation, η_c and the status vocabulary,
checked against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from phantom.outcomes import (
    Character, FlipStop, PhiSaturation, StopReason, TrialStatus, eta_c, first_stop, flip_step, flipped,
    saturation_step, sql_list, trial_phi,
)

NAN = float("nan")


@pytest.mark.parametrize(
    "phis, expected",
    [
        ([-0.2, -0.1, 0.05, 0.3], 2),
        ([0.1, -0.2, 0.3], 0),  # pre-resolved: Φ₀ > 0 is the flip at step 0
        ([-0.2, 0.0, -0.1], None),  # Φ = 0 is not resolved
        ([-0.2, NAN, 0.4], 2),  # a non-finite row carries no Φ
        ([], None),
    ],
)
def test_flip_step(phis, expected):
    assert flip_step(phis) == expected


@pytest.mark.parametrize(
    "phis, w, tol, expected",
    [
        # flip at 2; steps 2,3,4 span 0.005 < 0.01 → stop at 4
        ([-0.3, -0.1, 0.20, 0.204, 0.205, 0.3], 3, 0.01, 4),
        # the window must lie entirely at or after the flip: 1,2,3 spans < tol but starts before it
        ([-0.3, -0.001, 0.001, 0.002, 0.5], 3, 0.01, None),
        ([0.5, 0.5, 0.5], 3, 0.01, 2),  # pre-resolved and flat
        ([0.5, 0.5, 0.5], 2, 0.01, 1),
        ([-0.5, -0.5, -0.5, -0.5], 2, 0.01, None),  # never flips: never saturates
    ],
)
def test_phi_saturation(phis, w, tol, expected):
    assert saturation_step(phis, w, tol) == expected
    rule = PhiSaturation(w, tol)
    stops = [rule.update(t, p) for t, p in enumerate(phis)]
    assert (stops.index(True) if True in stops else None) == expected


def test_rules_are_incremental_and_restartable():
    phis = [-0.4, -0.2, 0.1, 0.1, 0.1]
    assert first_stop(FlipStop(), phis) == 2
    assert first_stop(PhiSaturation(2, 0.01), phis) == 3


def test_trial_phi_is_the_mean_over_contexts():
    assert trial_phi([0.2, -0.1]) == pytest.approx(0.05)
    assert math.isnan(trial_phi([0.2, NAN]))
    assert math.isnan(trial_phi([]))


@pytest.mark.parametrize(
    "status, flip, expected",
    [("ok", 3, True), ("ok", 0, True), ("ok", None, False), ("diverged", None, True), ("error", 2, None)],
)
def test_flipped_for_eta_c(status, flip, expected):
    assert flipped(status, flip) is expected


def test_eta_c_bracket():
    # lo = largest rate that does not flip (2e-6), hi = smallest that does (8e-6)
    eta, lo, hi, non_monotone = eta_c([(1e-6, False), (2e-6, False), (8e-6, True), (3.2e-5, True)])
    assert (lo, hi, non_monotone) == (2e-6, 8e-6, False)
    assert eta == pytest.approx(4e-6)
    # a rate that does not flip above one that does: non-monotone, still the geometric mean
    eta, lo, hi, non_monotone = eta_c([(1e-6, True), (4e-6, False), (1.6e-5, True)])
    assert (lo, hi, non_monotone) == (4e-6, 1e-6, True) and eta == pytest.approx(2e-6)
    assert eta_c([(1e-6, True), (1e-5, True)])[0] is None  # all flip: no η_c
    assert eta_c([(1e-6, False)])[0] is None  # none flips


def test_vocabulary_values_are_what_the_parquet_holds():
    assert [s.value for s in TrialStatus] == ["ok", "diverged", "error"]
    assert TrialStatus("error").is_result() is False and TrialStatus.DIVERGED.is_result()
    assert str(StopReason.FLIP) == "flip" and str(Character.IMMEDIATE) == "immediate"
    assert sql_list([TrialStatus.OK, "it's"]) == "'ok', 'it''s'"
