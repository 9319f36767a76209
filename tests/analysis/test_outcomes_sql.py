"""One definition per quantity (issue 8): the Python definitions of phantom.outcomes (what the
worker's online rules and the η_c search use) and the SQL views, run on the *same* random
trajectories: several contexts (one sometimes non-finite), diverged and errored trials,
pre-resolved ones, flips at step 1, stops at the flip, plateaus that saturate or not."""

import math
from collections import defaultdict

import numpy as np
import pyarrow.parquet as pq
import pytest

from phantom.analysis import db
from phantom.analysis.settings import AnalysisSettings
from phantom.analysis.testing import random_grid
from phantom import outcomes
from phantom.outcomes import BracketStatus, Character, TrialStatus


def trial_phis(steps, trial_id) -> list[float]:
    """Φ_0, Φ_1, ... of a trial: phantom.outcomes.trial_phi over its contexts at each step. A
    row counts only when its Φ, Δ and loss are finite (README; NULL reads as NaN here): a step
    with a context whose Δ or loss is not finite carries no Φ either."""
    mine = steps[steps.trial_id == trial_id]
    if mine.empty:
        return []
    out = [math.nan] * (int(mine.step.max()) + 1)
    for step, rows in mine.groupby("step"):
        finite = np.isfinite(rows[["logit_gap", "loss"]].to_numpy(dtype=float)).all()
        out[int(step)] = outcomes.trial_phi(rows.phi.tolist()) if finite else math.nan
    return out


@pytest.fixture(scope="module", params=[0, 1, 2])
def grid(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"grid{request.param}")
    random_grid(root, seed=request.param)
    settings = AnalysisSettings(bootstrap=0, saturation_window=3, saturation_tol=0.01)
    with db.connect([root], settings, views=["trial_summary", "eta_c"]) as conn:
        summary = {r["trial_id"]: r for r in db.records(conn, "SELECT * FROM trial_summary")}
        brackets = {r["bracket_id"]: r for r in db.records(conn, "SELECT * FROM eta_c")}
    records = pq.read_table(root / "trials").to_pandas()
    steps = pq.read_table(root / "steps").to_pandas()
    return records, steps, summary, brackets


def test_the_grid_has_every_case(grid):
    records, steps, summary, brackets = grid
    chars = {r["character"] for r in summary.values()}
    assert {str(c) for c in (Character.PRE_RESOLVED, Character.UNRESOLVED, Character.IMMEDIATE,
                             Character.CATAPULT, Character.DRIFT,
                             Character.STOPPED_AT_FLIP, Character.DIVERGED, Character.ERROR)} <= chars
    assert chars & {str(c) for c in outcomes.SHAPED}
    assert any(r["phi_stop"] is not None for r in summary.values())
    assert any(r["flip_step"] is not None and r["phi_stop"] is None for r in summary.values())
    assert (records.n_contexts > 1).any() and records.context_index.notna().any()
    assert steps.phi.isna().any()
    statuses = {r["status"] for r in brackets.values()}
    assert {str(b) for b in (BracketStatus.FOUND, BracketStatus.PRE_RESOLVED, BracketStatus.NONE_FLIP,
                             BracketStatus.NON_MONOTONE)} <= statuses


def test_flip_step_flipped_and_saturation(grid):
    records, steps, summary, _ = grid
    for rec in records.itertuples():
        phis = trial_phis(steps, rec.trial_id)
        row = summary[rec.trial_id]
        flip = outcomes.flip_step(phis)
        assert row["flip_step"] == flip, rec.trial_id
        assert row["flipped"] == outcomes.flipped(rec.status, flip), rec.trial_id
        assert row["phi_stop"] == outcomes.saturation_step(phis, 3, 0.01), rec.trial_id
        # the worker's online rule, fed step by step, agrees too
        rule = outcomes.PhiSaturation(3, 0.01)
        online = next((t for t, p in enumerate(phis) if rule.update(t, p)), None)
        assert row["phi_stop"] == online


def test_eta_c_per_bracket(grid):
    records, steps, summary, brackets = grid
    pairs, pre = defaultdict(list), defaultdict(bool)
    for rec in records.itertuples():
        f = summary[rec.trial_id]["flipped"]
        pairs[rec.bracket_id]  # every bracket, even one of errors only
        if f is not None:
            pairs[rec.bracket_id].append((rec.lr, f))
        phis = trial_phis(steps, rec.trial_id)
        pre[rec.bracket_id] |= bool(phis) and np.isfinite(phis[0]) and phis[0] > 0
    assert set(brackets) == set(pairs)
    non_monotone = 0
    for bid, p in pairs.items():
        eta, lo, hi, nm = outcomes.eta_c(p)
        row = brackets[bid]
        assert (row["lr_lo"], row["lr_hi"], row["non_monotone"]) == (lo, hi, nm), bid
        assert row["eta_c"] == (pytest.approx(eta, rel=1e-12) if eta is not None else None)
        assert row["status"] == str(outcomes.bracket_status(p, pre[bid])), bid
        assert row["n_rates"] == len({lr for lr, _ in p})
        non_monotone += nm
    # a diverged trial counts as flipped, an errored one not at all
    assert any(r["status"] == str(TrialStatus.DIVERGED) and r["flipped"] for r in summary.values())
    assert all(r["flipped"] is None for r in summary.values() if r["status"] == str(TrialStatus.ERROR))
