"""The front door: ``phantom sweep run`` and ``resume``.

Everything that can be checked is checked before anything is written or started: the sweep
file, every model (resolvable here), every sentence (one token per word), packing. Then the
driver takes the folder's lock (one driver per folder, :mod:`orchestrator.lock`), brings up
Ray and checks that the cluster can run a pack at all (:class:`orchestrator.engine.RaySession`),
cleans what killed processes left behind, and hands over to the sweep's search mode —
:mod:`orchestrator.grid` or :mod:`orchestrator.etac` — which dispatches through
:mod:`orchestrator.engine`. Imports run one way: runner -> modes -> engine.
"""

from __future__ import annotations

import sys
from pathlib import Path

from phantom.tracking import prepare_tracking
from orchestrator import etac, grid
from orchestrator.config import SweepConfig
from orchestrator.engine import Outcome, RaySession
from orchestrator.loader import open_folder
from orchestrator.compactor import Compactor
from orchestrator.lock import SweepLock
from orchestrator.only import check_only, describe_only, select
from orchestrator.packing import check_packing
from orchestrator.plan import clean_leftovers, sweep_store
from orchestrator.status import format_status, query_hint, sweep_status


def run_sweep(
    sweep: SweepConfig, sentences_file: Path, *, storage: str | None = None, address: str | None = None,
    rerun_errored: bool = False, verbose: bool = False, stream=None, only: dict[str, tuple] | None = None,
) -> Outcome:
    """Check, lock, plan, dispatch what is missing (of the trials ``only`` selects: see
    :mod:`orchestrator.only`), and print the summary."""
    stream = stream or sys.stderr
    store = sweep_store(sweep, storage)
    check_packing(sweep)
    check_only(sweep, only)
    subset = None  # the trials --only chose (grid sweeps only: check_only refuses it for eta-c)
    if sweep.search.mode == "eta-c":
        planned, run = etac.plan_brackets(sweep, sentences_file), etac.run_eta_c
    else:
        planned, run = grid.plan_grid(sweep, sentences_file), grid.run_grid
        if only:  # chosen once, before the lock: a value the sweep lacks is refused with nothing written
            subset = select(planned.trials, only, sweep.name)
            print(f"--only {describe_only(only)}: {len(subset)} of the {len(planned.trials)} trials of "
                  f"{sweep.name}", file=stream)
    kw = {} if subset is None else {"subset": subset}
    with SweepLock(store, stream) as lock:
        prepare_tracking(sweep.tracking, store.uri)
        with RaySession(address, sweep.resources.request(), verbose=verbose, stream=stream):
            clean_leftovers(store, lock)
            with Compactor(store, stream):  # loose trials into parts as they finish (phantom.results)
                outcome = run(store, sweep, sentences_file, planned, rerun_errored=rerun_errored, stream=stream, **kw)
        clean_leftovers(store, lock)  # what workers killed mid-write left behind
    print(summary(store.uri), file=stream)
    if subset is not None:
        outcome.selected = tuple(t.trial_id for t in subset)
        print(f"  --only {describe_only(only)}: ran what was missing of {outcome.dispatched + outcome.already} of "
              f"the sweep's trials; the rest of its plan is left as it was (phantom sweep status {store.uri})",
              file=stream)
    return outcome


def summary(uri: str) -> str:
    st = sweep_status(uri)
    text = format_status(st)
    return f"{text}\n  data: {st.uri}/steps, {st.uri}/trials\n  next: {query_hint(st.uri)}"


def resume(path: str, *, address: str | None = None, rerun_errored: bool = False, verbose: bool = False,
           stream=None, only: dict[str, tuple] | None = None) -> Outcome:
    """Continue the sweep of an existing folder from what it holds (``only``: part of it)."""
    with open_folder(path) as (sweep, sentences, root):
        return run_sweep(sweep, sentences, storage=root, address=address, rerun_errored=rerun_errored,
                         verbose=verbose, stream=stream, only=only)
