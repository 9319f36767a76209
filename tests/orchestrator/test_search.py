"""The η_c search as logic: the Optuna study proposes, the records (through the analysis' SQL)
answer, one definition of "flipped" (no training, no Ray)."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import optuna
import pyarrow as pa
import pytest

from phantom.analysis.testing import step_table
from phantom.orchestrator.bisect import BisectionSampler, Bracket, Observation, SearchState, distribution
from phantom.outcomes import BracketStatus
from phantom.orchestrator.etac import Journal, read_outcomes, sync
from phantom.config import StopperConfig, TrialConfig
from phantom.outcomes import PhiSaturation, saturation_step
from phantom.schema import TrialRecord
from phantom.storage import Store

LO, HI, TOL = 1e-6, 1e-3, 1.1

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


def _template(**over) -> TrialConfig:
    data = dict(model="tiny-gpt2", sentence_id="longing", target="longing", competitor="yearning",
                contexts=("x",), lr=LO, stopper=StopperConfig(at_flip=True))
    data.update(over)
    return TrialConfig(**data)


def _observe(b: Bracket, lr: float, flipped: bool | None) -> None:
    b.outcomes.append(Observation(b.trial(lr).trial_id, lr, flipped, 3 if flipped else None,
                                  None if flipped is not None else "RuntimeError: boom"))


def _study(b: Bracket):
    return optuna.create_study(study_name=b.study_name, sampler=BisectionSampler())


@pytest.mark.parametrize("true_eta", [3.3e-6, 4.7e-5, 2.2e-4, 9.1e-4])
def test_the_study_bisects_to_eta_c_with_fewer_trials_than_a_grid(true_eta):
    """Every rate comes from the study's sampler; the outcomes go back through sync."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    b = Bracket(_template())
    study = _study(b)
    dist = distribution(LO, HI)
    rounds = 0
    while b.state(LO, HI, TOL)[0] == SearchState.OPEN:
        rounds += 1
        asked = [study.ask({"lr": dist}) for _ in range(2 if rounds == 1 else 1)]
        for t in asked:
            t.set_user_attr("trial_id", b.trial(t.params["lr"]).trial_id)
            _observe(b, t.params["lr"], t.params["lr"] >= true_eta)  # a monotone model
        assert sync(study, b, dist) == []  # every asked rate is answered
    status, info = b.state(LO, HI, TOL)
    assert status == BracketStatus.FOUND and not info["non_monotone"]
    assert info["lo"] < true_eta <= info["hi"] and info["hi"] / info["lo"] <= TOL * (1 + 1e-6)
    assert info["eta_c"] == pytest.approx(true_eta, rel=0.05)
    grid = math.ceil(math.log(HI / LO) / math.log(TOL)) + 1  # rates a log grid of that resolution needs
    assert len(b.results()) <= 2 + math.ceil(math.log2(math.log(HI / LO) / math.log(TOL))) < grid / 7
    told = sorted((t.params["lr"], t.value) for t in study.trials)
    assert told == sorted((lr, float(f)) for lr, f in b.results().items())


EDGES = [  # (outcome at lr_min, outcome at lr_max, status, non_monotone)
    (True, True, BracketStatus.ALL_FLIP, False),  # η_c is below lr_min
    (False, False, BracketStatus.NONE_FLIP, False),  # η_c is above lr_max
    (True, False, BracketStatus.NON_MONOTONE, True),  # the low end flips, the high end does not: flagged
    (None, False, SearchState.ERROR, False),
]


@pytest.mark.parametrize("at_min,at_max,status,non_monotone", EDGES)
def test_bracket_edges_are_named_and_non_monotone_is_flagged(at_min, at_max, status, non_monotone):
    b = Bracket(_template())
    _observe(b, LO, at_min)
    _observe(b, HI, at_max)
    got, info = b.state(LO, HI, TOL)
    assert (got, info["non_monotone"]) == (status, non_monotone)
    if non_monotone:
        assert info["lo"] == HI and info["hi"] == LO and info["eta_c"] == pytest.approx(math.sqrt(LO * HI))


def test_pre_resolved_bracket_stops():
    b = Bracket(_template())
    b.outcomes.append(Observation(b.trial(LO).trial_id, LO, True, 0, None))
    assert b.state(LO, HI, TOL)[0] == BracketStatus.PRE_RESOLVED


# ----------------------------------------------------------------------------------------------
# outcomes through the SQL


def _write(store: Store, cfg: TrialConfig, phis_per_context: list[list[float]], status: str = "ok") -> None:
    steps = pa.concat_tables([
        step_table(cfg.trial_id, phis, model=cfg.model, sentence_id=cfg.sentence_id, lr=cfg.lr, context_id=i)
        for i, phis in enumerate(phis_per_context)
    ])
    store.write_table(steps, "steps", f"{cfg.trial_id}.parquet")
    now = datetime.now(timezone.utc)
    record = TrialRecord(
        trial_id=cfg.trial_id, bracket_id=cfg.bracket_id, model=cfg.model, protocol=cfg.protocol,
        sentence_id=cfg.sentence_id, target=cfg.target, competitor=cfg.competitor, context=cfg.contexts[0],
        n_contexts=len(cfg.contexts), lr=cfg.lr, steps=cfg.training.steps,
        steps_done=len(phis_per_context[0]) - 1, status=status, started_at=now, finished_at=now,
        config=cfg.canonical_json(),
    )
    store.write_table(record.table(), "trials", f"{cfg.trial_id}.parquet")


def test_outcomes_are_read_through_the_sql_one_definition(tmp_path):
    """Φ of a trial is the mean over its contexts (not context 0), a diverged trial counts as
    flipped (above η_c), an errored one has no outcome, and a record of the same bracket with
    another stopper answers too."""
    store = Store.open(tmp_path / "sweep")
    b = Bracket(_template(contexts=("one context", "another context")))
    # context 0 flips at step 2, context 1 never: the trial's Φ (the mean) stays <= 0
    _write(store, b.trial(1e-5), [[-0.1, -0.05, 0.2, 0.3], [-0.5, -0.45, -0.4, -0.35]])
    # both contexts flip at step 1
    _write(store, b.trial(1e-4), [[-0.1, 0.2, 0.3], [-0.1, 0.1, 0.2]])
    _write(store, b.trial(1e-3), [[-0.1, float("nan")], [-0.1, float("nan")]], status="diverged")
    _write(store, b.trial(3e-6), [[-0.1]], status="error")
    full_budget = b.trial(1e-6).replace(stopper=StopperConfig())  # same bracket, other stopper
    _write(store, full_budget, [[-0.2, -0.2, -0.2], [-0.3, -0.3, -0.3]])
    other = _template(sentence_id="shame", target="shame", competitor="guilt")
    _write(store, other, [[0.1, 0.2]])

    outcomes = read_outcomes(store)
    assert set(outcomes) == {b.bracket_id, other.bracket_id}
    b.outcomes = outcomes[b.bracket_id]
    got = {o.lr: (o.flipped, o.flip_step) for o in b.outcomes}
    assert got == {1e-5: (False, None), 1e-4: (True, 1), 1e-3: (True, None), 3e-6: (None, None),
                   1e-6: (False, None)}
    assert [o.lr for o in b.errors()] == [3e-6]
    assert b.results() == {1e-6: False, 1e-5: False, 1e-4: True, 1e-3: True}
    assert Bracket(other, outcomes[other.bracket_id]).state(LO, HI, TOL)[0] == BracketStatus.PRE_RESOLVED


def test_journal_is_resynced_from_the_records(tmp_path):
    """A lost journal costs nothing: sync tells a fresh study every recorded outcome, and a
    rate asked but never answered (a killed driver) is handed back to be dispatched again."""
    import contextlib

    from phantom.orchestrator.config import SweepConfig

    store = Store.open(tmp_path / "sweep")
    store.fs.create_dir(store.root, recursive=True)
    sweep = SweepConfig(name="s", models=("tiny-gpt2",), learning_rates=(LO,))
    b = Bracket(_template())
    _observe(b, LO, False)
    _observe(b, HI, True)
    dist = distribution(LO, HI)
    with contextlib.ExitStack() as stack:
        journal = Journal(store, stack)
        study = journal.study(b, sweep)
        assert sync(study, b, dist) == []
        mid = study.ask({"lr": dist})
        mid.set_user_attr("trial_id", b.trial(mid.params["lr"]).trial_id)
        assert mid.params["lr"] == pytest.approx(math.sqrt(LO * HI), rel=1e-5)
    # a new driver: the journal holds the two answers and the unanswered proposal
    with contextlib.ExitStack() as stack:
        study = Journal(store, stack).study(b, sweep)
        assert [t.params["lr"] for t in sync(study, b, dist)] == [mid.params["lr"]]
        assert json.loads(json.dumps(study.user_attrs))["bracket_id"] == b.bracket_id
    (tmp_path / "sweep" / "optuna.journal").unlink()
    with contextlib.ExitStack() as stack:
        study = Journal(store, stack).study(b, sweep)
        assert sync(study, b, dist) == []
        assert sorted((t.params["lr"], t.value) for t in study.trials) == [(LO, 0.0), (HI, 1.0)]
