"""Search mode ``eta-c``: the critical learning rate of every bracket, by bisection (science §5.3).

Per bracket (model, sentence[, context], protocol, seed: everything but the rate) the ends
``lr_min`` and ``lr_max`` run first, then the rate is bisected in log space between the
largest rate that does not flip and the smallest that does, until ``hi / lo <= tolerance``
(1e-6..1e-3 to a factor 1.1: 9 trials where a grid of that resolution needs 74). A search
trial only has to answer "does it flip?", so it stops at its flip (``stopper.at_flip``: its
stop reason ``flip``, part of its config and id).

All brackets advance together, one round at a time, each round one dispatch (packs and all)
through :mod:`phantom.orchestrator.engine`. The state lives in an Optuna study per bracket in
``optuna.journal`` (:mod:`phantom.orchestrator.bisect`; ``optuna-dashboard optuna.journal`` shows it):
each round asks the studies for the next rates and tells them the outcomes, read from the
records through the analysis' SQL. The records are the ground truth: a lost journal is
re-synced from them, a rate asked but never answered (a killed driver) is dispatched again,
and ``resume --errored`` re-runs a bracket's errored trial. η_c itself is the analysis'
``eta_c`` view (``phantom query PATH "SELECT * FROM eta_c"``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import tempfile
from pathlib import Path

from phantom import layout
from phantom.outcomes import BracketStatus
from phantom.storage import Store
from phantom.orchestrator.bisect import PARAM, TRIAL_ID_ATTR, Bracket, Observation, SearchState, distribution
from phantom.orchestrator.config import SweepConfig
from phantom.orchestrator.engine import Outcome, dispatch
from phantom.orchestrator.expand import Grid, expand
from phantom.orchestrator.plan import write_plan

OUTCOMES_SQL = """
SELECT ts.trial_id, ts.bracket_id, ts.lr, ts.status, ts.flip_step, t.error
FROM trial_summary ts JOIN trials t USING (trial_id)
"""


def plan_brackets(sweep: SweepConfig, sentences_file: Path) -> tuple[list[Bracket], Grid]:
    """One bracket per point of the grid without its rates; every check of the grid applies."""
    stopper = dataclasses.replace(sweep.stopper, at_flip=True)
    grid = expand(sweep, sentences_file, lrs=(sweep.search.lr_min,), stopper=stopper)
    return [Bracket(t) for t in grid.trials], grid


def max_trials(sweep: SweepConfig) -> int:
    """Trials a bracket needs at most: both ends, then one bisection per round."""
    s = sweep.search
    return 2 + math.ceil(math.log2(math.log(s.lr_max / s.lr_min) / math.log(s.tolerance)))


# ----------------------------------------------------------------------------------------------
# the records, through the analysis' SQL


def read_outcomes(store: Store) -> dict[str, list[Observation]]:
    """{bracket_id: outcomes} of every trial record in the folder (``trial_summary``)."""
    from phantom.outcomes import flipped

    if not store.list(layout.TRIALS_DIR):
        return {}
    from phantom.analysis.db import connect
    from phantom.analysis.settings import AnalysisSettings

    # every record of the folder (a round's trials may not be in plan.json yet), no bootstrap
    conn = connect([store.uri], AnalysisSettings(all_trials=True, bootstrap=0), views=["trial_summary"])
    try:
        rows = conn.execute(OUTCOMES_SQL).fetchall()
    finally:
        conn.close()
    out: dict[str, list[Observation]] = {}
    for trial_id, bracket_id, lr, status, flip_step, error in rows:
        out.setdefault(bracket_id, []).append(
            Observation(trial_id, float(lr), flipped(status, flip_step), flip_step, error))
    return out


# ----------------------------------------------------------------------------------------------
# the journal


class Journal:
    """The Optuna journal of the search: in the sweep folder when it is local; on an object
    store, a local working copy downloaded at the start and uploaded after each round."""

    def __init__(self, store: Store, stack: contextlib.ExitStack) -> None:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        self.store = store
        if store.is_local:
            self.path = store.path(layout.JOURNAL_FILE)
        else:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="phantom-journal-"))
            self.path = os.path.join(folder, layout.JOURNAL_FILE)
            if store.exists(layout.JOURNAL_FILE):
                Path(self.path).write_text(store.read_text(layout.JOURNAL_FILE), encoding="utf-8")
        self.storage = JournalStorage(JournalFileBackend(self.path))

    def flush(self) -> None:
        if not self.store.is_local and os.path.exists(self.path):
            self.store.write_text(Path(self.path).read_text(encoding="utf-8"), layout.JOURNAL_FILE)

    def study(self, b: Bracket, sweep: SweepConfig):
        import optuna

        from phantom.orchestrator.bisect import BisectionSampler

        study = optuna.create_study(study_name=b.study_name, storage=self.storage, load_if_exists=True,
                                    direction="minimize", sampler=BisectionSampler())
        if not study.user_attrs:  # a new study: say what it is (optuna-dashboard shows these)
            t = b.template
            for key, value in dict(model=t.model, sentence_id=t.sentence_id, context_index=t.context_index,
                                   protocol=t.protocol, seed=t.seed, bracket_id=b.bracket_id,
                                   sweep=sweep.name).items():
                study.set_user_attr(key, value)
        return study


def sync(study, b: Bracket, dist) -> list:
    """Tell the study every outcome the records hold that it lacks (a lost or stale journal
    costs nothing); return the trials it asked for that still have no record."""
    import optuna
    from optuna.trial import TrialState

    latest = {}
    for t in study.get_trials(deepcopy=False):
        latest[t.user_attrs.get(TRIAL_ID_ATTR)] = t
    for o in b.outcomes:
        t = latest.get(o.trial_id)
        state = TrialState.FAIL if o.flipped is None else TrialState.COMPLETE
        value = None if o.flipped is None else float(o.flipped)
        if t is not None and t.state == TrialState.RUNNING:
            study.tell(t.number, value, state=state)
        elif t is None or t.state != state or (value is not None and t.value != value):
            study.add_trial(optuna.trial.create_trial(
                state=state, value=value, params={PARAM: o.lr}, distributions={PARAM: dist},
                user_attrs={TRIAL_ID_ATTR: o.trial_id, "error": o.error},
            ))
    recorded = {o.trial_id for o in b.outcomes}
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.user_attrs.get(TRIAL_ID_ATTR) not in recorded]


def _ask(study, b: Bracket, dist, lr: float | None = None) -> float:
    """A new trial of the study (at ``lr`` when given: a re-run), its phantom trial id attached."""
    if lr is not None:
        study.enqueue_trial({PARAM: lr})
    trial = study.ask({PARAM: dist})
    value = trial.params[PARAM]
    trial.set_user_attr(TRIAL_ID_ATTR, b.trial(value).trial_id)
    return value


# ----------------------------------------------------------------------------------------------
# the search


def run_eta_c(store: Store, sweep: SweepConfig, sentences_file: Path, brackets: list[Bracket], grid: Grid, *,
              rerun_errored: bool = False, stream=None) -> Outcome:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    stream = stream or sys.stderr
    s = sweep.search
    dist = distribution(s.lr_min, s.lr_max)
    for sk in grid.skipped:
        print(f"skipping {sk.model} / {sk.sentence_id}: {sk.reason}", file=stream)
    dispatched = already = 0
    rerun: set[str] = set()  # errored trials re-run by this invocation (once each)
    with contextlib.ExitStack() as stack:
        journal = Journal(store, stack)
        for round_no in range(1, s.max_rounds + 1):
            outcomes = read_outcomes(store)
            todo = []
            for b in brackets:
                b.outcomes = outcomes.get(b.bracket_id, [])
                study = journal.study(b, sweep)
                asked = sync(study, b, dist)
                status, _ = b.state(s.lr_min, s.lr_max, s.tolerance)
                if status == SearchState.ERROR and rerun_errored:
                    again = [o for o in b.errors() if o.trial_id not in rerun]
                    rerun |= {o.trial_id for o in again}
                    todo += [b.trial(_ask(study, b, dist, o.lr)) for o in again]
                elif status == SearchState.OPEN:
                    if asked:  # asked before (a killed driver): the proposal stands
                        todo += [b.trial(t.params[PARAM]) for t in asked]
                    else:
                        todo += [b.trial(_ask(study, b, dist)) for _ in range(_wanted(b, s))]
            journal.flush()
            ids = {b.trial(o.lr).trial_id for b in brackets for o in b.outcomes if b.own(o)}
            write_plan(store, sweep, sentences_file, ids | {t.trial_id for t in todo}, grid.skipped)
            if not todo:
                break
            print(f"eta-c round {round_no}: {len(todo)} trials", file=stream, flush=True)
            before = store.completed_trial_ids()
            out = dispatch(store, sweep, todo, rerun_errored=True, stream=stream)
            dispatched += out.dispatched
            already += out.already
            if out.dispatched == 0 and store.completed_trial_ids() == before:
                break  # nothing could run (all skipped by workers): stop rather than loop
        else:
            outcomes = read_outcomes(store)
            for b in brackets:
                b.outcomes = outcomes.get(b.bracket_id, [])
                sync(journal.study(b, sweep), b, dist)
            journal.flush()
    print(format_brackets(brackets, sweep), file=stream)
    print(f'  eta_c table: phantom query {store.uri} "SELECT * FROM eta_c"', file=stream)
    return Outcome(store.uri, dispatched, already, False)


def _wanted(b: Bracket, s) -> int:
    """Rates to ask this round: the missing ends in the first, then one midpoint."""
    results = b.results()
    return max(1, (s.lr_min not in results) + (s.lr_max not in results))


def format_brackets(brackets: list[Bracket], sweep: SweepConfig) -> str:
    s = sweep.search
    f = lambda v: f"{v:10.3g}" if v is not None else f"{'-':>10}"  # noqa: E731
    lines = [f"{'bracket':<44} {'eta_c':>10} {'lo':>10} {'hi':>10} {'trials':>6}  status"]
    for b in brackets:
        status, info = b.state(s.lr_min, s.lr_max, s.tolerance)
        shown = info["eta_c"] if status in (BracketStatus.FOUND, BracketStatus.NON_MONOTONE) else None
        flag = " (a lower rate flips where a higher one does not)" if info["non_monotone"] else ""
        lines.append(f"{b.label:<44} {f(shown)} {f(info['lo'])} {f(info['hi'])} {info['trials']:>6}  {status}{flag}")
    return "\n".join(lines)
